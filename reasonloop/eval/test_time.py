"""Test-time search: accuracy against generated tokens, per method and budget.

The roadmap's test-time scaling question — is a PRM-guided tree search worth more than
sampling N and voting, at the same compute? Every method runs on the same problems with the
same seed; a method's x-value is the mean number of tokens it generated per problem
(rollouts and pruned expansions included), its y-value the accuracy of its selected answer.
"""

from __future__ import annotations

import time
from dataclasses import replace

from tqdm.auto import tqdm

from reasonloop.envs.base import Env, Problem
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.reward.outcome import score_rows
from reasonloop.reward.process import prm_score
from reasonloop.search.aggregate import select
from reasonloop.search.base import SearchSpec, scores_of
from reasonloop.search.methods import SEARCH, TEST_TIME


def run_test_time(env: Env, engine: Engine, problems: list[Problem], methods: list[str],
                  budgets: list[int], spec: SearchSpec, params: SamplingParams,
                  aggregation: str = "min") -> tuple[list[dict], list[dict]]:
    """→ (results [{method, budget, accuracy, tokens, n}], scored trajectory rows to store,
    method `eval:<search>@<budget>`). Best-of-N variants reuse one set of samples."""
    by_id = {p.problem_id: p for p in problems}
    cache: dict[tuple[str, int], dict[str, list[dict]]] = {}   # candidates with PRM scores
    results, stored = [], []
    seconds: dict[tuple[str, int], float] = {}
    combos = [(m, b) for b in budgets for m in methods]
    for m, b in tqdm(combos, desc="test-time search", disable=not spec.progress):
        search, how, scorer = TEST_TIME[m]
        if scorer == "orm" and spec.orm_score is None:
            raise ValueError(f"{m} needs a learned ORM (reward.orm_model, or reward.train: "
                             "[orm] in a run)")
        if (search, b) not in cache:
            t0 = time.perf_counter()
            rows = score_rows(env, by_id, SEARCH[search](problems, engine, params, b,
                                                         replace(spec, progress=False)))
            items = [(by_id[r["problem_id"]], r["text"]) for r in rows]
            orm = scores_of(spec.orm_score, items) if spec.orm_score else [None] * len(rows)
            groups: dict[str, list[dict]] = {p.problem_id: [] for p in problems}
            # scored once (batched), shared by the selectors of one search
            for r, steps, o in zip(rows, scores_of(spec.prm, items), orm):
                r["prm_score"], r["orm_score"] = prm_score(steps, aggregation), o
                groups[r["problem_id"]].append(r)
            cache[(search, b)] = groups
            seconds[(search, b)] = time.perf_counter() - t0
            stored += [{**r, "method": f"eval:{search}@{b}"} for r in rows]
        correct, tokens = 0, 0
        for cands in cache[(search, b)].values():
            pick = select(how, [c["answer"] for c in cands],
                          [c[f"{scorer}_score"] if scorer else 1.0 for c in cands])
            correct += bool(cands and cands[pick]["correct"])
            tokens += sum(c["n_tokens"] for c in cands)
        results.append({"method": m, "budget": b, "accuracy": correct / len(problems),
                        "tokens": tokens / len(problems), "n": len(problems),
                        "seconds": seconds[(search, b)]})
    return results, stored


def eval_rows(results: list[dict], split: str, run_id: str, iteration: int,
              version: str | None, n: int) -> list[dict]:
    """Rows of the `evals` table: metric accuracy and tokens, budget = k = n."""
    return [{"run_id": run_id, "iteration": iteration, "model_version": version,
             "split": split, "method": r["method"], "budget": r["budget"], "metric": metric,
             "k": r["budget"], "value": r.get(metric), "n": n}
            for r in results for metric in ("accuracy", "tokens")]


def to_metrics(results: list[dict], split: str) -> dict[str, float]:
    """Flat metric names (for MLflow and the flow's history): `test_search/beam@16`
    (accuracy) and `test_tokens/beam@16` (mean generated tokens per problem)."""
    out = {}
    for r in results:
        out[f"{split}_search/{r['method']}@{r['budget']}"] = r["accuracy"]
        out[f"{split}_tokens/{r['method']}@{r['budget']}"] = r["tokens"]
    return out


def results_table(results: list[dict]) -> str:
    """Markdown: one row per method, accuracy (tokens/problem) per budget."""
    budgets = sorted({r["budget"] for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    cell = {(r["method"], r["budget"]): r for r in results}
    lines = ["| method | " + " | ".join(f"n={b}" for b in budgets) + " |",
             "|---" * (len(budgets) + 1) + "|"]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(
            f"{100 * cell[m, b]['accuracy']:.1f}% ({cell[m, b]['tokens']:.0f} tok)"
            if (m, b) in cell else "" for b in budgets) + " |")
    return "\n".join(lines)
