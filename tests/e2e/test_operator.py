"""The operator's view, end to end with real servers: `reasonloop serve` on a short interval
(a real Prefect server on 127.0.0.1) runs two turns of one flywheel, the second going on
from the champion; `reasonloop ui` serves both UIs and the MLflow registry shows the
champion in headless Chromium; the run report renders with every plot."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reasonloop.servers import free_port, port_free
from reasonloop.store import db, registry
from tests.conftest import ROOT, SMOKE, _clean_env
from tests.e2e.browser import chrome

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "reasonloop.cli"]
SHOTS = Path(os.environ.get("REASONLOOP_SCREENSHOTS", "")) if os.environ.get(
    "REASONLOOP_SCREENSHOTS") else None


def _api(url: str, path: str, body: dict) -> list[dict]:
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def _finished(ws: Path) -> list[tuple]:
    if not (ws / "reasonloop.duckdb").exists():
        return []
    try:
        return db.query(ws / "reasonloop.duckdb", "SELECT run_id, iteration FROM iterations "
                        "WHERE finished_at IS NOT NULL ORDER BY iteration").rows()
    except Exception:          # the store is being created or written: look again
        return []


def _stop(proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 90) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Serve with a 10 s interval until two turns have finished; then Ctrl-C."""
    ws = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {**_clean_env(), "PREFECT_HOME": str(ws / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([*CLI, "serve", "-c", str(SMOKE), "--interval", "10", "-n", "1",
                             "--root", str(ws), "--set", f"serve.prefect_port={port}"],
                            cwd=ROOT, env=env, stdout=(ws / "serve.log").open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    t0, seen = time.time(), {}
    try:
        while time.time() - t0 < 420:
            assert proc.poll() is None, (ws / "serve.log").read_text()[-2000:]
            if {it for _, it in _finished(ws)} >= {1, 2}:
                runs = [r for r in _api(url, "/flow_runs/filter", {})
                        if r["deployment_id"] and r["state_type"] == "COMPLETED"]
                if len(runs) >= 2:
                    seen["runs"] = runs
                    seen["artifacts"] = _api(url, "/artifacts/filter", {
                        "artifacts": {"key": {"any_": ["flywheel-report"]}}})
                    break
            time.sleep(1)
        else:
            pytest.fail("two scheduled turns did not finish in 420 s:\n" +
                        (ws / "serve.log").read_text()[-2000:])
    finally:
        seen["rc"] = _stop(proc)
    seen.update(ws=ws, port=port, log=(ws / "serve.log").read_text())
    return seen


def test_serve_runs_turns_of_one_flywheel_and_stops_cleanly(served):
    ws = served["ws"]
    assert served["rc"] == 0 and "stopped" in served["log"]
    assert "Traceback" not in served["log"]
    assert port_free("127.0.0.1", served["port"])            # our Prefect server is gone
    # one flywheel: a single run id, iterations 1 and 2 each finished once (no restart)
    rows = _finished(ws)
    assert len({r for r, _ in rows}) == 1
    assert [it for _, it in rows][:2] == [1, 2]
    assert db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM iterations WHERE "
                    "iteration = 0")["n"][0] == 1          # policy init ran once
    # each scheduled run is a flow run of the deployment, with the report as its artifact
    assert {r["parameters"]["iterations"] for r in served["runs"]} == {1}
    pages = served["artifacts"]
    assert len({a["flow_run_id"] for a in pages}) >= 2
    assert all(a["type"] == "markdown" and a["data"].count("data:image/png;base64,") >= 4
               and "Example trajectories" in a["data"] for a in pages)


def test_second_turn_starts_from_the_champion(served):
    ws = served["ws"]
    run_id = _finished(ws)[0][0]
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    gate = db.query(ws / "reasonloop.duckdb", "SELECT decision FROM promotions WHERE "
                    "iteration = 1 AND run_id = $r", {"r": run_id})["decision"][0]
    champ_it = 1 if gate == "promoted" else 0
    champ = db.query(ws / "reasonloop.duckdb", "SELECT policy_path FROM iterations WHERE "
                     "iteration = $i", {"i": champ_it})["policy_path"][0]
    meta = json.loads((ws / "models" / run_id / "iter02" / "reasonloop.json").read_text())
    assert meta["train"]["start_from"] == champ


def test_report_renders_in_chromium_with_every_plot(served):
    ws = served["ws"]
    run_id = _finished(ws)[0][0]
    page = ws / "reports" / run_id / "report.html"
    with chrome() as d:
        d.get(page.as_uri())
        imgs = d.execute_script("return Array.from(document.images).map(i => "
                                "[i.dataset.file, i.complete, i.naturalWidth])")
        heads = d.execute_script("return Array.from(document.querySelectorAll('h2'))"
                                 ".map(h => h.id)")
        text = d.find_element("tag name", "body").text
        if SHOTS:
            SHOTS.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(SHOTS / "report.png"))
    files = {f for f, ok, w in imgs if ok and w > 300}
    assert {"train_time.png", "scaling.png", "test_time_test.png", "distributions.png",
            "data_growth.png"} <= files
    assert heads == ["train-time", "test-time", "distributions", "growth", "promotions",
                     "examples"]
    assert "typical failure" in text or "best:" in text
    for f in files:                                       # the PNGs are also beside the page
        assert (page.parent / f).read_bytes()[:4] == b"\x89PNG"


def test_ui_serves_both_and_the_registry_shows_the_champion(served, tmp_path):
    ws = served["ws"]
    pp, mp = free_port(), free_port()
    env = {**_clean_env(), "PREFECT_HOME": str(ws / "prefect-home")}
    t0 = time.time()
    proc = subprocess.Popen([*CLI, "ui", "-c", str(SMOKE), "--root", str(ws), "--set",
                             f"serve.prefect_port={pp}", "--set", f"serve.mlflow_port={mp}"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "both answering" in line or time.time() - t0 > 150:
                break
        assert any("both answering" in x for x in lines), "".join(lines)
        assert f"http://127.0.0.1:{pp}" in "".join(lines)
        champ = registry.version_by_alias("countdown-smoke", "champion")
        with chrome() as d:
            from selenium.webdriver.support.ui import WebDriverWait
            body = lambda: d.find_element("tag name", "body").text    # noqa: E731
            d.get(f"http://127.0.0.1:{mp}/#/models/countdown-smoke/versions/{champ.version}")
            WebDriverWait(d, 60).until(lambda _: "champion" in body() and
                                       "parent_version" in body())
            for tag in ("run_id", "iteration", "phase", "data_md5", "champion_before"):
                assert tag in body()
            shot = (SHOTS or tmp_path) / "mlflow_champion.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(shot))
            # the model page: every version with its alias; the champion's row in view
            d.get(f"http://127.0.0.1:{mp}/#/models/countdown-smoke")
            WebDriverWait(d, 60).until(lambda _: "champion" in body() and
                                       "challenger" in body())
            alias = d.execute_script(      # the innermost element reading "@ champion"
                "const m = Array.from(document.querySelectorAll('body *')).filter(e => "
                "/^@?\\s*champion$/.test(e.textContent.trim())); return m[m.length - 1];")
            assert alias is not None
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", alias)
            assert alias.is_displayed()
            d.save_screenshot(str(shot.with_name("mlflow_model_page.png")))
            d.get(f"http://127.0.0.1:{pp}/runs")        # the Prefect UI talks to its own API
            WebDriverWait(d, 60).until(lambda _: "nightly" in body() or "flywheel" in body())
            assert "Can't connect" not in body()
            # the report page, as the flow run's artifact in the Prefect UI, plots shown
            d.get(f"http://127.0.0.1:{pp}/artifacts/artifact/{served['artifacts'][0]['id']}")
            WebDriverWait(d, 60).until(lambda _: "Example trajectories" in body())
            shown = d.execute_script("return Array.from(document.images).filter(i => "
                                     "i.src.startsWith('data:image/png') && i.naturalWidth "
                                     "> 300).length")
            assert shown >= 4
            if SHOTS:
                d.save_screenshot(str(SHOTS / "prefect_runs.png"))
        assert shot.read_bytes()[:4] == b"\x89PNG"
    finally:
        t0 = time.monotonic()
        rc = _stop(proc, signal.SIGTERM)        # a service manager's stop, not Ctrl-C
        took = time.monotonic() - t0
    assert rc == 0 and took < 30, (rc, took)
    assert port_free("127.0.0.1", pp) and port_free("127.0.0.1", mp)


def test_prefect_yaml_deployment_on_a_process_pool_continues_the_flywheel(served):
    """`prefect deploy --all` (prefect.yaml) + a process worker: a run of that deployment
    is one more turn of the served flywheel — iteration 3, same run id."""
    from reasonloop import servers
    ws = served["ws"]
    run_id = _finished(ws)[0][0]
    done = max(it for _, it in _finished(ws))
    port = free_port()
    env = {**_clean_env(), "PREFECT_HOME": str(ws / "prefect-home"), "PWD": str(ROOT),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}   # PWD: prefect.yaml's pull
    prefect = str(Path(sys.executable).parent / "prefect")
    with servers.running(lambda: servers.start_prefect("127.0.0.1", port,
                                                       ws / "logs" / "pool-server.log")):
        for cmd in (["work-pool", "create", "reasonloop", "--type", "process"],
                    ["--no-prompt", "deploy", "--all"],
                    ["deployment", "run", "nightly-flywheel/nightly", "--param",
                     f"root={ws}", "--param", f"config_path={SMOKE}", "--param",
                     "iterations=1"],
                    ["worker", "start", "--pool", "reasonloop", "--run-once"]):
            r = subprocess.run([prefect, *cmd], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=400)
            assert r.returncode == 0, (cmd, r.stdout[-1500:], r.stderr[-1500:])
        runs = _api(f"http://127.0.0.1:{port}/api", "/flow_runs/filter", {
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    rows = _finished(ws)
    assert {r for r, _ in rows} == {run_id}
    assert max(it for _, it in rows) == done + 1
    assert any(r["parameters"].get("root") == str(ws) for r in runs)
