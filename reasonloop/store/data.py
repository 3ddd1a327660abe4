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
        if push:
            repo.push()
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
