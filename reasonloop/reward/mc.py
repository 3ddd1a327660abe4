"""Monte-Carlo process labels (Math-Shepherd, Wang et al. 2024): a step is good if the policy
can still finish correctly from it. For each step prefix of a trajectory, run m rollouts with
the current policy; hard label = any rollout reaches a correct answer, soft label = the
fraction that do. Needs only an ORM, so envs without a step oracle get PRM targets too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reasonloop.envs.base import Problem, split_steps
from reasonloop.policy.engines.base import Engine, SamplingParams


@dataclass(frozen=True)
class StepLabels:
    soft: list[float]        # fraction of rollouts from each prefix that end correct
    hard: list[float]        # 1.0 if any did
    tokens: int              # rollout tokens spent on this trajectory


def mc_labels(items: list[tuple[Problem, str]], engine: Engine, params: SamplingParams,
              m: int, orm: Callable[[Problem, str], bool]) -> list[StepLabels]:
    """Labels for every step of every (problem, completion). The last step of a trajectory
    is labelled by its own outcome (a rollout from a finished text adds nothing); a prefix
    after which no rollout is needed costs nothing. All rollouts go in one batched call."""
    prompts, where = [], []
    for i, (p, text) in enumerate(items):
        steps = split_steps(text)
        for k in range(1, len(steps)):
            prompts.append(p.prompt + "\n".join(steps[:k]) + "\n")
            where.append((i, k - 1))
    outs = engine.sample(prompts, m, params) if prompts and m > 0 else []
    soft = [[0.0] * len(split_steps(t)) for _, t in items]
    tokens = [0] * len(items)
    for (i, k), prompt, row in zip(where, prompts, outs):
        p = items[i][0]
        prefix = prompt[len(p.prompt):]
        soft[i][k] = sum(orm(p, prefix + s.text) for s in row) / len(row)
        tokens[i] += sum(s.n_tokens for s in row)
    out = []
    for i, (p, text) in enumerate(items):
        if soft[i]:
            soft[i][-1] = 1.0 if orm(p, text) else 0.0
        out.append(StepLabels(soft[i], [1.0 if s > 0 else 0.0 for s in soft[i]], tokens[i]))
    return out


def mc_prm(engine: Engine, params: SamplingParams, m: int,
           orm: Callable[[Problem, str], bool]):
    """MC soft labels as a PRM, `prm(problem, text) -> [score per step]` — pluggable wherever
    the oracle PRM goes (costly: m rollouts per step; cached per (problem, text))."""
    cache: dict[tuple[str, str], list[float]] = {}

    def prm(problem: Problem, text: str) -> list[float]:
        key = (problem.problem_id, text)
        if key not in cache:
            cache[key] = mc_labels([(problem, text)], engine, params, m, orm)[0].soft
        return cache[key]
    return prm


def agreement(labels: list[list[float]], oracle: list[list[float]]) -> float:
    """Share of steps where the hard MC label equals the oracle's label."""
    pairs = [(a, b) for la, lb in zip(labels, oracle) for a, b in zip(la, lb)]
    return sum((a > 0) == (b > 0) for a, b in pairs) / max(1, len(pairs))
