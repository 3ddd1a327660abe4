"""The store at scale: ids stay unique without a primary key, and every view that reads the
rollups answers exactly what its row-by-row definition over `trajectories` answers — across
batches, reruns, split batches of one iteration, eval rows, and stores made before the
rollups existed."""

import random

import duckdb

from reasonloop.store import db

# The views' row-by-row definitions (what they were before the rollups).
ROW_BY_ROW = {
    "unsolved_problems": """
        SELECT p.problem_id, p.prompt, t.run_id, count(*) AS attempts
        FROM trajectories t JOIN problems p USING (problem_id)
        WHERE p.split = 'train' AND t.method NOT LIKE 'eval:%'
        GROUP BY ALL HAVING NOT bool_or(t.correct) ORDER BY attempts DESC, problem_id""",
    "search_efficiency": """
        SELECT run_id, iteration, method, count(DISTINCT problem_id) AS problems,
          count(DISTINCT problem_id) FILTER (WHERE correct) AS solved, sum(n_tokens) AS tokens,
          round(1000.0 * count(DISTINCT problem_id) FILTER (WHERE correct) / sum(n_tokens), 3)
            AS solved_per_1k_tokens
        FROM trajectories WHERE method NOT LIKE 'eval:%'
        GROUP BY ALL ORDER BY run_id, iteration, method""",
    "reward_hacking": """
        SELECT run_id, iteration, method, count(*) AS n_wrong,
          count(*) FILTER (WHERE shaped_reward >= 1.0) AS n_high_shaped_wrong,
          round(avg(shaped_reward), 3) AS mean_shaped_wrong, max(shaped_reward)
            AS max_shaped_wrong
        FROM trajectories WHERE NOT correct AND shaped_reward IS NOT NULL
        GROUP BY ALL ORDER BY run_id, iteration, method""",
    "step_error_rates": """
        SELECT run_id, iteration, step, count(*) AS n,
          avg(CASE WHEN r < 0.5 THEN 1 ELSE 0 END) AS error_rate
        FROM (SELECT run_id, iteration, unnest(step_rewards) AS r,
                     generate_subscripts(step_rewards, 1) AS step
              FROM trajectories WHERE method NOT LIKE 'eval:%')
        GROUP BY ALL ORDER BY run_id, iteration, step""",
}
ORDER = {"unsolved_problems": " ORDER BY attempts DESC, problem_id"}


def _rows(rng, n, method="best_of_n", start=0):
    out = []
    for i in range(start, start + n):
        k = rng.randint(0, 4)
        out.append({"problem_id": f"p{rng.randint(0, 30)}", "method": method, "sample_idx": i,
                    "text": f"t{rng.randint(0, 5)}", "n_tokens": rng.randint(1, 40),
                    "steps": ["s"] * k, "step_rewards": [rng.choice([0.0, 0.3, 0.9, 1.0])
                                                         for _ in range(k)],
                    "outcome_reward": 0.0, "correct": rng.random() < 0.15,
                    "shaped_reward": rng.choice([None, 0.2, 1.0, 1.5])})
    return out


def _fill(path, rng):
    from reasonloop.envs.base import Problem
    db.insert_problems(path, "countdown", [Problem(f"p{i}", "train" if i % 4 else "val",
                                                   f"q{i}", {}) for i in range(31)])
    for run in ("ra", "rb"):
        for it in (1, 2, 3):
            rows = _rows(rng, 200)
            df = db.trajectories_frame(run, it, rows)
            assert db.insert_trajectories(path, df) == 200
            assert db.insert_trajectories(path, df) == 0             # a rerun adds nothing
            half = db.trajectories_frame(run, it, _rows(rng, 50, "grpo", 1000))
            db.insert_trajectories(path, half[:25])                  # a split batch
            assert db.insert_trajectories(path, half) == 25          # overlapping the first
            db.insert_trajectories(path, db.trajectories_frame(run, it, _rows(
                rng, 40, "eval:greedy")))


def _same_as_row_by_row(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        for view, sql in ROW_BY_ROW.items():
            got = con.sql(f"SELECT * FROM {view}{ORDER.get(view, '')}").fetchall()
            want = con.sql(sql).fetchall()
            assert got == want, view
            assert got, view
    finally:
        con.close()


def test_ids_stay_unique_and_every_rollup_view_equals_its_row_by_row_definition(tmp_path):
    path = tmp_path / "x.duckdb"
    db.init_db(path)
    _fill(path, random.Random(0))
    q = db.query(path, "SELECT count(*) AS n, count(DISTINCT traj_id) AS d FROM trajectories")
    assert q.row(0) == (2 * 3 * (200 + 50 + 40),) * 2
    _same_as_row_by_row(path)


def test_a_store_made_before_the_rollups_is_backfilled_once(tmp_path):
    """The old schema (a primary key on traj_id, views over rows), filled, then opened by
    this version: rollups computed from what it holds, and later batches add to them."""
    path = tmp_path / "old.duckdb"
    db.init_db(path)
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE rollup_search_problems; DROP TABLE rollup_step_errors; "
                "DROP TABLE rollup_wrong_shaped; DROP TABLE trajectories")
    con.execute("CREATE TABLE trajectories (traj_id VARCHAR PRIMARY KEY, run_id VARCHAR, "
                "iteration INTEGER, problem_id VARCHAR, method VARCHAR, sample_idx INTEGER, "
                "text VARCHAR, steps VARCHAR[], step_rewards DOUBLE[], outcome_reward DOUBLE, "
                "correct BOOLEAN, n_tokens INTEGER, created_at TIMESTAMP)")
    con.close()
    rng = random.Random(1)
    df = db.trajectories_frame("old", 1, _rows(rng, 300))  # noqa: F841 — read by DuckDB
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO trajectories SELECT traj_id, run_id, iteration, problem_id, "
                "method, sample_idx, text, steps, step_rewards, outcome_reward, correct, "
                "n_tokens, created_at FROM df")
    con.close()
    db.init_db(path)                  # upgrade: columns added, rollups backfilled
    db.init_db(path)                  # ... once
    _fill(path, rng)                  # new batches on the old table (its key still holds)
    _same_as_row_by_row(path)
