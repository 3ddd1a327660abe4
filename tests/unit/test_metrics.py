import itertools
import random

import pytest

from reasonloop.eval.metrics import maj_at_k, pass_at_k
from reasonloop.search.aggregate import majority


@pytest.mark.parametrize("n,c,k", [(8, 0, 1), (8, 3, 1), (8, 3, 4), (5, 5, 2), (6, 1, 6)])
def test_pass_at_k_matches_brute_force(n, c, k):
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_pass_at_k_monotone_in_k():
    rng = random.Random(0)
    for _ in range(100):
        n = rng.randint(1, 20)
        c = rng.randint(0, n)
        vals = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert vals == sorted(vals) and vals[0] == pytest.approx(c / n)


def test_majority_and_maj_at_k():
    assert majority(["3", None, "5", "5"]) == "5"
    assert majority([None, None]) is None
    assert majority(["3", "5"]) == "3"       # tie → first seen
    assert maj_at_k(["7", "9", "9", "7", "7"], "9", 3) == 1.0
    assert maj_at_k(["7", "9", "9", "7", "7"], "9", 5) == 0.0
