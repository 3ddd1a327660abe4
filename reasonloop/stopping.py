"""Ctrl-C and SIGTERM end a command within seconds and leave nothing behind.

The first signal raises KeyboardInterrupt in the main thread: a flow marks its run crashed,
context managers stop our servers, Ray and Dask. Work in other threads (a generate shard)
ends at its next `check()`; whatever does not is not waited for: a watchdog ends the process
`grace_s` after the signal, and a second signal ends it at once. That is as safe as a
SIGKILL, which every stage survives (idempotent writes, trainer checkpoints), so
`reasonloop run --resume` continues where the run stopped. Servers we started die with us
(reasonloop/servers.py).

A Prefect flow installs its own SIGTERM handler, which waits for the flow's worker threads
before anything else runs: flows that a command of ours runs take the signal back
(`reclaim`) as their first step; Prefect still marks the run crashed.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from typing import NoReturn

_first: dict[str, float] = {}
_lock = threading.Lock()
_installed: dict[str, float] = {}


def exit_code(signum: int | None = None) -> int:
    """128 + the signal, as a shell reports it (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (signum or _first.get("signum") or signal.SIGINT)


def finish(code: int) -> NoReturn:
    """Exit now: output flushed, worker threads not waited for (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _watchdog(grace_s: float, signum: int) -> None:
    time.sleep(grace_s)
    print(f"\nstopped: cleanup took over {grace_s:g} s, exiting now", file=sys.stderr)
    finish(exit_code(signum))


def _handler(grace_s: float):
    def handle(signum, frame):
        with _lock:
            again = "signum" in _first
            _first.setdefault("signum", signum)
        if again:
            finish(exit_code(signum))
        threading.Thread(target=_watchdog, args=(grace_s, signum), daemon=True).start()
        raise KeyboardInterrupt
    return handle


def install(grace_s: float = 10.0, event_loop: bool = False) -> None:
    """SIGINT and SIGTERM → KeyboardInterrupt, then exit within `grace_s` (main thread only).
    `event_loop`: for a command that runs an asyncio loop (`serve`): SIGINT stays Python's, which
    `asyncio.run` turns into a clean cancel of its task, and SIGTERM is forwarded to it."""
    _first.clear()
    if event_loop:
        def forward(signum, frame):
            _first.setdefault("signum", signum)
            threading.Thread(target=_watchdog, args=(grace_s, signum), daemon=True).start()
            _thread.interrupt_main(signal.SIGINT)
        signal.signal(signal.SIGTERM, forward)
        return
    _installed["grace_s"] = grace_s
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler(grace_s))


def reclaim() -> None:
    """Inside a flow: our handlers again, where `install` ran (a CLI command) and we are on
    the main thread. Elsewhere — a flow run a Prefect worker started, a test calling the flow
    — Prefect's handling stays."""
    if _installed and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _handler(_installed["grace_s"]))


def stopped() -> bool:
    """Whether a stop signal has arrived."""
    return "signum" in _first


class Stopped(BaseException):
    """Ends work in a worker thread once a stop signal arrived (a BaseException: no retry
    or `except Exception` swallows it)."""


def check() -> None:
    """Called between units of work (a decoding step, a batch) off the main thread, which the
    signal itself interrupts: raise Stopped once we are stopping."""
    if "signum" in _first:
        raise Stopped
