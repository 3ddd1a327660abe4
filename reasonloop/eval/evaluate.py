"""Evaluate a policy: greedy pass@1 on val and test (the numbers the flywheel is judged by),
and on a sampled subset unbiased pass@k and maj@k (how much search could still add)."""

from __future__ import annotations

from reasonloop.envs.base import Env, Problem
from reasonloop.eval import test_time
from reasonloop.eval.metrics import maj_at_k, mean, pass_at_k
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.reward.outcome import score


def evaluate(env: Env, engine: Engine, splits: dict[str, list[Problem]], *, k: int,
             n_samples: int, temperature: float, n_sampled: int, max_new_tokens: int,
             seed: int) -> tuple[dict[str, float], list[dict]]:
    """→ (metrics like {'val_pass@1': .., 'test_pass@k': ..}, trajectory rows to store)."""
    metrics: dict[str, float] = {}
    rows: list[dict] = []
    greedy = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
    sampled = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    for split, problems in splits.items():
        outs = engine.sample([p.prompt for p in problems], 1, greedy)
        scored = [score(env, p, o[0].text) for p, o in zip(problems, outs)]
        metrics[f"{split}_pass@1"] = mean(s["correct"] for s in scored)
        metrics[f"{split}_legal"] = mean(s["legal"] for s in scored)
        rows += [_row(p, "eval:greedy", 0, o[0], s) for p, o, s in zip(problems, outs, scored)]
        sub = problems[:n_sampled]
        outs = engine.sample([p.prompt for p in sub], n_samples, sampled)
        pk, mk, p1 = [], [], []
        for p, row in zip(sub, outs):
            ss = [score(env, p, o.text) for o in row]
            c = sum(s["correct"] for s in ss)
            pk.append(pass_at_k(n_samples, c, k))
            p1.append(c / n_samples)
            mk.append(maj_at_k([s["answer"] for s in ss], _target(p), k))
            rows += [_row(p, "eval:sample", i, o, s) for i, (o, s) in enumerate(zip(row, ss))]
        metrics[f"{split}_sample@1"] = mean(p1)
        metrics[f"{split}_pass@k"] = mean(pk)
        metrics[f"{split}_maj@k"] = mean(mk)
    return metrics, rows


def _target(p: Problem) -> str:
    return str(p.meta.get("target", p.meta.get("answer")))


def _row(p, method, i, sample, s) -> dict:
    return {"problem_id": p.problem_id, "method": method, "sample_idx": i, "text": sample.text,
            "n_tokens": sample.n_tokens, **s}


def eval_rows(metrics: dict[str, float], search: dict[str, list[dict]], run_id: str,
              iteration: int, version: str | None, k: int, sizes: dict[str, int],
              n_sampled: int, n_search: int = 0) -> list[dict]:
    """Metrics (`<split>_<metric>`) and test-time search results → rows of `evals`."""
    out = []
    for split, results in search.items():
        out += test_time.eval_rows(results, split, run_id, iteration, version,
                                   min(n_search, sizes[split]))
    for key, value in metrics.items():
        split, metric = key.split("_", 1)
        kk = k if metric.endswith("@k") else 1
        method = "greedy" if metric in ("pass@1", "legal") else "sample"
        n = sizes[split] if method == "greedy" else min(n_sampled, sizes[split])
        out.append({"run_id": run_id, "iteration": iteration, "model_version": version,
                    "split": split, "method": method, "budget": kk, "metric": metric, "k": kk,
                    "value": value, "n": n})
    return out
