"""One lock file per workspace: runs and turns hold it shared, `reasonloop gc` exclusive —
so retention never deletes under a running flywheel, and a killed process lets go at once
(the kernel drops an flock with its holder)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths


@contextmanager
def held(root: Path, exclusive: bool = False):
    """Shared: a run (others may run beside it). Exclusive, never waited for: gc, refused
    while any run holds the workspace."""
    f = Paths(Path(root)).lock
    f.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
        except BlockingIOError:
            raise ReasonloopError(f"a flywheel run or turn is in progress in {Paths(root).root}: "
                                  "gc runs between turns (retry when it has finished)") from None
        yield
    finally:
        os.close(fd)
