"""The scheduled deployment is declared consistently in prefect.yaml and in code."""

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


def test_serve_builds_a_cron_deployment():
    from flows.deploy import nightly
    d = nightly.to_deployment(name="nightly", cron="0 2 * * *",
                              parameters={"config_path": "configs/smoke.yaml"})
    assert d.schedules[0].schedule.cron == "0 2 * * *"
    assert d.entrypoint == "flows/deploy.py:nightly"
