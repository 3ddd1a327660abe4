"""Step 2 — verify/score: ORM outcome reward and PRM step rewards → DuckDB; then reward
design's learned verifiers (PRM/ORM) fitted on D_search when `reward.train` asks."""

from prefect import task

from reasonloop import stages
from reasonloop.reward.fit import fit_reward_models
from tasks.common import CACHED, RETRIED, stage_key


@task(name="verify", cache_key_fn=stage_key("verify"), **CACHED, **RETRIED)
def verify(cfg, run_id: str, iteration: int, shard_files: list[str], policy: str) -> dict:
    return stages.verify(cfg, run_id, iteration, shard_files, policy)


@task(name="fit-verifiers", cache_key_fn=stage_key("fit-verifiers"), **CACHED,
      **RETRIED)
def fit_verifiers(cfg, run_id: str, iteration: int, policy: str) -> dict:
    return fit_reward_models(cfg, run_id, iteration, policy)
