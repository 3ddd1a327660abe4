"""Sample allocation: which train problems an iteration searches, from the store's history."""
import random

from reasonloop.config import Config
from reasonloop.envs.base import Problem
from reasonloop.stages.generate import allocation_key
from reasonloop.store import db


def _row(pid, i, correct, method="best_of_n"):
    return {"problem_id": pid, "method": method, "sample_idx": i, "text": f"{pid}-{i}",
            "n_tokens": 3, "steps": ["s"], "step_rewards": [1.0],
            "outcome_reward": float(correct), "correct": correct}


def test_search_history_counts_rate_and_times_from_search_rows_only(tmp_path):
    path = tmp_path / "x.duckdb"
    db.init_db(path)
    # iteration 1: "a" 1 of 4 right, "b" 0 of 4; iteration 2: "a" again, 4 of 4
    first = [_row("a", i, i == 0) for i in range(4)] + [_row("b", i, False) for i in range(4)]
    db.insert_trajectories(path, db.trajectories_frame("r", 1, first))
    db.insert_trajectories(path, db.trajectories_frame("r", 2, [_row("a", i, True)
                                                                for i in range(4)]))
    # eval rows and other runs do not count
    db.insert_trajectories(path, db.trajectories_frame("r", 2, [_row("b", 9, True, "eval:greedy")]))
    db.insert_trajectories(path, db.trajectories_frame("other", 1, [_row("c", 0, True)]))
    assert db.search_history(path, "r", 2) == {"a": (0.25, 1), "b": (0.0, 1)}
    assert db.search_history(path, "r", 3) == {"a": (5 / 8, 2), "b": (0.0, 1)}
    assert db.search_history(path, "r", 1) == {}


def _order(allocation, history, ids):
    cfg = Config.model_validate({"search": {"allocation": allocation}})
    problems = [Problem(problem_id=p, split="train", prompt=p) for p in ids]
    random.Random(0).shuffle(problems)
    return [p.problem_id for p in sorted(problems, key=allocation_key(cfg, history))]


def test_learnable_serves_unseen_then_partly_solved_least_searched_then_the_rest():
    history = {"never": (0.0, 1), "always": (1.0, 1), "half": (0.5, 2), "some": (0.1, 1),
               "never2": (0.0, 3)}
    order = _order("learnable", history, ["new1", "new2", *history])
    assert set(order[:2]) == {"new1", "new2"}
    assert order[2:4] == ["some", "half"]                 # partly solved, fewer searches first
    assert set(order[4:6]) == {"never", "always"} and order[6] == "never2"


def test_unsolved_serves_never_solved_before_solved():
    history = {"never": (0.0, 1), "always": (1.0, 1), "half": (0.5, 1)}
    order = _order("unsolved", history, ["new", *history])
    assert order[:2] == ["new", "never"] and set(order[2:]) == {"always", "half"}
