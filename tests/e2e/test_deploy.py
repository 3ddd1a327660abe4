"""The scheduled deployment is declared consistently in prefect.yaml and in code, and a
turn knows which flywheel it continues."""

from pathlib import Path

import yaml

from tests.conftest import ROOT


def test_prefect_yaml_points_at_a_real_flow_with_a_cron():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = spec["deployments"][0]
    module, func = dep["entrypoint"].split(":")
    assert (ROOT / module).exists()
    from flows import deploy
    assert getattr(deploy, func).name == "nightly-flywheel"
    assert dep["schedules"][0]["cron"].count(" ") == 4
    assert Path(ROOT / dep["parameters"]["config_path"]).exists()
    assert dep["work_pool"]["name"] == "reasonloop"


def test_serve_builds_a_cron_deployment_by_module_path():
    from prefect.deployments.runner import EntrypointType

    from flows.deploy import deployment_parameters, nightly
    d = nightly.to_deployment(name="nightly", cron="0 2 * * *",
                              parameters=deployment_parameters("configs/smoke.yaml", 1,
                                                               "/ws", ["search.n=2"]),
                              entrypoint_type=EntrypointType.MODULE_PATH)
    assert d.schedules[0].schedule.cron == "0 2 * * *"
    assert d.entrypoint == "flows.deploy.nightly"
    assert d.parameters["root"] == "/ws" and d.parameters["overrides"] == ["search.n=2"]


def test_continuation_finds_the_same_flywheel(smoke_cfg):
    from reasonloop.store import db
    from reasonloop.workspace import continuation, paths
    assert continuation(smoke_cfg, 2) == (None, 2, None)          # no store: a first run
    P = paths(smoke_cfg)
    db.init_db(P.db)
    db.record_run(P.db, "old", "{}", "another-config", "x")
    assert continuation(smoke_cfg, 2) == (None, 2, None)          # another config's run
    db.record_run(P.db, "mine", "{}", smoke_cfg.hash(), "x")
    assert continuation(smoke_cfg, 2) == ("mine", 2, None)        # crashed before iter 1
    db.finish_iteration(P.db, "mine", 1, {"total": 5.0})
    db.finish_iteration(P.db, "mine", 2, {"total": 6.0})
    db.update_iteration(P.db, "mine", 3, stage_done="generate")   # a turn that crashed
    assert continuation(smoke_cfg, 1) == ("mine", 3, 3)           # iteration 3, from champion
    # a replayed iteration keeps its first finish and seconds
    assert db.finish_iteration(P.db, "mine", 1, {"total": 0.1}) == {"total": 5.0}
