"""The explicit tables of search methods (one shared signature, STYLE rule 7).

SEARCH: `method(problems, engine, params, n, spec) -> rows` — what the generate stage runs.
TEST_TIME: the names `reasonloop eval --methods` takes → (search method, selector). The three
best-of-N variants share one set of samples and differ only in how the answer is picked.
"""

from reasonloop.search.beam import beam, dvts
from reasonloop.search.best_of_n import best_of_n
from reasonloop.search.mcts import mcts
from reasonloop.search.revise import revise

SEARCH = {"best_of_n": best_of_n, "beam": beam, "dvts": dvts, "mcts": mcts, "revise": revise}

TEST_TIME = {
    "best_of_n": ("best_of_n", "best"),
    "majority": ("best_of_n", "majority"),
    "weighted_bon": ("best_of_n", "weighted"),
    "beam": ("beam", "best"),
    "dvts": ("dvts", "best"),
    "mcts": ("mcts", "best"),
    "revise": ("revise", "best"),
}
