"""Step 2 — verify/score: ORM outcome reward and oracle PRM step rewards → DuckDB."""

from prefect import task

from reasonloop import stages
from tasks.common import CACHED, crash_point, stage_key


@task(name="verify", cache_key_fn=stage_key("verify"), **CACHED)
def verify(cfg, run_id: str, iteration: int, shard_files: list[str]) -> dict:
    out = stages.verify(cfg, run_id, iteration, shard_files)
    crash_point("verify", iteration)
    return out
