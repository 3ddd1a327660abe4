"""Process reward (PRM targets). Oracle labels come from the env: a step is good iff it is
legal and the target is still reachable from the state it leaves (Countdown can decide that
exactly). Summaries used as a PRM score over a trajectory: last / min / product."""

from __future__ import annotations

import math

AGGREGATIONS = ("last", "min", "prod")


def prm_score(step_rewards: list[float], how: str = "min") -> float:
    if not step_rewards:
        return 0.0
    if how == "last":
        return step_rewards[-1]
    if how == "min":
        return min(step_rewards)
    if how == "prod":
        return math.prod(step_rewards)
    raise ValueError(f"unknown PRM aggregation {how!r}; one of {AGGREGATIONS}")


def first_error(step_rewards: list[float]) -> int | None:
    """Index of the first step the PRM marks bad (None if all good): where a solution fails."""
    return next((i for i, r in enumerate(step_rewards) if r <= 0.0), None)


def oracle_prm(env):
    """The env's exact step labels as a PRM: `prm(problem, text) -> [score per step]`."""
    def prm(problem, text: str) -> list[float]:
        return env.verify(problem, text).step_rewards
    return prm
