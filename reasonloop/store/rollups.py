"""Rollups: partial aggregates of the trajectories, appended in the same transaction as the
rows they sum, so the views people open most read tables ~16× smaller than `trajectories`
(one row per problem and batch, or per step and batch) instead of every sample.

Partial sums merge by adding, so a batch never updates an earlier row: each insert appends
its own aggregates and the views add them up. Trajectories are never deleted or updated, so
the rollups stay exact; a store made before them is backfilled once (`backfill`).
"""

from __future__ import annotations

from reasonloop.paths import PROBLEMS, TRAJECTORIES
from reasonloop.reward.process import GOOD_STEP

# Training-time search only: evaluation rows are stored with methods `eval:<how>`.
SEARCH_ROWS = "method NOT LIKE 'eval:%'"

SEARCH_PROBLEMS = "rollup_search_problems"  # per batch × (run, iteration, method, problem)
STEP_ERRORS = "rollup_step_errors"          # per batch × (run, iteration, step)
WRONG_SHAPED = "rollup_wrong_shaped"        # per batch × (run, iteration, method)
TABLES = (SEARCH_PROBLEMS, STEP_ERRORS, WRONG_SHAPED)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {SEARCH_PROBLEMS} (run_id VARCHAR, iteration INTEGER,
  method VARCHAR, problem_id VARCHAR, n BIGINT, n_correct BIGINT, tokens BIGINT);
CREATE TABLE IF NOT EXISTS {STEP_ERRORS} (run_id VARCHAR, iteration INTEGER, step BIGINT,
  n BIGINT, n_bad BIGINT);
CREATE TABLE IF NOT EXISTS {WRONG_SHAPED} (run_id VARCHAR, iteration INTEGER, method VARCHAR,
  n BIGINT, n_high BIGINT, sum_shaped DOUBLE, max_shaped DOUBLE);
"""


def roll(con, source: str) -> None:
    """Append the aggregates of the rows in `source` (a table of new trajectories)."""
    con.execute(f"""INSERT INTO {SEARCH_PROBLEMS}
        SELECT run_id, iteration, method, problem_id, count(*),
               count(*) FILTER (WHERE correct), coalesce(sum(n_tokens), 0)
        FROM {source} WHERE {SEARCH_ROWS} GROUP BY ALL""")
    con.execute(f"""INSERT INTO {STEP_ERRORS}
        SELECT run_id, iteration, step, count(*), count(*) FILTER (WHERE r < {GOOD_STEP})
        FROM (SELECT run_id, iteration, unnest(step_rewards) AS r,
                     generate_subscripts(step_rewards, 1) AS step
              FROM {source} WHERE {SEARCH_ROWS}) GROUP BY ALL""")
    con.execute(f"""INSERT INTO {WRONG_SHAPED}
        SELECT run_id, iteration, method, count(*), count(*) FILTER (WHERE shaped_reward >= 1.0),
               sum(shaped_reward), max(shaped_reward)
        FROM {source} WHERE NOT correct AND shaped_reward IS NOT NULL GROUP BY ALL""")


def backfill(con) -> None:
    """A store written before the rollups existed: aggregate what it holds, once."""
    empty = all(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0 for t in TABLES)
    if empty and con.execute(f"SELECT count(*) FROM {TRAJECTORIES}").fetchone()[0]:
        roll(con, TRAJECTORIES)


# The views over them: the same columns as when they read `trajectories` row by row.
VIEWS = f"""
CREATE OR REPLACE VIEW unsolved_problems AS   -- train problems searched but never solved
SELECT p.problem_id, p.prompt, s.run_id, sum(s.n)::BIGINT AS attempts
FROM {SEARCH_PROBLEMS} s JOIN {PROBLEMS} p USING (problem_id)
WHERE p.split = 'train'
GROUP BY ALL HAVING sum(s.n_correct) = 0 ORDER BY attempts DESC;
CREATE OR REPLACE VIEW search_efficiency AS  -- training-time search: solved per 1k tokens
SELECT run_id, iteration, method, count(DISTINCT problem_id) AS problems,
  count(DISTINCT problem_id) FILTER (WHERE n_correct > 0) AS solved,
  sum(tokens)::BIGINT AS tokens,
  round(1000.0 * count(DISTINCT problem_id) FILTER (WHERE n_correct > 0) / sum(tokens), 3)
    AS solved_per_1k_tokens
FROM {SEARCH_PROBLEMS}
GROUP BY ALL ORDER BY run_id, iteration, method;
CREATE OR REPLACE VIEW reward_hacking AS     -- shaped reward as high as a solve's, but wrong
SELECT run_id, iteration, method, sum(n)::BIGINT AS n_wrong,
  sum(n_high)::BIGINT AS n_high_shaped_wrong, round(sum(sum_shaped) / sum(n), 3)
    AS mean_shaped_wrong, max(max_shaped) AS max_shaped_wrong
FROM {WRONG_SHAPED} GROUP BY ALL ORDER BY run_id, iteration, method;
CREATE OR REPLACE VIEW step_error_rates AS    -- where solutions go wrong (a step below GOOD_STEP)
SELECT run_id, iteration, step, sum(n)::BIGINT AS n, sum(n_bad) / sum(n) AS error_rate
FROM {STEP_ERRORS}
GROUP BY ALL ORDER BY run_id, iteration, step;
"""
