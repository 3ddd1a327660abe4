"""DVC for data/: problems, D_search and D_expert per iteration are versioned as one
directory (→ top-level data.dvc) and pushed to a local default remote. The md5 in data.dvc is
the data version recorded in DuckDB `iterations` and on the MLflow model version."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from reasonloop.errors import ReasonloopError

REMOTE_NAME = "local"


def _repo(root: Path):
    from dvc.repo import Repo
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    root = Path(root).resolve()
    if not (root / ".dvc").is_dir():
        import logging

        from dvc.logger import set_loggers_level
        with set_loggers_level(logging.WARNING):    # its "Initialized" notice, twice
            Repo.init(str(root), no_scm=not (root / ".git").exists(), subdir=False)
    repo = Repo(str(root))
    repo.scm_context.quiet = True     # no "git add data.dvc" hint after every snapshot
    return repo


def ensure_remote(root: Path, remote_dir: Path) -> None:
    """A default local remote."""
    repo = _repo(root)
    remote_dir = Path(remote_dir).resolve()
    remote_dir.mkdir(parents=True, exist_ok=True)
    with repo.config.edit() as conf:
        if REMOTE_NAME not in conf["remote"]:
            # DVC reads a relative url here as relative to the cwd and stores it relative to
            # .dvc/ — which keeps the committed config portable across clones.
            conf["remote"][REMOTE_NAME] = {"url": os.path.relpath(remote_dir, os.getcwd())}
            conf["core"]["remote"] = REMOTE_NAME
    repo.close()


def snapshot(root: Path, data_dir: Path, push: bool = True) -> str:
    """`dvc add data` (+ `dvc push`); returns the directory md5 written to data.dvc."""
    repo = _repo(root)
    try:
        repo.add(str(Path(data_dir).resolve()))
        if push:     # this snapshot only (not the versions retention keeps: already pushed)
            repo.push(targets=[str(Path(root).resolve() / f"{Path(data_dir).name}.dvc")])
    except Exception as e:  # DVC raises many types; the message is what a user needs
        raise ReasonloopError(f"dvc failed on {data_dir}: {str(e).splitlines()[0]}") from None
    finally:
        repo.close()
    return data_md5(Path(root) / f"{Path(data_dir).name}.dvc")


def data_md5(dvc_file: Path) -> str:
    outs = yaml.safe_load(Path(dvc_file).read_text())["outs"]
    return outs[0]["md5"]


def restore(root: Path, md5: str, dest: Path) -> Path:
    """Bring back the data/ directory of one recorded version (the md5 in DuckDB and on the
    MLflow version) into `dest`: a .dvc file naming that md5, then `dvc pull` (local cache,
    else the remote). Byte-identical to what that iteration trained on."""
    import shutil
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest.exists():
        raise ReasonloopError(f"{dest} exists: choose a new --to directory")
    if not md5.endswith(".dir"):
        raise ReasonloopError(f"not a DVC directory md5: {md5!r}")
    stage = root / f".restore-{md5[:12]}"      # inside the repo, as DVC wants
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    (stage / "data.dvc").write_text(yaml.safe_dump(
        {"outs": [{"md5": md5, "hash": "md5", "path": "data"}]}))
    repo = _repo(root)
    try:
        repo.pull(targets=[str(stage / "data.dvc")])
    except Exception as e:  # noqa: BLE001 — DVC raises many types; the message is what counts
        shutil.rmtree(stage, ignore_errors=True)
        raise ReasonloopError(f"cannot restore data {md5}: {str(e).splitlines()[0]}") from None
    finally:
        repo.close()
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(stage / "data"), dest)
    shutil.rmtree(stage, ignore_errors=True)
    return dest


def keep_versions(root: Path, keep_dir: Path, md5s: set[str]) -> None:
    """One .dvc file per data version to keep, so that `dvc gc --workspace` keeps its objects
    in the cache and the remote (written before any gc; stale ones removed)."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    for md5 in md5s:
        f = keep_dir / f"{md5[:32]}.dvc"
        if not f.exists():
            tmp = f.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5",
                                                     "path": md5[:32]}]}))
            tmp.replace(f)
    for f in keep_dir.glob("*.dvc"):
        if f.stem not in {m[:32] for m in md5s}:
            f.unlink()


def _objects(store: Path) -> dict[str, int]:
    """{md5 (a `.dir` suffix for manifests): bytes} of a DVC cache or local remote."""
    base = Path(store) / "files" / "md5"
    if not base.is_dir():
        return {}
    return {f.parent.name + f.name: f.stat().st_size for f in base.glob("*/*") if f.is_file()}


def used_objects(stores: list[Path], md5s: set[str]) -> set[str]:
    """Every object the data versions `md5s` need: their manifests and the files listed."""
    import json
    used = set(md5s)
    for md5 in md5s:
        for store in stores:
            f = Path(store) / "files" / "md5" / md5[:2] / md5[2:]
            if f.is_file():
                used |= {e["md5"] for e in json.loads(f.read_text())}
                break
    return used


def unused_bytes(root: Path, remote: Path, md5s: set[str]) -> dict[str, int]:
    """What `dvc gc -w -c` would free, keeping `md5s` and the workspace's data.dvc."""
    cache = Path(root) / ".dvc" / "cache"
    current = Path(root) / "data.dvc"
    keep = md5s | ({data_md5(current)} if current.exists() else set())
    used = used_objects([cache, remote], keep)
    return {name: sum(b for o, b in _objects(store).items() if o not in used)
            for name, store in (("dvc cache", cache), ("dvc remote", remote))}


def gc(root: Path) -> None:
    """`dvc gc --workspace --cloud`: the cache and the default remote keep only what the
    workspace's .dvc files (data.dvc and the keep files) name."""
    import logging

    from dvc.logger import set_loggers_level
    repo = _repo(root)
    try:
        with set_loggers_level(logging.WARNING):    # its per-store notices, twice each
            repo.gc(workspace=True, cloud=True, force=True)
    except Exception as e:  # noqa: BLE001 — DVC raises many types; the message is what counts
        raise ReasonloopError(f"dvc gc failed: {str(e).splitlines()[0]}") from None
    finally:
        repo.close()
