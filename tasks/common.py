"""What every task shares: the cache key and the retry policy.

One cache key per (workspace, config, run, iteration, stage[, shard]) — a rerun of a crashed
flow returns finished stages from the cache and re-runs only the rest (the stages are
idempotent too, so a stale cache entry cannot duplicate). The workspace is its path *and* a
random id kept in it: a workspace deleted and made again at the same path is a new one, not
a cache hit for results whose files are gone. Retries with exponential backoff
and jitter, only for failures a retry can cure (`reasonloop.faults.is_transient`): a bad
config fails at once, a locked store or a briefly absent server is tried again."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from prefect.tasks import exponential_backoff

from reasonloop.faults import is_transient
from reasonloop.paths import Paths


def stage_key(stage: str):
    """Stages of an iteration take a `workspace.Iteration` (`it`); run-level ones
    (`cfg`, `run_id`)."""
    def key(context, parameters) -> str:
        it = parameters.get("it")
        cfg, run_id, iteration = (it.cfg, it.run_id, it.iteration) if it is not None else \
            (parameters["cfg"], parameters["run_id"], "")
        parts = [stage, str(cfg.run.root.resolve()), workspace_id(cfg.run.root), cfg.hash(),
                 run_id, str(iteration), str(parameters.get("shard", ""))]
        return "|".join(parts)
    return key


def workspace_id(root: Path) -> str:
    """The workspace's random id, made on first use (written whole, then linked into place:
    shards computing their keys at once agree on one)."""
    f = Paths(root).identity
    if not f.exists():
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.name}.{uuid.uuid4().hex}")
        tmp.write_text(uuid.uuid4().hex)
        try:
            os.link(tmp, f)           # fails if another thread got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return f.read_text().strip()


def transient_failure(task, task_run, state) -> bool:
    """Prefect's retry condition: retry only what `is_transient` calls transient."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as e:   # noqa: BLE001 — we only classify it
            exc = e
    return is_transient(exc)


CACHED = dict(persist_result=True, cache_expiration=None)
RETRIED = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=1),
               retry_jitter_factor=0.5, retry_condition_fn=transient_failure)
