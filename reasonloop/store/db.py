"""The DuckDB store: every problem, trajectory, score and eval, queryable with plain SQL.

DuckDB holds a whole-process file lock, so the flow opens the file only for short write
transactions and closes it; readers open read-only and retry for a moment — a user running
`reasonloop sql` during a flywheel run never sees a lock error. Writes are idempotent:
trajectory ids are deterministic and inserts skip ids already present.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from reasonloop.errors import ReasonloopError
from reasonloop.faults import TransientError
from reasonloop.paths import (
    EVALS,
    ITERATIONS,
    PROBLEMS,
    PROMOTIONS,
    REWARD_MODELS,
    RUNS,
    TRAJECTORIES,
)
from reasonloop.store import rollups
from reasonloop.store.rollups import SEARCH_ROWS

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
  run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, config_json JSON, config_hash VARCHAR,
  git_sha VARCHAR, processor VARCHAR, capability VARCHAR, bf16_native BOOLEAN,
  train_dtype VARCHAR, sample_dtype VARCHAR, train_threads INTEGER, search_threads INTEGER);
CREATE TABLE IF NOT EXISTS {ITERATIONS} (
  run_id VARCHAR, iteration INTEGER, phase VARCHAR, stage_done VARCHAR,
  started_at TIMESTAMP, finished_at TIMESTAMP, policy_path VARCHAR, data_md5 VARCHAR,
  n_search INTEGER, n_expert INTEGER, seconds JSON, n_pairs INTEGER, n_step_pairs INTEGER,
  train_tokens BIGINT, PRIMARY KEY (run_id, iteration));
CREATE TABLE IF NOT EXISTS {PROBLEMS} (
  problem_id VARCHAR PRIMARY KEY, env VARCHAR, split VARCHAR, prompt VARCHAR, meta JSON);
CREATE TABLE IF NOT EXISTS {TRAJECTORIES} (
  traj_id VARCHAR, run_id VARCHAR, iteration INTEGER, problem_id VARCHAR,
  method VARCHAR, sample_idx INTEGER, text VARCHAR, steps VARCHAR[], step_rewards DOUBLE[],
  outcome_reward DOUBLE, correct BOOLEAN, n_tokens INTEGER, created_at TIMESTAMP,
  r_format DOUBLE, r_valid_steps DOUBLE, r_length DOUBLE, shaped_reward DOUBLE,
  verify_error VARCHAR);
CREATE TABLE IF NOT EXISTS {EVALS} (
  run_id VARCHAR, iteration INTEGER, model_version VARCHAR, split VARCHAR, method VARCHAR,
  budget INTEGER, metric VARCHAR, k INTEGER, value DOUBLE, n INTEGER);
CREATE TABLE IF NOT EXISTS {REWARD_MODELS} (
  run_id VARCHAR, iteration INTEGER, kind VARCHAR, labels VARCHAR, path VARCHAR,
  version VARCHAR, n_train INTEGER, n_heldout INTEGER, auc DOUBLE, auc_oracle DOUBLE,
  loss_last DOUBLE, seconds DOUBLE, PRIMARY KEY (run_id, iteration, kind));
CREATE TABLE IF NOT EXISTS {PROMOTIONS} (
  decided_at TIMESTAMP, model VARCHAR, version VARCHAR, champion_version VARCHAR,
  decision VARCHAR, run_id VARCHAR, iteration INTEGER, n INTEGER, b INTEGER, c INTEGER,
  p_value DOUBLE, alpha DOUBLE, who VARCHAR, reason VARCHAR);
"""

# Views are a user interface: each answers a question people ask of a flywheel. Those that
# aggregate every sample read the rollups (store/rollups.py), kept as trajectories arrive.
VIEWS = rollups.VIEWS + f"""
CREATE OR REPLACE VIEW d_expert AS            -- correct training-search trajectories, deduped
SELECT * FROM (
  SELECT t.*, row_number() OVER (PARTITION BY t.run_id, t.iteration, t.problem_id, t.text
                                 ORDER BY t.sample_idx) AS dup
  FROM {TRAJECTORIES} t WHERE t.correct AND t.{SEARCH_ROWS}) WHERE dup = 1;
CREATE OR REPLACE VIEW pass_by_iteration AS   -- the flywheel's curve
SELECT run_id, iteration,
  max(value) FILTER (WHERE split = 'val'  AND metric = 'pass@1') AS val_pass1,
  max(value) FILTER (WHERE split = 'test' AND metric = 'pass@1') AS test_pass1,
  max(value) FILTER (WHERE split = 'test' AND metric = 'pass@k') AS test_passk,
  max(value) FILTER (WHERE split = 'test' AND metric = 'maj@k') AS test_majk
FROM {EVALS} GROUP BY ALL ORDER BY run_id, iteration;
"""


def traj_id(run_id: str, iteration: int, problem_id: str, method: str, sample_idx: int) -> str:
    key = f"{run_id}|{iteration}|{problem_id}|{method}|{sample_idx}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# A new store is written in the storage format of DuckDB 1.5, so the `duckdb` command-line
# client a user reaches for (duckdb-cli on PyPI is 1.5.6; it refuses 2.0's format) opens it.
STORAGE_VERSION = "v1.5.0"


@contextmanager
def connect(path: Path, read_only: bool = False, wait_s: float = 30.0):
    """Open, yield, close. Retries while another process holds the lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if read_only and not Path(path).exists():
                raise ReasonloopError(f"no database yet at {path}: run the flywheel first")
            new = {} if read_only or Path(path).exists() else \
                {"config": {"storage_compatibility_version": STORAGE_VERSION}}
            con = duckdb.connect(str(path), read_only=read_only, **new)
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise ReasonloopError(f"cannot open {path}: {str(e).splitlines()[0]}") from None
            if time.monotonic() > deadline:     # the flow's task retries will try again
                raise TransientError(f"{path} is busy: {str(e).splitlines()[0]}") from None
            time.sleep(0.2)
    try:
        yield con
    finally:
        con.close()


def init_db(path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute(SCHEMA)
        for c in SHAPING_COLS:       # stores made before shaping existed gain the columns
            con.execute(f"ALTER TABLE {TRAJECTORIES} ADD COLUMN IF NOT EXISTS {c} DOUBLE")
        # ... and before an env's verify could raise (the error, kept with its trajectory)
        con.execute(f"ALTER TABLE {TRAJECTORIES} ADD COLUMN IF NOT EXISTS verify_error VARCHAR")
        for c, t in LEARN_COLS.items():   # ... and those made before DPO/GRPO
            con.execute(f"ALTER TABLE {ITERATIONS} ADD COLUMN IF NOT EXISTS {c} {t}")
        for c, t in COMPUTE_COLS.items():   # ... and before the machine was recorded
            con.execute(f"ALTER TABLE {RUNS} ADD COLUMN IF NOT EXISTS {c} {t}")
        con.execute(rollups.SCHEMA)
        rollups.backfill(con)      # ... and before the rollups: aggregated once
        con.execute(VIEWS)


# What a run computed with (reasonloop/compute.py): results in another numeric type are
# other results.
COMPUTE_COLS = {"processor": "VARCHAR", "capability": "VARCHAR", "bf16_native": "BOOLEAN",
                "train_dtype": "VARCHAR", "sample_dtype": "VARCHAR",
                "train_threads": "INTEGER", "search_threads": "INTEGER"}


def record_run(path: Path, run_id: str, config_json: str, config_hash: str, git_sha: str,
               compute: dict | None = None):
    row = {"run_id": run_id, "started_at": now(), "config_json": config_json,
           "config_hash": config_hash, "git_sha": git_sha,
           **{k: (compute or {}).get(k) for k in COMPUTE_COLS}}
    with connect(path) as con:
        con.execute(f"INSERT INTO {RUNS} ({', '.join(row)}) VALUES "
                    f"({', '.join('?' * len(row))}) ON CONFLICT DO NOTHING", list(row.values()))


def insert_problems(path: Path, env_name: str, problems) -> int:
    df = pl.DataFrame({  # noqa: F841 — read by DuckDB below (replacement scan)
        "problem_id": [p.problem_id for p in problems], "env": env_name,
        "split": [p.split for p in problems], "prompt": [p.prompt for p in problems],
        "meta": [json.dumps(p.meta) for p in problems]})
    with connect(path) as con:
        before = con.execute(f"SELECT count(*) FROM {PROBLEMS}").fetchone()[0]
        con.execute(f"INSERT INTO {PROBLEMS} SELECT problem_id, env, split, prompt, "
                    f"meta::JSON FROM df ON CONFLICT DO NOTHING")
        return con.execute(f"SELECT count(*) FROM {PROBLEMS}").fetchone()[0] - before


SHAPING_COLS = ["r_format", "r_valid_steps", "r_length", "shaped_reward"]
LEARN_COLS = {"n_pairs": "INTEGER", "n_step_pairs": "INTEGER", "train_tokens": "BIGINT",
              "max_length": "INTEGER", "cut_examples": "INTEGER"}   # the learner's length
TRAJ_COLS = ["traj_id", "run_id", "iteration", "problem_id", "method", "sample_idx", "text",
             "steps", "step_rewards", "outcome_reward", "correct", "n_tokens", "created_at",
             *SHAPING_COLS, "verify_error"]


def trajectories_frame(run_id: str, iteration: int, rows: list[dict],
                       created_at: datetime | None = None) -> pl.DataFrame:
    ts = created_at or now()
    return pl.DataFrame({
        "traj_id": [traj_id(run_id, iteration, r["problem_id"], r["method"], r["sample_idx"])
                    for r in rows],
        "run_id": [run_id] * len(rows), "iteration": [iteration] * len(rows),
        "problem_id": [r["problem_id"] for r in rows], "method": [r["method"] for r in rows],
        "sample_idx": [r["sample_idx"] for r in rows], "text": [r["text"] for r in rows],
        "steps": [r["steps"] for r in rows], "step_rewards": [r["step_rewards"] for r in rows],
        "outcome_reward": [r["outcome_reward"] for r in rows],
        "correct": [r["correct"] for r in rows], "n_tokens": [r["n_tokens"] for r in rows],
        "created_at": [ts] * len(rows),
        **{c: [r.get(c) for r in rows] for c in SHAPING_COLS},
        "verify_error": [r.get("verify_error") for r in rows]},
        schema_overrides={"steps": pl.List(pl.String), "step_rewards": pl.List(pl.Float64),
                          "iteration": pl.Int32, "sample_idx": pl.Int32, "n_tokens": pl.Int32,
                          **dict.fromkeys(SHAPING_COLS, pl.Float64),
                          "verify_error": pl.String})


def insert_trajectories(path: Path, df: pl.DataFrame) -> int:
    """Insert, skipping ids already stored (a rerun of the same iteration adds nothing), and
    append their rollups in the same transaction. Ids are unique by an anti-join against the
    batch's own runs and iterations (the rows a duplicate could be among: the id names
    them) — not a primary key, whose index slowed ingest 3× by 3M rows."""
    if df.is_empty():
        return 0
    if "verify_error" not in df.columns:      # a D_search written before the column existed
        df = df.with_columns(pl.lit(None, pl.String).alias("verify_error"))
    batch = df.select(TRAJ_COLS).unique("traj_id", keep="first", maintain_order=True)  # noqa: F841
    runs, its = df["run_id"].unique().to_list(), df["iteration"]
    cols = ", ".join(TRAJ_COLS)
    with connect(path) as con:
        con.execute("BEGIN")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE new_rows AS
            SELECT * FROM batch ANTI JOIN (
                SELECT traj_id FROM {TRAJECTORIES} WHERE run_id IN ?
                AND iteration BETWEEN ? AND ?) USING (traj_id)""",
                    [runs, int(its.min()), int(its.max())])
        con.execute(f"INSERT INTO {TRAJECTORIES} ({cols}) SELECT {cols} FROM new_rows")
        rollups.roll(con, "new_rows")
        added = con.execute("SELECT count(*) FROM new_rows").fetchone()[0]
        con.execute("DROP TABLE new_rows")
        con.execute("COMMIT")
    return added


def record_promotion(path: Path, **row) -> None:
    """One gate decision (promoted / refused / manual) — an audit log: manual overrides are
    appended; the gate's decision on a version replaces any earlier one (a rerun's)."""
    cols = ["model", "version", "champion_version", "decision", "run_id", "iteration", "n", "b",
            "c", "p_value", "alpha", "who", "reason"]
    with connect(path) as con:
        con.execute("BEGIN")
        if row.get("who") == "gate":
            con.execute(f"DELETE FROM {PROMOTIONS} WHERE model = ? AND version = ? AND "
                        f"who = 'gate'", [row["model"], str(row["version"])])
        con.execute(f"INSERT INTO {PROMOTIONS} (decided_at, {', '.join(cols)}) VALUES "
                    f"(?, {', '.join('?' * len(cols))})", [now(), *[row.get(c) for c in cols]])
        con.execute("COMMIT")


def update_iteration(path: Path, run_id: str, iteration: int, **fields) -> None:
    """Upsert one iteration's bookkeeping row (stage_done, md5, counts, timings...)."""
    if "seconds" in fields and not isinstance(fields["seconds"], str):
        fields["seconds"] = json.dumps(fields["seconds"])
    with connect(path) as con:
        con.execute("BEGIN")     # all fields or none
        con.execute(f"INSERT INTO {ITERATIONS} (run_id, iteration, started_at) VALUES (?, ?, ?) "
                    f"ON CONFLICT DO NOTHING", [run_id, iteration, now()])
        for k, v in fields.items():
            con.execute(f"UPDATE {ITERATIONS} SET {k} = ? WHERE run_id = ? AND iteration = ?",
                        [v, run_id, iteration])
        con.execute("COMMIT")


def finish_iteration(path: Path, run_id: str, iteration: int, seconds: dict) -> dict:
    """Mark an iteration finished, once: a replay (a resume, a scheduled turn going on from
    it) keeps the first finish time and stage seconds. → the stored seconds."""
    with connect(path) as con:
        con.execute(f"INSERT INTO {ITERATIONS} (run_id, iteration, started_at) VALUES (?, ?, ?) "
                    f"ON CONFLICT DO NOTHING", [run_id, iteration, now()])
        con.execute(f"UPDATE {ITERATIONS} SET finished_at = ?, seconds = ? WHERE run_id = ? "
                    f"AND iteration = ? AND finished_at IS NULL",
                    [now(), json.dumps(seconds), run_id, iteration])
        row = con.execute(f"SELECT seconds FROM {ITERATIONS} WHERE run_id = ? AND "
                          f"iteration = ?", [run_id, iteration]).fetchone()
    return json.loads(row[0]) if row and row[0] else seconds


def replace_evals(path: Path, run_id: str, iteration: int, rows: list[dict]) -> None:
    """Evals of one (run, iteration) are replaced as a whole: rerunning never duplicates."""
    df = pl.DataFrame(rows, schema={  # noqa: F841 — read by DuckDB below
        "run_id": pl.String, "iteration": pl.Int32, "model_version": pl.String,
        "split": pl.String, "method": pl.String, "budget": pl.Int32, "metric": pl.String,
        "k": pl.Int32, "value": pl.Float64, "n": pl.Int32})
    with connect(path) as con:
        con.execute("BEGIN")
        con.execute(f"DELETE FROM {EVALS} WHERE run_id = ? AND iteration = ?", [run_id, iteration])
        con.execute(f"INSERT INTO {EVALS} SELECT * FROM df")
        con.execute("COMMIT")


def record_reward_model(path: Path, row: dict) -> None:
    """One fitted learned verifier (a rerun of the same fit replaces its row)."""
    cols = ["run_id", "iteration", "kind", "labels", "path", "version", "n_train",
            "n_heldout", "auc", "auc_oracle", "loss_last", "seconds"]
    with connect(path) as con:
        con.execute(f"INSERT OR REPLACE INTO {REWARD_MODELS} ({', '.join(cols)}) VALUES "
                    f"({', '.join('?' * len(cols))})", [row.get(c) for c in cols])


READ_STATEMENTS = ("SELECT", "EXPLAIN")   # DESCRIBE, SHOW, SUMMARIZE, FROM parse as SELECT


def check_read_only(sql: str) -> None:
    """`reasonloop sql` answers questions; it never changes the store or writes files (no
    INSERT, UPDATE, CREATE, COPY ... TO, ATTACH, EXPORT, SET, INSTALL)."""
    try:
        kinds = [str(s.type).rsplit(".", 1)[-1] for s in duckdb.extract_statements(sql)]
    except duckdb.Error as e:
        raise ReasonloopError(f"SQL error: {str(e).splitlines()[0]}") from None
    if not kinds:
        raise ReasonloopError("SQL error: empty query")
    if bad := [k for k in kinds if k not in READ_STATEMENTS]:
        raise ReasonloopError(f"refused: the store is read-only here ({bad[0]} statement); "
                              f"use SELECT, DESCRIBE, SHOW or EXPLAIN")


def query(path: Path, sql: str, params: dict | None = None,
          read_only: bool = True) -> pl.DataFrame:
    """Run SQL ($name parameters from `params`); read-only by default (safe to call while
    a run is writing)."""
    with connect(path, read_only=read_only) as con:
        try:
            rel = con.sql(sql, params=params) if params else con.sql(sql)
        except duckdb.Error as e:
            raise ReasonloopError(f"SQL error: {str(e).splitlines()[0]}") from None
        return rel.pl() if rel is not None else pl.DataFrame()


def search_history(path: Path, run_id: str, iteration: int) -> dict[str, tuple[float, int]]:
    """{problem_id: (solve rate, times searched)} over a run's training search before
    `iteration` — what sample allocation needs to know of each problem."""
    df = query(path, f"""SELECT problem_id, avg(correct::INT) AS rate,
                                count(DISTINCT iteration) AS times FROM {TRAJECTORIES}
                         WHERE run_id = $run AND iteration < $it AND {SEARCH_ROWS}
                         GROUP BY 1""", {"run": run_id, "it": iteration})
    return ({p: (r, t) for p, r, t in zip(df["problem_id"], df["rate"], df["times"])}
            if df.height else {})
