"""Monte-Carlo process labels (Math-Shepherd, Wang et al. 2024): a step is good if the policy
can still finish correctly from it. For each step prefix of a trajectory, run m rollouts with
the current policy; hard label = any rollout reaches a correct answer, soft label = the
fraction that do. Needs only an ORM, so envs without a step oracle get PRM targets too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reasonloop.envs.base import Problem, split_steps, step_prefixes
from reasonloop.policy.engines.base import Engine, SamplingParams


@dataclass(frozen=True)
class StepLabels:
    soft: list[float]        # fraction of rollouts from each prefix that end correct
    hard: list[float]        # 1.0 if any did
    tokens: int              # rollout tokens spent on this trajectory


def mc_labels(items: list[tuple[Problem, str]], engine: Engine, params: SamplingParams,
              m: int, orm: Callable[[Problem, str], bool]) -> list[StepLabels]:
    """Labels for every step of every (problem, completion). A text the ORM already accepts
    labels its last step 1 with no rollout; otherwise the last step is rolled out like the
    others (inside a search the text is a prefix, not a finished answer — a finished wrong
    one just fails its rollouts). All rollouts go in one batched call."""
    prompts, where = [], []
    done = [orm(p, text) for p, text in items]
    for i, (p, text) in enumerate(items):
        steps = split_steps(text)
        for k in range(1, len(steps) + (0 if done[i] else 1)):
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
    for i in range(len(items)):
        if soft[i] and done[i]:
            soft[i][-1] = 1.0
        out.append(StepLabels(soft[i], [1.0 if s > 0 else 0.0 for s in soft[i]], tokens[i]))
    return out


class MCPRM:
    """MC soft labels as a PRM, `prm(problem, text) -> [score per step]` — pluggable wherever
    the oracle PRM goes. Costly (m rollouts per step), so each step *prefix* is labelled once
    (a beam's longer prefixes reuse their parents' labels), and `many` labels a whole search
    depth in one rollout batch. A prefix the ORM already accepts scores 1 without rollouts."""

    def __init__(self, engine: Engine, params: SamplingParams, m: int,
                 orm: Callable[[Problem, str], bool]):
        self.engine, self.params, self.m, self.orm = engine, params, m, orm
        self.cache: dict[tuple[str, str], float] = {}     # (problem, prefix) → soft label
        self.tokens = 0                                    # rollout tokens spent so far

    def __call__(self, problem: Problem, text: str) -> list[float]:
        return self.many([(problem, text)])[0]

    def many(self, items: list[tuple[Problem, str]]) -> list[list[float]]:
        need = {(p.problem_id, pre): (p, pre) for p, t in items for pre in step_prefixes(t)
                if (p.problem_id, pre) not in self.cache}
        roll = []
        for key, (p, pre) in need.items():
            if self.orm(p, pre):
                self.cache[key] = 1.0
            else:
                roll.append((key, p, pre))
        outs = self.engine.sample([p.prompt + pre for _, p, pre in roll], self.m,
                                  self.params) if roll else []
        for (key, p, pre), row in zip(roll, outs):
            self.cache[key] = sum(self.orm(p, pre + s.text) for s in row) / len(row)
            self.tokens += sum(s.n_tokens for s in row)
        return [[self.cache[(p.problem_id, pre)] for pre in step_prefixes(t)] for p, t in items]


def agreement(labels: list[list[float]], oracle: list[list[float]]) -> float:
    """Share of steps where the hard MC label equals the oracle's label."""
    pairs = [(a, b) for la, lb in zip(labels, oracle) for a, b in zip(la, lb)]
    return sum((a > 0) == (b > 0) for a, b in pairs) / max(1, len(pairs))
