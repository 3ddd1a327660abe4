"""Reward design inside the real flow: `reward.prm: learned` — a PRM fitted on D_search after
verify, registered in MLflow with lineage, recorded in DuckDB, and used by the next
iteration's beam search and the verify stage's step rewards. (The smoke policy never solves
a problem, so the ORM, which needs correct/wrong pairs, is tested on made data in
test_learned_verifiers.py — here it is skipped, and the orm_* selectors with it.)"""

import pytest

from reasonloop.store import db, registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from tests.conftest import SMOKE
    ws = tmp_path_factory.mktemp("reward")
    cfg = load_config(SMOKE, [f"run.root={ws}", "reward.prm=learned", "reward.train=[orm]",
                              "reward.steps=6", "reward.batch_size=16", "search.method=beam",
                              "eval.search_methods=[majority, orm_bon, orm_weighted, beam]"])
    assert cfg.reward.train == ["orm", "prm"]          # prm: learned implies fitting one
    return cfg, ws, flywheel(cfg, "run-r")


def test_verifiers_fitted_each_iteration_and_recorded(learned_run):
    cfg, ws, history = learned_run
    rm = db.query(ws / "reasonloop.duckdb",
                  "SELECT * FROM reward_models ORDER BY iteration, kind")
    assert rm.select("iteration", "kind").rows() == [(1, "prm"), (2, "prm")]
    assert all(v for v in rm["version"]) and all(n > 0 for n in rm["n_train"])
    assert (ws / "models" / "run-r" / "prm-iter02" / "config.json").exists()
    assert not (ws / "models" / "run-r" / "orm-iter01").exists()    # no pairs: skipped
    assert "prm_auc" in history[2]


def test_registered_with_lineage(learned_run):
    cfg, ws, _ = learned_run
    from mlflow import MlflowClient
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    versions = MlflowClient().search_model_versions(f"name = '{cfg.run.name}-prm'")
    assert sorted(int(v.tags["iteration"]) for v in versions) == [1, 2]
    v2 = next(v for v in versions if v.tags["iteration"] == "2")
    assert v2.tags["run_id"] == "run-r" and v2.tags["kind"] == "prm"
    assert v2.tags["policy"].endswith("iter01")           # the policy that made D_search
    assert v2.tags["config_hash"] == cfg.hash() and v2.tags["labels"] == "oracle"


def test_learned_prm_drives_search_and_step_rewards(learned_run):
    cfg, ws, _ = learned_run
    q = db.query(ws / "reasonloop.duckdb", """
        SELECT iteration, list_distinct(flatten(list(step_rewards))) AS r
        FROM trajectories WHERE method = 'beam' GROUP BY 1 ORDER BY 1""")
    it1, it2 = q["r"].to_list()
    assert set(it1) <= {0.0, 1.0}          # iteration 1: no PRM fitted yet → its labels
    assert any(0.0 < r < 1.0 for r in it2)    # iteration 2: the learned PRM's P(good)
    ev = db.query(ws / "reasonloop.duckdb", """
        SELECT DISTINCT method FROM evals WHERE run_id = 'run-r' AND metric = 'accuracy'""")
    assert set(ev["method"]) >= {"beam", "majority"} and "orm_bon" not in set(ev["method"])


def test_prm_swap_changes_beam_choices(learned_run):
    """Oracle vs the run's learned PRM behind the same SearchSpec: beam keeps other prefixes."""
    from reasonloop.policy.engines import SamplingParams
    from reasonloop.search.methods import SEARCH
    from reasonloop.search.spec import search_spec
    from reasonloop.workspace import split
    from tests.unit.test_search import RandomLegalPolicy
    cfg, ws, _ = learned_run
    problems = split(cfg, "train")[:10]
    kept = {}
    for prm in ("oracle", "learned"):
        c = cfg.model_copy(update={"reward": cfg.reward.model_copy(update={"prm": prm})})
        trace: list = []
        spec = search_spec(c, None, trace=trace, run_id="run-r", iteration=2)
        SEARCH["beam"](problems, RandomLegalPolicy(), SamplingParams(seed=0), 8, spec)
        kept[prm] = [[text for _, text in t["kept"]] for t in trace]
    assert kept["oracle"] != kept["learned"]
