import subprocess
import sys
import time

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.store import db


def _rows(n, iteration=1):
    return [{"problem_id": f"p{i % 3}", "method": "best_of_n", "sample_idx": i, "text": f"t{i}",
             "n_tokens": 5, "steps": ["a", "b"], "step_rewards": [1.0, 0.0],
             "outcome_reward": float(i % 2), "correct": bool(i % 2)} for i in range(n)]


def test_inserts_are_idempotent(tmp_path):
    path = tmp_path / "x.duckdb"
    db.init_db(path)
    df = db.trajectories_frame("r1", 1, _rows(10))
    assert db.insert_trajectories(path, df) == 10
    assert db.insert_trajectories(path, df) == 0
    assert db.insert_trajectories(path, db.trajectories_frame("r1", 2, _rows(10))) == 10
    q = db.query(path, "SELECT count(*) AS n, count(DISTINCT traj_id) AS d FROM trajectories")
    assert q.row(0) == (20, 20)
    assert db.query(path, "SELECT count(*) AS n FROM d_expert")["n"][0] == 10
    errs = db.query(path, "SELECT step, error_rate FROM step_error_rates WHERE iteration = 1")
    assert errs.rows() == [(1, 0.0), (2, 1.0)]


def test_traj_id_is_deterministic():
    assert db.traj_id("r", 1, "p", "m", 0) == db.traj_id("r", 1, "p", "m", 0)
    assert db.traj_id("r", 1, "p", "m", 0) != db.traj_id("r", 1, "p", "m", 1)


def test_evals_replace_not_append(tmp_path):
    path = tmp_path / "x.duckdb"
    db.init_db(path)
    row = {"run_id": "r", "iteration": 1, "model_version": "1", "split": "test",
           "method": "greedy", "budget": 1, "metric": "pass@1", "k": 1, "value": 0.5, "n": 10}
    db.replace_evals(path, "r", 1, [row])
    db.replace_evals(path, "r", 1, [{**row, "value": 0.6}])
    assert db.query(path, "SELECT value FROM evals")["value"].to_list() == [0.6]
    assert db.query(path, "SELECT test_pass1 FROM pass_by_iteration")["test_pass1"][0] == 0.6


def test_reader_waits_for_a_writer_in_another_process(tmp_path):
    """DuckDB locks the file per process; a reader must retry, not fail."""
    path = tmp_path / "x.duckdb"
    db.init_db(path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, time, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
        " time.sleep(1.5); c.close()"), str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t = time.monotonic()
    assert db.query(path, "SELECT count(*) AS n FROM runs")["n"][0] == 0
    assert time.monotonic() - t > 0.3      # it really had to wait for the lock
    holder.wait()


def test_bad_sql_and_missing_db_are_clear(tmp_path):
    path = tmp_path / "x.duckdb"
    with pytest.raises(ReasonloopError, match="no database"):
        db.query(path, "SELECT 1")
    db.init_db(path)
    with pytest.raises(ReasonloopError, match="SQL error"):
        db.query(path, "SELEC nonsense")
