"""The tasks' retry policy: transient failures are retried with growing delays; permanent
ones (a bad config, a missing file, a full disk) fail at once. Real Prefect tasks."""

import errno
import sqlite3
import time

import duckdb
import pytest
from prefect import flow, task

from reasonloop.errors import ReasonloopError
from reasonloop.faults import TransientError, is_transient
from tasks.common import RETRIED


@pytest.mark.parametrize("exc", [
    ConnectionError("refused"), TimeoutError("slow"), TransientError("store busy"),
    OSError(errno.ECONNREFUSED, "Connection refused"),
    sqlite3.OperationalError("database is locked"),
    duckdb.IOException('Could not set lock on file "x.duckdb": Conflicting lock'),
    RuntimeError("API request to http://127.0.0.1:5000 failed: Max retries exceeded"),
])
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    ReasonloopError("config: unknown key search.nn"), ValueError("bad value"),
    FileNotFoundError(errno.ENOENT, "No such file"), OSError(errno.ENOSPC, "No space left"),
    KeyError("iteration"), RuntimeError("CUDA error: device-side assert"),
])
def test_permanent(exc):
    assert not is_transient(exc)


def test_cause_chain_decides():
    try:
        try:
            raise ConnectionError("server went away")
        except ConnectionError as inner:
            raise RuntimeError("register failed") from inner
    except RuntimeError as e:
        assert is_transient(e)


def _flaky(fails: int, exc: Exception):
    calls: list[float] = []

    @task(**RETRIED)
    def stage() -> int:
        calls.append(time.monotonic())
        if len(calls) <= fails:
            raise exc
        return len(calls)

    @flow
    def run() -> int:
        return stage()
    return run, calls


def test_transient_failures_are_retried_with_backoff():
    run, calls = _flaky(2, ConnectionError("MLflow briefly unreachable"))
    assert run() == 3
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] > 0.5 and gaps[1] > 1.0    # 1 s then 2 s, jittered (≥ 0.63× each)


def test_permanent_failures_are_not_retried():
    run, calls = _flaky(1, ReasonloopError("bad config"))
    with pytest.raises(ReasonloopError):
        run()
    assert len(calls) == 1


def test_every_stage_task_has_the_policy():
    from tasks import stages as s
    for t in (s.start_run, s.init_policy, s.generate_shard, s.verify_search, s.fit_verifiers,
              s.filter_expert, s.train, s.evaluate, s.register, s.report, s.champion,
              s.search_eval):
        assert t.retries == 3 and t.retry_delay_seconds == [1, 2, 4], t.name
        assert t.retry_condition_fn is RETRIED["retry_condition_fn"], t.name
