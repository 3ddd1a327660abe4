"""What every task shares: the cache key and the retry policy.

One cache key per (workspace, config, run, iteration, stage[, shard]) — a rerun of a crashed
flow returns finished stages from the cache and re-runs only the rest (the stages are
idempotent too, so a stale cache entry cannot duplicate). Retries with exponential backoff
and jitter, only for failures a retry can cure (`reasonloop.faults.is_transient`): a bad
config fails at once, a locked store or a briefly absent server is tried again."""

from __future__ import annotations

from prefect.tasks import exponential_backoff

from reasonloop.faults import is_transient


def stage_key(stage: str):
    """Stages of an iteration take a `workspace.Iteration` (`it`); run-level ones
    (`cfg`, `run_id`)."""
    def key(context, parameters) -> str:
        it = parameters.get("it")
        cfg, run_id, iteration = (it.cfg, it.run_id, it.iteration) if it is not None else \
            (parameters["cfg"], parameters["run_id"], "")
        parts = [stage, str(cfg.run.root.resolve()), cfg.hash(), run_id, str(iteration),
                 str(parameters.get("shard", ""))]
        return "|".join(parts)
    return key


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
