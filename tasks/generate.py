"""Step 1 — search: sample D_search with the current policy, one task per problem shard."""

from prefect import task

from reasonloop import stages
from tasks.common import CACHED, RETRIED, stage_key


@task(name="generate", cache_key_fn=stage_key("generate"), **CACHED, **RETRIED)
def generate_shard(cfg, run_id: str, iteration: int, policy: str, shard: int) -> str:
    return stages.generate_shard(cfg, run_id, iteration, policy, shard)
