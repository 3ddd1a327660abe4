"""Test-time search on a registered model, outside a flywheel run (`reasonloop eval
--methods ...`): problems from the config's split or a user's JSONL, every row stored in
DuckDB (`evals`, `trajectories`), the accuracy-vs-tokens PNG and table logged to MLflow."""

from __future__ import annotations

import time
from pathlib import Path

from reasonloop.config import Config
from reasonloop.envs import plugins
from reasonloop.eval.plots import plot_test_time
from reasonloop.eval.test_time import eval_rows, results_table, to_metrics
from reasonloop.policy.engines import policy_engine
from reasonloop.stages.evaluate import test_time_search
from reasonloop.store import db, registry
from reasonloop.workspace import env, open_registry, paths, set_threads
from reasonloop.workspace import split as split_of


def evaluate_search(cfg: Config, model: str, methods: list[str], budgets: list[int],
                    problems_file: Path | None = None, split: str = "test",
                    limit: int | None = None) -> dict:
    """→ {eval_id, version, results, plot, table}; eval_id names the rows it wrote."""
    P = paths(cfg)
    open_registry(cfg)
    path, version = registry.resolve(model), registry.version_of(model)
    the_env = env(cfg)
    if problems_file is not None:
        problems, split = plugins.problems_file(the_env, problems_file)[:limit], "file"
    else:
        problems = split_of(cfg, split)[:limit]
    set_threads(cfg)
    engine = policy_engine(cfg, path)
    results, rows = test_time_search(cfg, engine, problems, methods, budgets)

    eval_id = f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    db.init_db(P.db)
    db.insert_problems(P.db, the_env.name, problems)
    db.insert_trajectories(P.db, db.trajectories_frame(eval_id, 0, rows))
    db.replace_evals(P.db, eval_id, 0,
                     eval_rows(results, split, eval_id, 0, version, len(problems)))
    out = P.run_reports(eval_id)
    plot = plot_test_time(results, out / "test_time.png",
                          title=f"{model}: {len(problems)} {split} problems")
    table = results_table(results)
    (out / "test_time.md").write_text(f"# {model} — {len(problems)} {split} problems\n\n"
                                      f"{table}\n")
    registry.log_iteration(cfg.run.name, P.mlartifacts, eval_id,
                           {"model": model, "methods": ",".join(methods),
                            "budgets": ",".join(map(str, budgets)), "split": split,
                            "problems_file": str(problems_file or ""),
                            "n_problems": len(problems), "config": cfg.to_json()},
                           to_metrics(results, split), None, [plot, out / "test_time.md"],
                           {"kind": "eval", "model": model, "model_version": version or ""})
    return {"eval_id": eval_id, "version": version, "results": results, "plot": str(plot),
            "table": table, "n_problems": len(problems), "split": split}
