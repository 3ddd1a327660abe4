"""`reasonloop gc`: retention by hand — what the end of each scheduled turn does when the
config has `retention.keep_last` (reasonloop/retention.py says what is kept where)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer

from reasonloop.cliutil import ROOT, _fail, _quiet_env, _root, _table, out
from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def gc(keep_last: int | None = typer.Option(
           None, "--keep-last", min=1,
           help="iterations kept per run [default: the latest run's retention.keep_last]"),
       dry_run: bool = typer.Option(False, "--dry-run", help="say what would go; delete nothing"),
       root: Path | None = ROOT):
    """Prune old iterations; keep the champion, the challenger, the last N and their lineage.

    Deletes their checkpoints, local data and MLflow runs, then `dvc gc`; every kept version
    stays restorable (`reasonloop models restore`)."""
    _quiet_env()
    from reasonloop import retention
    from reasonloop.workspace import latest_run, stored_config
    ws = _root(root)
    try:
        if not Paths(ws).db.exists():
            raise ReasonloopError(f"no store at {Paths(ws).db}: nothing to collect")
        if keep_last is None:
            run_id = latest_run(Paths(ws).db)
            cfg = stored_config(Paths(ws).db, run_id) if run_id else None
            keep_last = cfg.retention.keep_last if cfg else None
            if keep_last is None:
                raise ReasonloopError("say how many iterations to keep: --keep-last N "
                                      "(or set retention.keep_last in the run's config)")
        rep = retention.collect(ws, keep_last, dry_run=dry_run, progress=out.print)
    except ReasonloopError as e:
        _fail(e)
    items = pl.DataFrame(rep["items"], schema={"kind": pl.String, "run_id": pl.String,
                                                "iteration": pl.Int64, "target": pl.String,
                                                "bytes": pl.Int64})
    by_kind = items.group_by("kind").agg(pl.len().alias("items"), pl.col("bytes").sum())
    rows = [{"what": k, "items": int(n), "size": _mib(b)}
            for k, n, b in by_kind.sort("kind").rows()]
    rows += [{"what": k, "items": None, "size": _mib(b)} for k, b in rep["freed"].items()
             if k.startswith("dvc")]
    verb = "would free" if dry_run else "freed"
    out.print(_table(pl.DataFrame(rows, schema={"what": pl.String, "items": pl.Int64,
                                               "size": pl.String}),
                     title=f"gc --keep-last {keep_last}: {verb}"))
    for run_id, kept in rep["kept"].items():
        out.print(f"kept {run_id}: iterations {kept}")
    out.print(f"{verb} {_mib(sum(rep['freed'].values()))} in all"
              + (" (DVC figures are estimates)" if dry_run else ""))
