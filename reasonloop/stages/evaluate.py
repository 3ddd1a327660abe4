"""Step 5 — evaluate: greedy pass@1 on val and test (what the flywheel is judged by), pass@k
and maj@k on a sampled subset, and on the last iteration (or every `eval.search_every`)
test-time search — every method × budget on the test split, accuracy against tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from reasonloop import faults
from reasonloop.config import Config
from reasonloop.envs.base import Problem
from reasonloop.eval.evaluate import evaluate
from reasonloop.eval.test_time import run_test_time, to_metrics
from reasonloop.policy.engines import SamplingParams, policy_engine
from reasonloop.search.methods import needs_orm
from reasonloop.search.spec import search_spec
from reasonloop.store import db
from reasonloop.workspace import Iteration, env, set_threads, split


@dataclass
class Evaluation:
    """What a policy scored: `metrics` by name (`val_pass@1`, `test_maj@k`, …) and the
    test-time search results per split ({split: [{method, budget, accuracy, tokens, …}]})."""
    metrics: dict[str, float]
    search: dict[str, list[dict]] = field(default_factory=dict)
    seconds: float = 0.0

    def flat(self) -> dict[str, float]:
        """One flat dict of numbers (MLflow metrics, the flow's history): test-time search
        as `test_search/beam@16` (accuracy) and `test_tokens/beam@16`."""
        out = dict(self.metrics)
        for sp, results in self.search.items():
            out.update(to_metrics(results, sp))
        return out


def evaluate_model(cfg: Config, model_path: str, search: bool = False,
                   run_id: str | None = None, iteration: int | None = None,
                   ) -> tuple[Evaluation, list[dict]]:
    """Greedy pass@1 on val/test and sampled pass@k, maj@k (+ test-time search on the test
    split when `search`) → (evaluation, trajectory rows to store)."""
    set_threads(cfg)
    engine = policy_engine(cfg, model_path)
    e = cfg.eval
    metrics, rows = evaluate(env(cfg), engine, {"val": split(cfg, "val"),
                                                "test": split(cfg, "test")},
                             k=e.k, n_samples=e.n_samples, temperature=e.temperature,
                             n_sampled=e.n_sampled_problems,
                             max_new_tokens=cfg.policy.max_new_tokens, seed=cfg.run.seed)
    result = Evaluation(metrics)
    if search and e.search_methods:
        problems = split(cfg, "test")[: e.search_problems]
        results, more = test_time_search(cfg, engine, problems, e.search_methods,
                                         e.search_budgets, run_id, iteration)
        result.search["test"] = results
        rows += more
    return result, rows


def test_time_search(cfg: Config, engine, problems: list[Problem], methods: list[str],
                     budgets: list[int], run_id: str | None = None,
                     iteration: int | None = None) -> tuple[list[dict], list[dict]]:
    """Every method × budget on `problems`, same seed → (results, scored rows)."""
    spec = search_spec(cfg, engine, True, None, run_id, iteration)
    if spec.orm_score is None and (skip := needs_orm(methods)):
        print(f"test-time search: no learned ORM fitted yet, skipping {', '.join(skip)}")
        methods = [m for m in methods if m not in skip]
    params = SamplingParams(temperature=cfg.search.temperature, top_p=cfg.search.top_p,
                            max_new_tokens=cfg.policy.max_new_tokens, seed=cfg.run.seed)
    return run_test_time(env(cfg), engine, problems, methods, budgets, spec, params,
                         cfg.search.prm_aggregation)


def evaluate_policy(it: Iteration, policy: str) -> Evaluation:
    """The flywheel's evaluation of an iteration's policy; its rows stored in DuckDB."""
    cfg, every = it.cfg, it.cfg.eval.search_every
    t0 = time.perf_counter()
    search = it.iteration == cfg.run.iterations or (every > 0 and it.iteration % every == 0)
    result, rows = evaluate_model(cfg, policy, search, it.run_id, it.iteration)
    result.seconds = time.perf_counter() - t0
    db.insert_trajectories(it.paths.db, db.trajectories_frame(it.run_id, it.iteration, rows))
    faults.point("evaluate", it.iteration)       # eval rows stored, the task not yet finished
    return result
