"""What every search method shares: one signature and one bag of knobs.

    method(problems, engine, params, n, spec) -> rows

`n` is the budget (samples for best-of-N, step proposals per depth for beam/DVTS, simulations
for MCTS, attempts for revision). Rows are one per returned trajectory — problem_id, method,
sample_idx, text, n_tokens — and a problem's `n_tokens` add up to every token generated for
it (pruned expansions and rollouts included), so methods compare at equal compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from reasonloop.envs.base import Problem

PRM = Callable[[Problem, str], list[float]]      # step scores of a (partial) completion


@dataclass(frozen=True)
class SearchSpec:
    """The verifiers a search may consult and its knobs (from `search.*` in the config)."""
    prm: PRM | None = None                                     # scores steps (oracle/learned)
    orm: Callable[[Problem, str], bool] | None = None          # exact verifier, if the env has one
    orm_score: Callable[[Problem, str], float] | None = None   # a learned ORM's P(correct)
    feedback: Callable[[Problem, str], str | None] | None = None   # revision: what went wrong
    width: int = 4            # beam: prefixes kept; DVTS: n // width independent sub-trees
    expand: int = 4           # MCTS: next steps sampled when a leaf is expanded
    c_puct: float = 1.0       # MCTS: exploration weight in PUCT
    value: str = "prm"        # MCTS leaf value: the PRM's score, or a rollout's ORM outcome
    token_budget: int | None = None   # MCTS: also stop a problem after this many tokens
    rounds: int = 4           # revision: attempts per chain
    max_steps: int = 16       # step-level methods: depth limit
    progress: bool = False
    trace: list | None = None  # when a list, methods append what they decided (for tests/debug)


def share(spent: int, k: int) -> list[int]:
    """Split a problem's tokens over its k returned rows so that they add up exactly."""
    k = max(1, k)
    return [spent // k + (1 if i < spent % k else 0) for i in range(k)]


def scores_of(scorer, items: list[tuple[Problem, str]]) -> list:
    """A verifier's scores for many (problem, text) at once: learned and Monte-Carlo PRMs
    batch them (`scorer.many`) — one forward pass or one rollout call per search depth."""
    many = getattr(scorer, "many", None)
    return many(items) if many is not None else [scorer(p, t) for p, t in items]


def last_scores(spec: SearchSpec, items: list[tuple[Problem, str]]) -> list[float]:
    """The PRM's value of each prefix: its score of the last step (0 for an empty prefix)."""
    return [float(s[-1]) if s else 0.0 for s in scores_of(spec.prm, items)]


def one_step(problems: list[Problem], params):
    """Sampling that stops after one step (the env's separator, kept in the text), for
    step-level search → (separator, params)."""
    sep = problems[0].step_sep if problems else "\n"
    return sep, replace(params, stop=(sep,))
