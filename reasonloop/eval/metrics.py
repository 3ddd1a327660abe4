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


def auc(labels: list[bool], scores: list[float]) -> float:
    """ROC AUC = P(a random positive scores above a random negative), ties count half
    (Mann–Whitney U from mid-ranks). NaN when one class is missing."""
    pairs = sorted(zip(scores, labels))
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + 1 + j) / 2                       # mean of ranks i+1..j
        rank_sum += mid * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
