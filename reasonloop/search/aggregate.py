"""Aggregators over N samples of one problem: majority vote (self-consistency, maj@k)."""

from __future__ import annotations

from collections import Counter


def majority(answers: list[str | None]) -> str | None:
    """Most common parsed answer; unparseable samples do not vote. Ties → first seen."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    best = max(votes.values())
    return next(a for a in answers if a is not None and votes[a] == best)
