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
        Repo.init(str(root), no_scm=not (root / ".git").exists(), subdir=False)
    return Repo(str(root))


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
