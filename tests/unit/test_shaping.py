"""Reward shaping: each term stored on its own, the terms add up to the stored total, the
`reward_hacking` view finds wrong answers that shaping pays like solves; old stores migrate."""

import duckdb
import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, solve
from reasonloop.reward.outcome import score_rows
from reasonloop.store import db

ENV = Countdown(EnvConfig(n_train=300))
P = next(p for p in ENV.problems() if p.split == "train")
W = {"format": 0.6, "valid_steps": 0.5, "length": -0.2}


def _rows():
    """A solve; a legal miss whose first step is the oracle's (so half its steps are good);
    garbage."""
    sol = solve(tuple(P.meta["numbers"]), P.meta["target"])
    good = "\n".join(sol) + "\n"
    x, y = (int(v) for v in sol[0].split("[")[1].rstrip("]").split())
    legal_miss = next(f"{sol[0]}\n{x}{op}{y}={r} [{r}]\n" for op, r in
                      (("+", x + y), ("*", x * y)) if r != P.meta["target"])
    return [{"problem_id": P.problem_id, "method": "best_of_n", "sample_idx": i, "text": t,
             "n_tokens": n} for i, (t, n) in enumerate([(good, 30), (legal_miss, 30),
                                                         ("garbage", 48)])]


def test_terms_add_up_and_reward_hacking_view(tmp_path):
    scored = score_rows(ENV, {P.problem_id: P}, _rows(), W, max_new_tokens=48)
    for s in scored:
        total = s["outcome_reward"] + sum(W[k] * s[f"r_{k}"] for k in W)
        assert s["shaped_reward"] == pytest.approx(total)
    assert [s["r_format"] for s in scored] == [1.0, 1.0, 0.0]
    assert scored[2]["r_length"] == 1.0 and scored[0]["r_valid_steps"] == 1.0
    path = tmp_path / "s.duckdb"
    db.init_db(path)
    db.insert_trajectories(path, db.trajectories_frame("r", 1, scored))
    back = db.query(path, "SELECT sample_idx, outcome_reward + 0.6 * r_format + "
                          "0.5 * r_valid_steps - 0.2 * r_length AS total, shaped_reward "
                          "FROM trajectories ORDER BY sample_idx")
    assert back["total"].to_list() == pytest.approx(back["shaped_reward"].to_list())
    hack = db.query(path, "SELECT * FROM reward_hacking")
    assert hack["n_wrong"].to_list() == [2]
    assert scored[1]["r_valid_steps"] == 0.5 and scored[1]["r_format"] == 1.0
    # 0.6 (format) + 0.5 * 0.5 (valid steps) - 0.2 * 30/48 (length) < 1.0, a solve's reward
    assert scored[1]["shaped_reward"] == pytest.approx(0.6 + 0.25 - 0.2 * 30 / 48)
    assert hack["n_high_shaped_wrong"].to_list() == [0]
    heavy = score_rows(ENV, {P.problem_id: P}, _rows(), {"format": 0.8, "valid_steps": 0.5},
                       max_new_tokens=48)
    db.insert_trajectories(path, db.trajectories_frame("r", 2, heavy))
    hack = db.query(path, "SELECT * FROM reward_hacking WHERE iteration = 2")
    assert hack["n_high_shaped_wrong"].to_list() == [1]          # 0.8 + 0.25 ≥ 1, wrong


def test_rows_without_shaping_store_nulls_and_old_stores_migrate(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(db.SCHEMA.split("CREATE TABLE IF NOT EXISTS trajectories")[0] +
                "CREATE TABLE trajectories (traj_id VARCHAR PRIMARY KEY, run_id VARCHAR, "
                "iteration INTEGER, problem_id VARCHAR, method VARCHAR, sample_idx INTEGER, "
                "text VARCHAR, steps VARCHAR[], step_rewards DOUBLE[], outcome_reward DOUBLE, "
                "correct BOOLEAN, n_tokens INTEGER, created_at TIMESTAMP);")
    con.close()
    db.init_db(path)                                          # adds the shaping columns
    scored = score_rows(ENV, {P.problem_id: P}, _rows())       # no shaping → NULLs
    assert db.insert_trajectories(path, db.trajectories_frame("r", 1, scored)) == 3
    q = db.query(path, "SELECT count(*) AS n, count(shaped_reward) AS shaped FROM trajectories")
    assert q.rows() == [(3, 0)]
