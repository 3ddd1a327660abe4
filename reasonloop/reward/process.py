"""Process reward (PRM targets). Oracle labels come from the env: a step is good iff it is
legal and the target is still reachable from the state it leaves (Countdown can decide that
exactly). Summaries used as a PRM score over a trajectory: last / min / product."""

from __future__ import annotations

import math

AGGREGATIONS = ("last", "min", "prod")

# One threshold for "a good step", wherever a step reward is read as good or bad: labels are
# 0 or 1 (oracle, Monte-Carlo hard labels), learned scores are P(good).
GOOD_STEP = 0.5


def good_step(reward: float) -> bool:
    return reward >= GOOD_STEP


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


def oracle_prm(env):
    """The env's exact step labels as a PRM: `prm(problem, text) -> [score per step]`."""
    def prm(problem, text: str) -> list[float]:
        return env.verify(problem, text).step_rewards
    return prm


class CachedPRM:
    """A PRM that scores many texts at once and remembers each (problem, text): subclasses
    fill `self.cache` for the texts not seen yet in `_fill(todo)`."""
    cache: dict

    def __call__(self, problem, text: str) -> list[float]:
        return self.many([(problem, text)])[0]

    def many(self, items: list) -> list[list[float]]:
        todo = list({(p.problem_id, t): (p, t) for p, t in items
                     if (p.problem_id, t) not in self.cache}.values())
        if todo:
            self._fill(todo)
        return [self.cache[(p.problem_id, t)] for p, t in items]

    def _fill(self, todo: list) -> None:
        raise NotImplementedError
