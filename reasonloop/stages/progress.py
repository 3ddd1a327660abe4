"""Where an iteration stands and what it took: the flow's bookkeeping, out of its body.

`lap("train", result)` closes the wall-clock lap that started at the last call, records the
stage as done in `iterations.stage_done` (where a run stands, by SQL) and keeps the seconds of
real work the stage reported (sampling, scoring, training) — returned by the stage itself,
so they arrive from a Ray or Dask worker as well as from a thread. The difference between the
two is bookkeeping (Prefect, DuckDB, DVC, MLflow)."""

from __future__ import annotations

import time

from reasonloop.stages.evaluate import Evaluation
from reasonloop.stages.filter import Filtered
from reasonloop.stages.generate import Shard
from reasonloop.stages.verify import Searched
from reasonloop.store import db
from reasonloop.workspace import Iteration


def work_seconds(result) -> float:
    """A stage result's seconds of real work. Parallel shards count once (their longest), as
    they overlap in time; fitted verifiers add up."""
    if isinstance(result, list):
        return max((work_seconds(r) for r in result), default=0.0)
    if isinstance(result, Shard | Evaluation | Searched | Filtered):
        return result.seconds
    if isinstance(result, dict):
        if isinstance(result.get("seconds"), int | float):
            return float(result["seconds"])
        return sum(work_seconds(v) for v in result.values() if isinstance(v, dict))
    return 0.0


def init_row(ev: Evaluation) -> dict:
    """Iteration 0 (the initial policy) as the history's first row, printed like the rest:
    with a long policy init its numbers are most of what a run has to say."""
    print(f"iteration 0 (init): test pass@1 {ev.metrics['test_pass@1']:.3f}  "
          f"val {ev.metrics['val_pass@1']:.3f}")
    return {"iteration": 0, "phase": "init", **ev.flat()}


class Laps:
    def __init__(self, it: Iteration):
        self.it = it
        self.seconds: dict[str, float] = {"total": 0.0}
        self.compute: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, stage: str, result=None) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._t
        self.seconds["total"] += now - self._t
        self._t = now
        if result is not None:
            self.compute[stage] = work_seconds(result)
        db.update_iteration(self.it.paths.db, self.it.run_id, self.it.iteration,
                            stage_done=stage)

    def finish(self, phase: str, ev: Evaluation, reg: dict, search: Searched | None,
               expert: Filtered | None, verifiers: dict, learned: dict) -> dict:
        """Mark the iteration finished (once: a replay keeps the first times) → its row of
        the run's history, also printed as one line. (A GRPO iteration has no search and
        no D_expert: it searches inside its trainer.)"""
        it = self.it
        seconds = db.finish_iteration(it.paths.db, it.run_id, it.iteration,
                                      {**self.seconds, "compute": self.compute})
        counts = {**(search.row() if search else {}), **(expert.row() if expert else {})}
        row = {"iteration": it.iteration, "phase": phase, **ev.flat(), **counts,
               **{f"{k}_auc": v["auc"] for k, v in verifiers.items() if "auc" in v},
               "test_time": ev.search, "version": reg["version"],
               "promoted": reg["promoted"], "seconds": seconds}
        print(f"iteration {it.iteration} ({phase}): test pass@1 "
              f"{ev.metrics['test_pass@1']:.3f}  val {ev.metrics['val_pass@1']:.3f}  "
              f"|D_search| {search.n_search if search else learned.get('n_sampled', 0)}  "
              f"|D_expert| {expert.n_expert if expert else 0}  {seconds['total']:.0f}s"
              + (f"  verify errors {search.verify_errors}" if search and search.verify_errors
                 else ""))
        return row
