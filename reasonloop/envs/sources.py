"""Problem sources: the rows of a user's problems file, whatever it is — JSONL, Parquet, CSV,
or a local Hugging Face dataset directory (`save_to_disk` output, or a downloaded dataset
repo of Parquet/JSONL/CSV files named by split). Each row comes with where it is (`file:line`
or `file:row N`, for one-line errors) and the split the file gives it, if any.

Held-out rules for rows the file does not split: a hash of one field decides, so a row
keeps its split across runs and rows that share the field's value share a split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from reasonloop.envs.base import SPLITS, read_jsonl
from reasonloop.errors import InputError

# names datasets give their splits → ours
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "eval": "test"}
DATA_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def read_rows(path: str | Path) -> list[tuple[str, dict, str | None]]:
    """(where, row, the file's split for it or None) for every row; bad files fail in one
    line naming the file (and the row, where one is at fault)."""
    p = Path(path)
    if p.is_dir():
        return _dataset_dir(p)
    if not p.is_file():
        raise InputError(f"problems file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return [(where, row, None) for where, row in read_jsonl(p)]
    try:
        if suffix == ".parquet":
            df = pl.read_parquet(p)
        elif suffix == ".csv":
            df = pl.read_csv(p, infer_schema=False)   # every field a string, as written
        else:
            raise InputError(f"{p}: unsupported problems file (JSONL, Parquet, CSV, or a "
                             "Hugging Face dataset directory)")
    except InputError:
        raise
    except Exception as e:     # noqa: BLE001 — polars' many parse errors, one line
        raise InputError(f"{p}: cannot read as {suffix[1:]}: {_first_line(e)}") from None
    first = 2 if suffix == ".csv" else 1           # a CSV's header is line 1
    what = "line" if suffix == ".csv" else "row"
    return [(f"{p}:{what} {i + first}", row, None) for i, row in enumerate(df.iter_rows(
        named=True))]


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _dataset_dir(p: Path) -> list[tuple[str, dict, str | None]]:
    """A `save_to_disk` directory (a Dataset, or a DatasetDict whose split names count), or
    a directory of data files named by split (train-00000-of-00001.parquet, test.jsonl)."""
    import datasets
    datasets.disable_progress_bars()
    try:
        if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
            ds = datasets.load_from_disk(str(p))
        else:
            files = [f for f in sorted(p.rglob("*")) if f.suffix.lower() in DATA_SUFFIXES
                     and not any(part.startswith(".") for part in f.relative_to(p).parts)]
            kinds = {DATA_SUFFIXES[f.suffix.lower()] for f in files}
            if not files:
                raise InputError(f"{p}: no dataset here (no dataset_dict.json / state.json, "
                                 "no .parquet, .jsonl or .csv files)")
            if len(kinds) > 1:
                raise InputError(f"{p}: data files of several formats ({', '.join(kinds)})")
            by_split: dict[str, list[str]] = {}
            for f in files:
                by_split.setdefault(_split_of_file(f, p), []).append(str(f))
            ds = datasets.load_dataset(kinds.pop(), data_files=by_split)
    except InputError:
        raise
    except Exception as e:     # noqa: BLE001 — datasets' errors, one line
        raise InputError(f"{p}: cannot load as a Hugging Face dataset: {_first_line(e)}") \
            from None
    parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [("", ds)]
    out = []
    for name, part in parts:
        split = SPLIT_NAMES.get(name.lower()) if name else None
        if name and name != "rows" and split is None:
            raise InputError(f"{p}: split {name!r} is not one of "
                             f"{', '.join(sorted(SPLIT_NAMES))}")
        label = f"{p}[{name}]" if name else str(p)
        out += [(f"{label}:row {i + 1}", row, split) for i, row in enumerate(part)]
    return out


def _split_of_file(f: Path, root: Path) -> str:
    """A data file's split from its path (`data/train-0000.parquet`, `test.jsonl`); files
    that name none are `rows` (split by the held-out rules)."""
    for part in reversed(f.relative_to(root).with_suffix("").parts):
        head = part.lower().split("-")[0].split("_")[0].split(".")[0]
        if head in SPLIT_NAMES:
            return head
    return "rows"


def held_out_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """train | val | test from a hash of `key`: test below `test_fraction`, val in the next
    `val_fraction`. (Its first decimal is sha1 mod 10, so at 0.1 / 0.1 the split is what
    it was before the fractions were settings.)"""
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    u = (h % 10 + (h // 10 % 10**6) / 10**6) / 10
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def split_of(where: str, row: dict, file_split: str | None, split_field: str) -> str | None:
    """The split a row is given: its `split_field` value, else its file's, else None."""
    value = row.get(split_field)
    if value is None or value == "":
        return file_split
    split = SPLIT_NAMES.get(str(value).lower())
    if split is None or split not in SPLITS:
        raise InputError(f"{where}: {split_field} must be one of train, val, test "
                         f"(got {value!r})")
    return split
