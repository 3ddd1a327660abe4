"""What every task shares: the cache key. One key per (workspace, run, iteration, stage[,
shard]) — so a rerun of a crashed flow returns finished stages from the cache and re-runs
only the rest (the stages are idempotent too, so a stale cache entry cannot duplicate)."""

from __future__ import annotations

import os


def stage_key(stage: str):
    def key(context, parameters) -> str:
        cfg = parameters["cfg"]
        parts = [stage, str(cfg.run.root.resolve()), cfg.hash(), parameters["run_id"],
                 str(parameters.get("iteration", "")), str(parameters.get("shard", ""))]
        return "|".join(parts)
    return key


CACHED = dict(persist_result=True, cache_expiration=None)


def crash_point(stage: str, iteration: int) -> None:
    """Fault injection for the resume tests: `REASONLOOP_CRASH_AT=verify:2` kills the
    process (no cleanup, like a power cut) right after that stage finishes."""
    if os.environ.get("REASONLOOP_CRASH_AT") == f"{stage}:{iteration}":
        os._exit(3)
