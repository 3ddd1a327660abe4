"""Run start: DuckDB schema and problems, run row, DVC remote, MLflow store."""

from prefect import task

from reasonloop import stages
from tasks.common import RETRIED


@task(name="start-run", **RETRIED)
def start_run(cfg, run_id: str) -> dict:
    return stages.start_run(cfg, run_id)
