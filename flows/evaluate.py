"""Evaluate a registered model with test-time search (`reasonloop eval --methods ...`):
accuracy vs generated tokens for each method and budget, stored and plotted."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from reasonloop import stopping
from reasonloop.config import Config
from tasks.runner import prefect_api
from tasks.stages import search_eval


def run(cfg: Config, model: str, methods: list[str], budgets: list[int],
        problems_file: Path | None = None, split: str = "test", limit: int | None = None):
    """`evaluate_search` on a Prefect API that answers (tasks/runner.py)."""
    with prefect_api(cfg.serve.start_timeout_s):
        return evaluate_search(cfg, model, methods, budgets, problems_file, split, limit)


@flow(name="evaluate-search")
def evaluate_search(cfg: Config, model: str, methods: list[str], budgets: list[int],
                    problems_file: Path | None = None, split: str = "test",
                    limit: int | None = None) -> dict:
    stopping.reclaim()          # Ctrl-C / SIGTERM stop it within seconds
    return search_eval(cfg, model, methods, budgets, problems_file, split, limit)
