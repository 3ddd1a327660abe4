"""Best-of-N: sample N complete solutions per problem. The simplest training-time search
(ReST-EM, STaR); which of the N to keep is the verifier's and the filter's job."""

from __future__ import annotations

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams


def best_of_n(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
              progress: bool = False, prm=None, width: int = 1) -> list[dict]:
    """One row per trajectory: problem_id, method, sample_idx, text, n_tokens."""
    samples = engine.sample([p.prompt for p in problems], n, params, progress=progress)
    return [{"problem_id": p.problem_id, "method": "best_of_n", "sample_idx": i,
             "text": s.text, "n_tokens": s.n_tokens}
            for p, row in zip(problems, samples) for i, s in enumerate(row)]
