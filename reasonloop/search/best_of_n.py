"""Best-of-N: sample N complete solutions per problem. The simplest training-time search
(ReST-EM, STaR); which of the N counts is the job of a selector (`aggregate.py`: the PRM's
best, majority vote, PRM-weighted vote) at test time and of the filter at training time."""

from __future__ import annotations

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.search.base import SearchSpec


def best_of_n(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
              spec: SearchSpec) -> list[dict]:
    """One row per trajectory: problem_id, method, sample_idx, text, n_tokens."""
    samples = engine.sample([p.prompt for p in problems], n, params, progress=spec.progress)
    return [{"problem_id": p.problem_id, "method": "best_of_n", "sample_idx": i,
             "text": s.text, "n_tokens": s.n_tokens}
            for p, row in zip(problems, samples) for i, s in enumerate(row)]
