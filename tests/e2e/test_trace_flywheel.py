"""The loop on search traces through the real Prefect flow: a policy BC'd on traces (tests/
solver.py) searches in its own output — tries, checks, backtracks — and the flywheel stores
those traces, keeps the correct ones (every one re-checked by the independent reference),
relabels misses in hindsight, adds the env's repairs of failed problems and trains on them.
And policy init builds from traces."""

import json
from pathlib import Path

import polars as pl
import pytest

from reasonloop.store import db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trace_run(tmp_path_factory, trace_solver_overrides):
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from tests.conftest import SMOKE
    ws = tmp_path_factory.mktemp("traces")
    cfg = load_config(SMOKE, [f"run.root={ws}", *trace_solver_overrides,
                              "filter.prefer_shorter=true", "filter.max_per_problem=1",
                              "filter.corrections=20",
                              "learn.replay_init=0.25", "learn.augment=1", "learn.max_epochs=2",
                              "eval.search_methods=[best_of_n,beam]", "run.iterations=1"])
    history = flywheel(cfg, "run-t")
    return cfg, ws, history


def test_the_policy_searches_in_its_output_and_some_searches_succeed(trace_run):
    from tests.countdown_reference import reference
    cfg, ws, _ = trace_run
    rows = db.query(ws / "reasonloop.duckdb", "SELECT t.text, t.correct, p.meta "
                    "FROM trajectories t JOIN problems p USING (problem_id) "
                    "WHERE t.iteration = 1 AND t.method = 'best_of_n'")
    backtracked = rows.filter(pl.col("text").str.contains("\nback \\["))
    assert backtracked.height > 0
    solved_after_backtrack = backtracked.filter(pl.col("correct"))
    assert solved_after_backtrack.height > 0
    for text, correct, meta in rows.iter_rows():
        m = json.loads(meta)
        assert correct == reference(m["numbers"], m["target"], text), text


def test_d_expert_holds_true_traces_and_bc_trains_on_them(trace_run):
    from tests.countdown_reference import parse_prompt, reference
    cfg, ws, _ = trace_run
    it = db.query(ws / "reasonloop.duckdb", "SELECT n_expert, policy_path FROM iterations "
                  "WHERE iteration = 1")
    expert = pl.read_parquet(ws / "data" / "run-t" / "iter01" / "d_expert.parquet")
    assert expert.height == it["n_expert"][0] > 0
    for r in expert.iter_rows(named=True):
        assert reference(*parse_prompt(r["prompt"]), r["completion"]), r
    search = expert.filter(pl.col("source") == "search")
    assert search["completion"].str.ends_with(" ok\n").all()     # the traces' own check
    # filter.corrections: the env's repairs (true, checked above) of problems that failed
    fixed = expert.filter(pl.col("source") == "correction")
    d_search = pl.read_parquet(ws / "data" / "run-t" / "iter01" / "d_search.parquet")
    failed = set(d_search.filter(~pl.col("correct"))["problem_id"])
    assert 0 < fixed.height <= cfg.filter.corrections and fixed["problem_id"].is_unique().all()
    assert set(fixed["problem_id"]) <= failed
    # hindsight rows (few here: ~2% of this policy's misses have only legal steps) are
    # true traces too — checked with every row above; the rule itself: tests/unit/test_traces
    trained = json.loads((Path(it["policy_path"][0]) / "reasonloop.json").read_text())
    assert trained["train"]["train_tokens"] > 0
    # augment adds a reordered copy of each row, then replay_init mixes init traces back in
    h = expert.height
    n = trained["train"]["n_examples"]
    assert n == 2 * h + int(2 * h * cfg.learn.replay_init)
    # learn.max_epochs=2: no more steps than two passes over those rows take
    b = cfg.learn.batch_size
    assert trained["train"]["steps"] == min(cfg.learn.steps, -(-2 * n // b))


def test_prefer_shorter_keeps_each_problems_shortest_correct_traces(trace_run):
    cfg, ws, _ = trace_run
    k = cfg.filter.max_per_problem
    d_search = pl.read_parquet(ws / "data" / "run-t" / "iter01" / "d_search.parquet")
    expert = pl.read_parquet(ws / "data" / "run-t" / "iter01" / "d_expert.parquet")
    kept = expert.filter(pl.col("source") == "search").group_by("problem_id").agg(
        pl.col("completion").str.len_chars().alias("kept"))
    correct = (d_search.filter(pl.col("correct")).unique(["problem_id", "text"])
               .group_by("problem_id").agg(pl.col("text").str.len_chars().alias("all")))
    both = kept.join(correct, on="problem_id")
    assert both.height == kept.height > 0
    capped = 0
    for _, kept_lengths, all_lengths in both.iter_rows():
        assert sorted(kept_lengths) == sorted(all_lengths)[:k]
        capped += len(all_lengths) > k
    assert capped > 0          # the cap had to choose somewhere


def test_policy_init_from_traces(tmp_path):
    from reasonloop.config import load_config
    from reasonloop.policy.init import load_policy
    from reasonloop.stages.init import init
    from tests.conftest import SMOKE
    cfg = load_config(SMOKE, [f"run.root={tmp_path}", "policy.init_data=traces",
                              "policy.init_steps=3", "policy.context=256"])
    path = init(cfg, "run-i")
    model, _ = load_policy(path)
    assert model.config.max_position_embeddings == 256
    meta = json.loads((Path(path) / "reasonloop.json").read_text())
    assert meta["config"]["policy"]["init_data"] == "traces"


def test_eval_cli_runs_the_trace_champion_on_four_number_problems(trace_run, tmp_path):
    """`reasonloop eval --model NAME@champion --problems FILE` with the run's trace champion
    on 4-number problems (the standard setting's shape): it runs, stores every trajectory,
    and its accuracy is what those trajectories say."""
    import polars as pl

    from tests.conftest import SMOKE
    from tests.countdown_reference import reference
    from tests.e2e.test_cli import _run
    cfg, ws, _ = trace_run
    rows = [([3, 5, 7, 2], 24), ([10, 20, 30, 40], 100), ([1, 2, 3, 4], 10), ([9, 9, 1, 1], 81)]
    f = tmp_path / "four.jsonl"
    f.write_text("".join(json.dumps({"numbers": n, "target": t}) + "\n" for n, t in rows))
    r = _run(["eval", "--model", f"{cfg.run.name}@champion", "--methods", "best_of_n",
              "--budgets", "2", "--problems", str(f), "-c", str(SMOKE), "--root", str(ws),
              "--set", f"policy.max_new_tokens={cfg.policy.max_new_tokens}"], tmp_path)
    assert r.returncode == 0, r.stderr
    store = ws / "reasonloop.duckdb"
    run_id, acc = db.query(store, "SELECT run_id, value FROM evals WHERE split = 'file' AND "
                           "method = 'best_of_n' AND metric = 'accuracy'").row(0)
    traj = db.query(store, "SELECT t.problem_id, t.text, t.correct, p.meta FROM trajectories t "
                    "JOIN problems p USING (problem_id) WHERE t.method = 'eval:best_of_n@2' "
                    "AND t.run_id = $run", {"run": run_id})
    assert traj.height == 2 * len(rows)
    for _, text, correct, meta in traj.iter_rows():
        m = json.loads(meta)
        assert len(m["numbers"]) == 4 and correct == reference(m["numbers"], m["target"], text)
    solved = traj.group_by("problem_id").agg(pl.col("correct").any())["correct"].sum()
    assert acc == pytest.approx(solved / len(rows))
