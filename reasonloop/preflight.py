"""Checks before a command writes anything: the workspace can be written and has room, and
the stores in it are ours. A bad workspace gets one clear line and leaves every file as it
was — never half a run in someone else's database or on a full disk."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths
from reasonloop.store import db

PROBE_BYTES = 1 << 20     # a 1 MiB probe: a disk (or quota) that cannot take it cannot run


def workspace(root: Path, min_free_mb: int) -> None:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ReasonloopError(f"workspace {root} is a file, not a directory")
    probe_dir = next(p for p in (root, *root.parents) if p.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".reasonloop-probe-") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise ReasonloopError(f"disk full: cannot write 1 MiB under {probe_dir} "
                                  f"({e.strerror})") from None
        raise ReasonloopError(f"workspace {root} is not writable: {e.strerror or e}") from None
    free_mb = shutil.disk_usage(probe_dir).free / 2**20
    if free_mb < min_free_mb:
        raise ReasonloopError(f"disk full: {free_mb:.0f} MB free under {probe_dir}, the run "
                              f"needs at least run.min_free_mb={min_free_mb}")
    stores(root)


def stores(root: Path) -> None:
    """reasonloop.duckdb must be a DuckDB file with our tables (or none yet); mlflow.db a
    SQLite file. Anything else belongs to another program: refuse to touch it."""
    duck, ml = Paths(root).db, Paths(root).mlflow_db
    if duck.exists():
        head = duck.read_bytes()[:16] if duck.stat().st_size else b""
        if head[8:12] != b"DUCK":
            raise ReasonloopError(f"{duck} is not a DuckDB database (written by another "
                                  f"program?): move it or choose another --root")
        tables = set(db.query(duck, "SELECT table_name FROM information_schema.tables")
                     ["table_name"].to_list())
        if tables and "runs" not in tables:
            raise ReasonloopError(f"{duck} is another program's DuckDB database (tables: "
                                  f"{', '.join(sorted(tables)[:5])}): choose another --root")
    if ml.exists() and ml.stat().st_size and \
            ml.read_bytes()[:16] != b"SQLite format 3\0":
        raise ReasonloopError(f"{ml} is not an MLflow SQLite store: move it or choose "
                              f"another --root")
