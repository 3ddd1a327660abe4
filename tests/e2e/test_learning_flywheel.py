"""BC → DPO → GRPO through the real flow (the solver smoke setting, so DPO's pairs come from
real outcomes, and the env's repairs of wrong ones): the schedule switches, each
iteration's phase is recorded in DuckDB and on its MLflow version, GRPO's samples are stored
as trajectories, and the run report (train-time scaling, phases) is written and logged."""

import polars as pl
import pytest

from reasonloop.store import db, registry

pytestmark = pytest.mark.slow

GRPO = {"steps": 3, "prompts_per_step": 4, "num_generations": 4}


@pytest.fixture(scope="module")
def scheduled_run(tmp_path_factory, solver_overrides):
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from tests.conftest import SMOKE
    ws = tmp_path_factory.mktemp("learn")
    cfg = load_config(SMOKE, [f"run.root={ws}", *solver_overrides, "run.iterations=3",
                              "learn.schedule=[bc,dpo,grpo]", "learn.plateau=1.0",
                              "learn.dpo.steps=4", "learn.dpo.batch_size=4",
                              "learn.dpo.correction_pairs_per_problem=1",
                              "eval.search_methods=[]",
                              *[f"learn.grpo.{k}={v}" for k, v in GRPO.items()]])
    return cfg, ws, flywheel(cfg, "sched")


def test_phases_switch_and_are_recorded(scheduled_run):
    cfg, ws, history = scheduled_run
    assert [h["phase"] for h in history] == ["init", "bc", "dpo", "grpo"]
    its = db.query(ws / "reasonloop.duckdb",
                   "SELECT iteration, phase FROM iterations ORDER BY iteration")
    assert its["phase"].to_list() == ["init", "bc", "dpo", "grpo"]
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    tags = {int(v["iteration"]): v["phase"] for v in registry.list_versions(cfg.run.name)}
    assert tags == {0: "init", 1: "bc", 2: "dpo", 3: "grpo"}


def test_pairs_counted_and_grpo_samples_stored(scheduled_run):
    cfg, ws, _ = scheduled_run
    it = db.query(ws / "reasonloop.duckdb", "SELECT iteration, n_pairs, n_step_pairs, "
                  "train_tokens FROM iterations WHERE iteration = 2").row(0, named=True)
    pairs = pl.read_parquet(ws / "data" / "sched" / "iter02" / "d_pairs.parquet")
    assert it["n_pairs"] == pairs.height > 0          # built from real outcomes (solver)
    assert (pairs["kind"] == "outcome").sum() > 0
    from tests.countdown_reference import parse_prompt, reference
    for r in pairs.iter_rows(named=True):
        # outcome: a correct vs a wrong answer; correction: the lines a wrong answer shares
        # with the env's repair of it (in the prompt), then the repair's rest vs the answer's
        if r["kind"] != "step":
            problem, _, shared = r["prompt"].partition("\n")
            nums_target = parse_prompt(problem + "\n")
            assert reference(*nums_target, shared + r["chosen"]), r
            assert not reference(*nums_target, shared + r["rejected"]), r
            assert r["kind"] == "outcome" or r["chosen"] != r["rejected"]
    assert (pairs["kind"] == "correction").sum() > 0
    assert it["n_step_pairs"] == pairs.filter(pl.col("kind") != "outcome").height
    grpo = db.query(ws / "reasonloop.duckdb", """SELECT iteration, count(*) AS n,
        count(DISTINCT traj_id) AS ids, bool_and(shaped_reward IS NOT NULL) AS scored
        FROM trajectories WHERE method = 'grpo' GROUP BY 1""")
    n = GRPO["steps"] * GRPO["prompts_per_step"] * GRPO["num_generations"]
    assert grpo.rows() == [(3, n, n, True)]
    # the GRPO iteration searched inside its trainer: no best-of-N rows for it
    assert db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories WHERE "
                    "iteration = 3 AND method = 'best_of_n'")["n"][0] == 0


def test_run_report_written_and_logged(scheduled_run):
    cfg, ws, _ = scheduled_run
    rep = ws / "reports" / "sched"
    assert (rep / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (rep / "scaling.md").read_text()
    assert all(f"| {i} | {p} |" in md for i, p in enumerate(["init", "bc", "dpo", "grpo"]))
    t = db.query(ws / "reasonloop.duckdb", "SELECT sum(n_tokens) AS n FROM trajectories "
                 "WHERE method NOT LIKE 'eval:%'")["n"][0]
    assert f"{int(t):,} |" in md                      # cumulative generated tokens, all of it
    import mlflow
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    runs = mlflow.search_runs(experiment_names=[cfg.run.name],
                              filter_string="tags.report = 'flywheel'", output_format="list")
    assert len(runs) == 1
    from reasonloop.stages import register
    register.report(cfg, "sched")                  # rebuilt (as `reasonloop report` does)
    assert len(mlflow.search_runs(experiment_names=[cfg.run.name], output_format="list",
                                  filter_string="tags.report = 'flywheel'")) == 1
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert {"report.html", "scaling.png", "scaling.md", "train_time.png"} <= arts
    page = (rep / "report.html").read_text()
    # the phase changes are on the page, in order, and each iteration's row names its phase
    assert "init (from iteration 0) → bc (from iteration 1) → dpo (from iteration 2) → " \
           "grpo (from iteration 3)" in page
    # train-time, scaling, distributions, growth (no test-time search in this run)
    assert page.count('src="data:image/png;base64,') == 4
