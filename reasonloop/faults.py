"""Failures, real and injected: which errors are worth a retry, and the fault points the
reliability tests use to kill or disturb a run at a chosen place (never set in normal use).

    REASONLOOP_CRASH_AT=verify:1         SIGKILL this process at point `verify` of iteration 1
    REASONLOOP_CRASH_AT=train-step:5     ... right after the train stage's step-5 checkpoint
    REASONLOOP_TRANSIENT=register:1,filter:2
                                         raise a ConnectionError the first 1 (2) times the
                                         point is reached — a server that is briefly away
    REASONLOOP_PAUSE_AT=generate:1       wait there, as a long stage would, until stopped
                                         (a test sends the signal a user would)
    REASONLOOP_HOLD_AT=verify:1          wait there until the test says go (it fills the
    REASONLOOP_HOLD_DIR=/some/dir        disk or makes the workspace read-only meanwhile):
                                         writes `held`, waits for `go` in that directory
    REASONLOOP_CRASH_AT=random:7         SIGKILL after a delay drawn with seed 7 from
                                         REASONLOOP_CRASH_WINDOW (seconds, "2-30"), counted
                                         from the run's start: wherever the run then is

Each point sits in the middle of its stage, after some of the stage's writes and before the
rest, so a kill there leaves exactly the half-done state a power cut would.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections import Counter

from reasonloop import stopping
from reasonloop.errors import ReasonloopError

CRASH_ENV, TRANSIENT_ENV, PAUSE_ENV = ("REASONLOOP_CRASH_AT", "REASONLOOP_TRANSIENT",
                                       "REASONLOOP_PAUSE_AT")
HOLD_ENV, HOLD_DIR_ENV, WINDOW_ENV = ("REASONLOOP_HOLD_AT", "REASONLOOP_HOLD_DIR",
                                      "REASONLOOP_CRASH_WINDOW")
_hits: Counter = Counter()


class TransientError(ReasonloopError):
    """A failure that a retry may cure (a lock held too long, a server away)."""


def kill(where: str) -> None:
    """SIGKILL ourselves: no cleanup, no `finally`, no flush beyond what we do here."""
    print(f"fault injection: SIGKILL at {where}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def pause(where: str, limit_s: float = 600) -> None:
    """Busy until a stop signal (or `limit_s`): work that checks `stopping.check()` as the
    engines do between decoding steps."""
    import time

    print(f"fault injection: paused at {where}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        stopping.check()
        time.sleep(0.05)


def hold(where: str, limit_s: float = 600) -> None:
    """Tell the test we are here (`held`), then wait for its `go`."""
    import time
    from pathlib import Path

    d = Path(os.environ[HOLD_DIR_ENV])
    (d / "held").write_text(where)
    print(f"fault injection: held at {where}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + limit_s
    while not (d / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def arm_random_kill() -> None:
    """`REASONLOOP_CRASH_AT=random:SEED`: a SIGKILL at a seeded random moment of the run."""
    spec = os.environ.get(CRASH_ENV, "")
    if not spec.startswith("random:"):
        return
    import random
    import threading
    import time

    lo, hi = map(float, os.environ.get(WINDOW_ENV, "2-30").split("-"))
    delay = random.Random(int(spec.split(":")[1])).uniform(lo, hi)

    def later():
        time.sleep(delay)
        kill(f"{spec} after {delay:.1f}s")
    threading.Thread(target=later, daemon=True, name="fault-random-kill").start()


def point(name: str, iteration: int | None = None) -> None:
    """A fault point: dies or raises when the environment asks for it here."""
    here = f"{name}:{iteration}"
    if os.environ.get(CRASH_ENV) == here:
        kill(here)
    if os.environ.get(PAUSE_ENV) == here:
        pause(here)
    if os.environ.get(HOLD_ENV) == here:
        hold(here)
    for spec in filter(None, os.environ.get(TRANSIENT_ENV, "").split(",")):
        target, _, times = spec.partition(":")
        if target == name and _hits[name] < int(times or 1):
            _hits[name] += 1
            print(f"fault injection: transient failure {_hits[name]} at {here}",
                  file=sys.stderr)
            raise ConnectionError(f"injected: {name} briefly unreachable")


def crash_step(step: int) -> bool:
    """Whether `REASONLOOP_CRASH_AT=train-step:N` asks to die once step N is checkpointed."""
    spec = os.environ.get(CRASH_ENV, "")
    return spec.startswith("train-step:") and step >= int(spec.split(":")[1])


_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNREFUSED,
                     errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETDOWN,
                     errno.ENETUNREACH, errno.EINTR}
_TRANSIENT_TEXT = ("database is locked", "could not set lock", "connection refused",
                   "max retries exceeded", "temporarily unavailable", "timed out",
                   "connection reset", "service unavailable", "bad gateway",
                   "gateway timeout")


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying: connection/timeouts, locks (DuckDB, SQLite behind MLflow), 5xx from a
    tracking server. Not: bad configs, missing files, full disks, bugs — retrying those only
    delays the one clear error the user needs."""
    for e in _chain(exc):
        if isinstance(e, TransientError | ConnectionError | TimeoutError):
            return True
        if isinstance(e, ReasonloopError):
            return False
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in _TRANSIENT_TEXT) and not isinstance(e, ValueError | TypeError):
            return True
    return False


def _chain(exc: BaseException | None, depth: int = 8):
    """The exception and what caused it, outermost first (libraries wrap OS errors)."""
    while exc is not None and depth > 0:
        yield exc
        exc, depth = exc.__cause__ or exc.__context__, depth - 1


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded")
_READONLY_TEXT = ("read-only file system", "readonly database", "read only database")


def storage_error(exc: BaseException | None, root=None, min_free_mb: int = 0) -> str | None:
    """What went wrong with the disk under a run, in words — the disk filled up, the
    workspace turned read-only, a permission changed — or None for any other failure.
    DuckDB, SQLite (MLflow) and DVC each wrap the OS error their own way, and some hide it
    (polars reports a full disk as a parquet "transport error"), so after reading the
    error this also looks at the workspace's disk itself."""
    found = _storage_cause(exc)
    if found is not None or root is None:
        return found
    import shutil
    from pathlib import Path

    probe = next((p for p in (Path(root), *Path(root).parents) if p.exists()), None)
    if probe is None:
        return None
    if os.statvfs(probe).f_flag & os.ST_RDONLY:
        return f"the workspace is read-only: {probe} ({exc})"
    free_mb = shutil.disk_usage(probe).free / 2**20
    if free_mb < max(min_free_mb, 1):
        return f"disk full: {free_mb:.0f} MB free under {probe} ({type(exc).__name__}: {exc})"
    return None


def _storage_cause(exc: BaseException | None) -> str | None:
    for e in _chain(exc):
        text = str(e).lower()
        code = e.errno if isinstance(e, OSError) else None
        where = getattr(e, "filename", None) or ""
        if code in _FULL_ERRNOS or any(t in text for t in _FULL_TEXT):
            return f"disk full{': ' + str(where) if where else ''}"
        if code == errno.EROFS or any(t in text for t in _READONLY_TEXT):
            return f"the workspace is read-only{': ' + str(where) if where else ''}"
        if code in (errno.EACCES, errno.EPERM):
            return f"permission denied: {where or e}"
    return None
