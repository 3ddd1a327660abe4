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


def rollout_rates(prefixes: list[tuple[Problem, str]], engine: Engine, params: SamplingParams,
                  m: int, orm: Callable[[Problem, str], bool]) -> list[tuple[float, int]]:
    """(share of m rollouts from each prefix that end correct, their tokens) — one batched
    engine call for all prefixes."""
    outs = engine.sample([p.prompt + pre for p, pre in prefixes], m, params) \
        if prefixes and m > 0 else []
    return [(sum(orm(p, pre + s.text) for s in row) / len(row), sum(s.n_tokens for s in row))
            for (p, pre), row in zip(prefixes, outs)]


def mc_labels(items: list[tuple[Problem, str]], engine: Engine, params: SamplingParams,
              m: int, orm: Callable[[Problem, str], bool]) -> list[StepLabels]:
    """Labels for every step of every (problem, completion). A text the ORM already accepts
    labels its last step 1 with no rollout; otherwise the last step is rolled out like the
    others (inside a search the text is a prefix, not a finished answer — a finished wrong
    one just fails its rollouts). All rollouts go in one batched call."""
    prefixes, where = [], []
    done = [orm(p, text) for p, text in items]
    for i, (p, text) in enumerate(items):
        pres = step_prefixes(text, p.step_sep)
        pres = pres[:-1] if done[i] else pres
        prefixes += [(p, pre) for pre in pres]
        where += [(i, k) for k in range(len(pres))]
    soft = [[0.0] * len(split_steps(t, p.step_sep)) for p, t in items]
    tokens = [0] * len(items)
    for (i, k), (rate, tok) in zip(where, rollout_rates(prefixes, engine, params, m, orm)):
        soft[i][k] = rate
        tokens[i] += tok
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
        need = {(p.problem_id, pre): (p, pre) for p, t in items
                for pre in step_prefixes(t, p.step_sep)
                if (p.problem_id, pre) not in self.cache}
        roll = []
        for key, (p, pre) in need.items():
            if self.orm(p, pre):
                self.cache[key] = 1.0
            else:
                roll.append((key, p, pre))
        rates = rollout_rates([(p, pre) for _, p, pre in roll], self.engine, self.params,
                              self.m, self.orm)
        for (key, _, _), (rate, tok) in zip(roll, rates):
            self.cache[key] = rate
            self.tokens += tok
        return [[self.cache[(p.problem_id, pre)] for pre in step_prefixes(t, p.step_sep)]
                for p, t in items]


def agreement(labels: list[list[float]], oracle: list[list[float]]) -> float:
    """Share of steps where the hard MC label equals the oracle's label."""
    pairs = [(a, b) for la, lb in zip(labels, oracle) for a, b in zip(la, lb)]
    return sum((a > 0) == (b > 0) for a, b in pairs) / max(1, len(pairs))
