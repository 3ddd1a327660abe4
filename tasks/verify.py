"""Step 2 — verify/score: ORM outcome reward and PRM step rewards → DuckDB; then reward
design's learned verifiers (PRM/ORM) fitted on D_search when `reward.train` asks."""

from prefect import task

from reasonloop import stages
from reasonloop.reward.fit import fit_reward_models
from tasks.common import CACHED, crash_point, stage_key


@task(name="verify", cache_key_fn=stage_key("verify"), **CACHED)
def verify(cfg, run_id: str, iteration: int, shard_files: list[str], policy: str) -> dict:
    out = stages.verify(cfg, run_id, iteration, shard_files, policy)
    crash_point("verify", iteration)
    return out


@task(name="fit-verifiers", retries=1, cache_key_fn=stage_key("fit-verifiers"), **CACHED)
def fit_verifiers(cfg, run_id: str, iteration: int, policy: str) -> dict:
    out = fit_reward_models(cfg, run_id, iteration, policy)
    crash_point("fit-verifiers", iteration)
    return out
