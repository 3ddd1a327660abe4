"""The whole loop through the real Prefect flow on configs/smoke.yaml with the solver fixture
(tests/solver.py: a policy that solves some problems): DuckDB, DVC, MLflow and resume, all
real, in a temp workspace — and the loop's data is real: D_expert holds checked solutions,
BC trains on them, the gate decides on problems the models disagree on."""

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from reasonloop.store import db, registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, solver_overrides):
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from tests.conftest import SMOKE
    ws = tmp_path_factory.mktemp("e2e")
    cfg = load_config(SMOKE, [f"run.root={ws}", *solver_overrides])
    history = flywheel(cfg, "run-a")
    return cfg, ws, history


def test_the_loop_runs_on_real_outcomes(finished_run):
    """Search finds solutions, D_expert holds only real ones (checked by the independent
    reference checker), BC trains on them, and each gate decision after the first compares
    models that disagree on some val problems."""
    from reasonloop.workspace import split
    from tests.countdown_reference import parse_prompt, reference
    cfg, ws, history = finished_run
    its = db.query(ws / "reasonloop.duckdb", "SELECT iteration, n_search, n_expert, "
                   "policy_path FROM iterations WHERE iteration > 0 ORDER BY iteration")
    for row in its.iter_rows(named=True):
        assert 0 < row["n_expert"] < row["n_search"]        # some solved, not all
        expert = pl.read_parquet(ws / "data" / "run-a" / f"iter{row['iteration']:02d}" /
                                 "d_expert.parquet")
        assert expert.height == row["n_expert"]
        assert set(expert["source"]) >= {"search"}
        for r in expert.iter_rows(named=True):   # the problem as the policy reads it
            assert reference(*parse_prompt(r["prompt"]), r["completion"]), r
        trained = json.loads((Path(row["policy_path"]) / "reasonloop.json").read_text())
        assert trained["train"]["steps"] == cfg.learn.steps > 0
        assert trained["train"]["train_tokens"] > 0
    gate = db.query(ws / "reasonloop.duckdb", "SELECT iteration, decision, n, b, c "
                    "FROM promotions WHERE iteration > 0 ORDER BY iteration")
    assert gate.height == cfg.run.iterations
    assert all(n == len(split(cfg, "val")) for n in gate["n"])
    assert any(b + c > 0 for b, c in zip(gate["b"], gate["c"]))     # discordant problems
    assert any(h["val_pass@1"] > 0 for h in history)


def test_trajectories_scored_and_stored(finished_run):
    cfg, ws, history = finished_run
    assert [h["iteration"] for h in history] == [0, 1, 2]
    q = db.query(ws / "reasonloop.duckdb", """
        SELECT iteration, count(*) AS n, count(DISTINCT traj_id) AS ids,
               bool_and(len(steps) = len(step_rewards)) AS aligned
        FROM trajectories WHERE method = 'best_of_n' GROUP BY 1 ORDER BY 1""")
    per_it = cfg.search.problems_per_iteration * cfg.search.n
    assert q["n"].to_list() == [per_it, per_it] and q["ids"].to_list() == [per_it, per_it]
    assert all(q["aligned"])
    runs = db.query(ws / "reasonloop.duckdb", "SELECT config_hash, config_json FROM runs")
    assert runs["config_hash"][0] == cfg.hash()
    assert json.loads(runs["config_json"][0])["search"]["n"] == cfg.search.n


def test_rerunning_an_iteration_adds_no_duplicates(finished_run):
    from reasonloop.stages.verify import verify
    from reasonloop.workspace import Iteration
    cfg, ws, _ = finished_run
    before = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories")["n"][0]
    it = Iteration(cfg, "run-a", 1)
    again = verify(it, [str(it.shard(s)) for s in range(cfg.search.shards)])
    assert again.inserted == 0 and again.n_search > 0
    after = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories")["n"][0]
    assert after == before


def test_dvc_md5_changes_and_is_recorded(finished_run):
    _, ws, history = finished_run
    md5s = db.query(ws / "reasonloop.duckdb",
                    "SELECT data_md5 FROM iterations WHERE iteration > 0 ORDER BY iteration")
    a, b = md5s["data_md5"].to_list()
    assert a and b and a != b
    assert yaml.safe_load((ws / "data.dvc").read_text())["outs"][0]["md5"] == b
    assert (ws / "data" / "run-a" / "iter02" / "d_expert.parquet").exists()


def test_mlflow_versions_carry_lineage_and_aliases(finished_run):
    cfg, ws, history = finished_run
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    ch = registry.version_by_alias(cfg.run.name, registry.CHALLENGER)
    assert ch is not None and ch.tags["iteration"] == "2"
    for tag in ("git_sha", "config_hash", "data_md5", "run_id", "iteration", "parent_version"):
        assert tag in ch.tags
    assert ch.tags["config_hash"] == cfg.hash() and ch.tags["run_id"] == "run-a"
    assert ch.tags["data_md5"] == history[-1]["data_md5"]
    assert registry.version_by_alias(cfg.run.name, registry.CHAMPION) is not None


def test_the_machine_and_numeric_type_are_recorded(finished_run):
    """Lineage: which processor, dtype and threads produced the run and each version."""
    from mlflow import MlflowClient

    from reasonloop import compute
    cfg, ws, _ = finished_run
    want = compute.resolve(cfg).record()
    assert want["train_dtype"] == ("bf16" if compute.machine().bf16_native else "fp32")
    runs = db.query(ws / "reasonloop.duckdb", "SELECT processor, capability, bf16_native, "
                    "train_dtype, sample_dtype, train_threads, search_threads FROM runs")
    assert runs.to_dicts() == [{k: want[k] for k in runs.columns}]
    assert runs["capability"][0] == compute.machine().capability != ""
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    versions = MlflowClient().search_model_versions(f"name = '{cfg.run.name}'")
    assert len(versions) == 3            # init + 2 iterations, each tagged
    for v in versions:
        assert {k: v.tags[k] for k in want} == {k: str(x) for k, x in want.items()}
    assert registry.lineage(f"{cfg.run.name}@challenger")["train_dtype"] == want["train_dtype"]


def test_metrics_are_consistent(finished_run):
    _, ws, history = finished_run
    for h in history:
        for split in ("val", "test"):
            assert 0 <= h[f"{split}_sample@1"] <= h[f"{split}_pass@k"] <= 1
    evals = db.query(ws / "reasonloop.duckdb",
                     "SELECT count(*) AS n FROM evals WHERE model_version IS NULL")
    assert evals["n"][0] == 0


def test_resume_reuses_finished_stages(finished_run):
    """Same run id, one more iteration: iterations 1–2 come from cache/disk, only 3 runs."""
    from flows.flywheel import flywheel
    cfg, ws, _ = finished_run
    p1 = ws / "models" / "run-a" / "iter01" / "model.safetensors"
    mtime = p1.stat().st_mtime
    before = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories "
                                                "WHERE iteration <= 2")["n"][0]
    history = flywheel(cfg.model_copy(update={"run": cfg.run.model_copy(
        update={"iterations": 3})}), "run-a")
    assert [h["iteration"] for h in history] == [0, 1, 2, 3]
    assert p1.stat().st_mtime == mtime
    after = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories "
                                               "WHERE iteration <= 2")["n"][0]
    assert after == before


def test_test_time_search_on_last_iteration(finished_run):
    """eval.search_methods run on the last iteration: rows in evals, trajectories stored,
    the accuracy-vs-tokens PNG written and logged to MLflow with the model version."""
    cfg, ws, history = finished_run
    ev = db.query(ws / "reasonloop.duckdb", "SELECT iteration, method, budget, metric, value, "
                  "n FROM evals WHERE run_id = 'run-a' AND metric IN ('accuracy', 'tokens')")
    assert set(ev.filter(ev["iteration"] <= 2)["iteration"]) == {2}
    assert set(ev["method"]) == set(cfg.eval.search_methods)
    assert ev.filter(ev["metric"] == "tokens")["value"].min() > 0
    assert set(ev["n"]) == {cfg.eval.search_problems}
    assert "test_search/beam@2" in history[-1]
    png = ws / "reports" / "run-a" / "test_time_iter02_test.png"
    assert png.stat().st_size > 1000
    n = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories "
                 "WHERE run_id = 'run-a' AND iteration = 2 AND method = 'eval:beam@2'")["n"][0]
    assert n >= cfg.eval.search_problems
    from mlflow import MlflowClient
    mv = MlflowClient().get_model_version(cfg.run.name, history[-1]["version"])
    assert "test_time_iter02_test.png" in {a.path for a in
                                           MlflowClient().list_artifacts(mv.run_id)}


def test_search_efficiency_view(finished_run):
    _, ws, _ = finished_run
    eff = db.query(ws / "reasonloop.duckdb",
                   "SELECT * FROM search_efficiency WHERE run_id = 'run-a' ORDER BY iteration")
    assert eff["iteration"].to_list()[:2] == [1, 2] and set(eff["method"]) == {"best_of_n"}
    tok = db.query(ws / "reasonloop.duckdb", "SELECT sum(n_tokens) AS t FROM trajectories "
                   "WHERE run_id = 'run-a' AND iteration = 1 AND method = 'best_of_n'")["t"][0]
    assert eff["tokens"][0] == tok
    solved = db.query(ws / "reasonloop.duckdb", "SELECT count(DISTINCT problem_id) AS n FROM "
                      "trajectories WHERE run_id = 'run-a' AND iteration = 1 AND "
                      "method = 'best_of_n' AND correct")["n"][0]
    assert eff["solved"][0] == solved > 0
    assert eff["solved_per_1k_tokens"][0] == round(1000 * solved / float(tok), 3)


def test_lineage_and_restoring_a_past_d_expert(finished_run, tmp_path):
    """`models show` prints where a version came from; `models restore` brings back the
    data/ it trained on, byte-identical, from the DVC remote alone (data/ and cache gone)."""
    import shutil

    from typer.testing import CliRunner

    from reasonloop.cli import app
    cfg, src, history = finished_run
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    v1 = history[1]["version"]                          # iteration 1's model version
    r = CliRunner().invoke(app, ["models", "show", f"{cfg.run.name}/{v1}", "--root", str(ws)],
                           terminal_width=200)
    assert r.exit_code == 0, r.output
    for field in ("run_id", "iteration", "phase", "git_sha", "config_hash", "data_md5",
                  "parent_version", "promotion", "val_pass@1", "test_pass@1",
                  f"reasonloop models restore {cfg.run.name}/{v1}"):
        assert field in r.output, field
    assert history[1]["data_md5"] in r.output and cfg.hash() in r.output
    d_expert = ws / "data" / "run-a" / "iter01" / "d_expert.parquet"
    d_search = d_expert.with_name("d_search.parquet")
    before = d_expert.read_bytes(), d_search.read_bytes()
    shutil.rmtree(ws / "data")
    shutil.rmtree(ws / ".dvc" / "cache")
    r = CliRunner().invoke(app, ["models", "restore", f"{cfg.run.name}/{v1}", "--to",
                                 str(tmp_path / "back"), "--root", str(ws)])
    assert r.exit_code == 0, r.output
    back = tmp_path / "back" / "run-a"
    assert (back / "iter01" / "d_expert.parquet").read_bytes() == before[0]
    assert (back / "iter01" / "d_search.parquet").read_bytes() == before[1]
    assert not (back / "iter02").exists()        # the data as of iteration 1, not the latest


def test_same_seed_and_config_give_the_same_metrics(finished_run, tmp_path):
    """Determinism: the smoke run again, in a fresh workspace — every metric and every
    trajectory text equal."""
    from flows.flywheel import flywheel
    cfg, src, history = finished_run
    again = flywheel(cfg.model_copy(update={"run": cfg.run.model_copy(
        update={"root": tmp_path / "ws2"})}), "run-a")
    for a, b in zip(history, again):
        assert {k: v for k, v in a.items() if "pass" in k or "maj" in k} == \
            {k: v for k, v in b.items() if "pass" in k or "maj" in k}
    q = ("SELECT traj_id, text, correct FROM trajectories WHERE iteration <= 2 "
         "ORDER BY traj_id")
    assert db.query(tmp_path / "ws2" / "reasonloop.duckdb", q).equals(
        db.query(src / "reasonloop.duckdb", q))


def _readme_sql() -> list[str]:
    """The statements of the README's "Inspect with SQL" block."""
    from tests.conftest import ROOT
    text = (ROOT / "README.md").read_text()
    block = text.split("## Inspect with SQL", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    body = "\n".join(ln for ln in block.splitlines() if not ln.startswith("--"))
    return [q.strip() for q in body.split(";") if q.strip()]


def test_readme_queries_run_in_the_duckdb_cli_and_reasonloop_sql(finished_run):
    """The store opens in the `duckdb` CLI people install (duckdb-cli 1.5: older storage
    than our DuckDB 2.0 writes by default), views included, and every README query runs
    there and in `reasonloop sql` with the same row count."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("duckdb-cli is not installed (x86_64 only)")
    _, ws, _ = finished_run
    store = ws / "reasonloop.duckdb"
    queries = _readme_sql()
    assert len(queries) >= 5
    counts = []
    for q in queries:
        got = subprocess.run([cli, "-readonly", "-json", str(store), "-c", q],
                             capture_output=True, text=True)
        assert got.returncode == 0 and "Error" not in got.stderr, (q, got.stderr)
        counts.append(len(json.loads(got.stdout)) if got.stdout.strip() else 0)
        assert counts[-1] == db.query(store, q).height, q
    assert counts[0] > 0                            # the flywheel's curve, from the views
