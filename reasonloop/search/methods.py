"""The explicit tables of search methods: one shared signature, picked by name from a dict
(no plugin registry; DEVELOPERS.md, "Conventions").

SEARCH: `method(problems, engine, params, n, spec) -> rows` — what the generate stage runs.
TEST_TIME: the names `reasonloop eval --methods` takes → (search method, selector, scorer).
The best-of-N variants share one set of samples and differ only in how the answer is picked
and by which verifier's score: the PRM's (`search.prm_aggregation` of its step scores) or a
learned ORM's (`reward.orm_model`, or the run's fitted ORM).
"""

from reasonloop.search.beam import beam, dvts
from reasonloop.search.best_of_n import best_of_n
from reasonloop.search.mcts import mcts
from reasonloop.search.revise import revise

SEARCH = {"best_of_n": best_of_n, "beam": beam, "dvts": dvts, "mcts": mcts, "revise": revise}

TEST_TIME = {
    "best_of_n": ("best_of_n", "best", "prm"),
    "majority": ("best_of_n", "majority", None),
    "weighted_bon": ("best_of_n", "weighted", "prm"),
    "orm_bon": ("best_of_n", "best", "orm"),
    "orm_weighted": ("best_of_n", "weighted", "orm"),
    "beam": ("beam", "best", "prm"),
    "beam_orm": ("beam", "best", "orm"),     # PRM-guided beam, the ORM picks the answer
    "dvts": ("dvts", "best", "prm"),
    "mcts": ("mcts", "best", "prm"),
    "revise": ("revise", "best", "prm"),
}


def needs_orm(methods: list[str]) -> list[str]:
    """The test-time methods whose pick is scored by a learned ORM."""
    return [m for m in methods if TEST_TIME[m][2] == "orm"]
