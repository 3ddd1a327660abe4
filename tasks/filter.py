"""Step 3 — filter: D_search → D_expert (polars), exported as Parquet and versioned by DVC."""

from prefect import task

from reasonloop import stages
from tasks.common import CACHED, RETRIED, stage_key


@task(name="filter", cache_key_fn=stage_key("filter"), **CACHED, **RETRIED)
def filter_expert(cfg, run_id: str, iteration: int) -> dict:
    return stages.filter_expert(cfg, run_id, iteration)
