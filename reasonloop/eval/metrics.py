"""pass@1 (greedy), unbiased pass@k (Chen et al. 2021) and maj@k (self-consistency)."""

from __future__ import annotations

import math

from reasonloop.search.aggregate import majority


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k draws without replacement from n samples, c correct, is correct)
    = 1 - C(n-c, k) / C(n, k). Unbiased, unlike 1-(1-c/n)^k."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(answers: list[str | None], target: str, k: int) -> float:
    """Expected accuracy of a majority vote over k samples, estimated on the first k
    (deterministic; ties broken by first occurrence). Unparseable answers do not vote."""
    return 1.0 if majority(answers[:k]) == target else 0.0


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0
