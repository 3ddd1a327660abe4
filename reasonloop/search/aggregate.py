"""Selectors: which of a problem's candidates is the answer (test-time search's last step).

- best: the candidate the PRM scores highest (best-of-N with a verifier; the pick of
  beam/DVTS/MCTS/revision too);
- majority: self-consistency, the most common final answer (maj@k);
- weighted: PRM-weighted majority — each answer's score is the sum of its candidates' PRM
  scores (Uesato et al. 2022; "weighted best-of-N" in search-and-learn).
Ties always go to the candidate seen first, so a fixed seed gives a fixed pick.
"""

from __future__ import annotations

from collections import defaultdict


def majority(answers: list[str | None]) -> str | None:
    """Most common parsed answer; unparseable samples do not vote. Ties → first seen."""
    return weighted(answers, [1.0] * len(answers))


def weighted(answers: list[str | None], scores: list[float]) -> str | None:
    """The answer with the largest summed score; ties → first seen."""
    total: dict[str, float] = defaultdict(float)
    for a, s in zip(answers, scores):
        if a is not None:
            total[a] += s
    if not total:
        return None
    best = max(total.values())
    return next(a for a in answers if a is not None and total[a] == best)


def select(how: str, answers: list[str | None], scores: list[float]) -> int:
    """Index of the chosen candidate."""
    if how == "best":
        return max(range(len(scores)), key=lambda i: (scores[i], -i))
    if how in ("majority", "weighted"):
        a = majority(answers) if how == "majority" else weighted(answers, scores)
        return answers.index(a) if a is not None else 0
    raise ValueError(f"unknown selector {how!r}")
