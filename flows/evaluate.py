"""Evaluate a registered model with test-time search (`reasonloop eval --methods ...`):
accuracy vs generated tokens for each method and budget, stored and plotted."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from reasonloop.config import Config
from tasks.evaluate import search_eval


@flow(name="evaluate-search")
def evaluate_search(cfg: Config, model: str, methods: list[str], budgets: list[int],
                    problems_file: Path | None = None, split: str = "test",
                    limit: int | None = None) -> dict:
    return search_eval(cfg, model, methods, budgets, problems_file, split, limit)
