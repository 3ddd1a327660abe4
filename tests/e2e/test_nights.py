"""Many nights: a scheduled turn after 20 earlier iterations reads them from the stores
instead of replaying them, and a crashed turn resumes as itself; `reasonloop gc` keeps the
champion, the challenger, the last N and every kept version's lineage — byte for byte —
under SIGKILL at each of its phases, and refuses to run during a turn.

Every turn runs `flows.deploy.nightly` (what `reasonloop serve` schedules) in a subprocess
on the test session's Prefect server, with `configs/tiny.yaml` (seconds per iteration)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from reasonloop.store import data, db, registry
from tests.conftest import ROOT, _clean_env

pytestmark = pytest.mark.slow
TINY = ROOT / "configs" / "tiny.yaml"
NAME = "countdown-tiny"
OFF = ["retention.keep_last=null"]       # the turns here keep everything; gc is run by hand


def _turn(ws: Path, n: int, env: dict | None = None, wait: bool = True):
    code = ("import sys; from flows.deploy import nightly; "
            "nightly(sys.argv[1], int(sys.argv[2]), sys.argv[4:], sys.argv[3])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(TINY), str(n), str(ws), *OFF],
                            cwd=ROOT, env={**_clean_env(), "PYTHONPATH": str(ROOT),
                                           **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def _cli(ws: Path, *args, env: dict | None = None):
    r = subprocess.run([sys.executable, "-m", "reasonloop.cli", *args, "--root", str(ws)],
                       cwd=ROOT, env={**_clean_env(), **(env or {})}, capture_output=True,
                       text=True, timeout=600)
    return r.returncode, r.stdout, r.stderr


def _sql(ws: Path, sql: str, **params):
    return db.query(ws / "reasonloop.duckdb", sql, params or None)


def _tree_md5(d: Path) -> dict[str, str]:
    return {str(f.relative_to(d)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(Path(d).rglob("*")) if f.is_file()}


def _iteration(task_run) -> str | None:
    """The iteration a stage's task run was for (tasks/stages.py names them `train-it21`)."""
    m = re.fullmatch(r"[a-z-]+-it(\d+)", task_run.name)
    return m.group(1) if m else None


def _task_runs_of_last_flywheel() -> list:
    """The task runs of the latest `flywheel` flow run on the session's Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    with get_client(sync_client=True) as c:
        fr = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["flywheel"])),
                              sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        return c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fr.id])))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A flywheel with 20 finished iterations (one long first turn)."""
    ws = tmp_path_factory.mktemp("nights") / "ws"
    rc, out = _turn(ws, 20)
    assert rc == 0, out[-3000:]
    return ws


def test_a_turn_after_20_iterations_replays_none_of_them_and_resumes_after_a_crash(ws):
    run_id = _sql(ws, "SELECT run_id FROM runs")["run_id"][0]
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    champ = registry.version_by_alias(NAME, registry.CHAMPION)
    champ_policy = _sql(ws, "SELECT policy_path FROM iterations WHERE iteration = $i",
                        i=int(champ.tags["iteration"]))["policy_path"][0]
    # a two-iteration turn killed in its second iteration's training
    rc, out = _turn(ws, 2, {"REASONLOOP_CRASH_AT": "train:22"})
    assert rc == -9, out[-3000:]
    assert _sql(ws, "SELECT turn, first_iteration, last_iteration, finished_at IS NULL AS open "
                    "FROM turns ORDER BY turn").rows() == [(1, 1, 20, False), (2, 21, 22, True)]
    rc, out = _turn(ws, 2)                # the next start resumes that turn, not a new one
    assert rc == 0, out[-3000:]
    assert "turn 2 of" in out and "iterations 21..22" in out
    # no task of iterations 1..20 ran or was replayed from the cache: every cache key names
    # iteration 21 or 22 (or none: the run-level tasks)
    runs = _task_runs_of_last_flywheel()
    its = [_iteration(r) for r in runs if _iteration(r) is not None]
    assert {"21", "22"} <= set(its) <= {"21", "22"}, [r.name for r in runs]
    assert {r.name.rsplit("-", 1)[0] for r in runs} >= {"earlier-iterations", "report"}
    # resumed exactly: 21 from the champion of the turn's start, 22 from 21; nothing twice
    meta = {i: json.loads((ws / "models" / run_id / f"iter{i}" / "reasonloop.json")
                          .read_text())["train"] for i in (21, 22)}
    assert meta[21]["start_from"] == champ_policy
    assert meta[22]["start_from"] == str(ws / "models" / run_id / "iter21")
    ok, n = _sql(ws, "SELECT count(*) = count(DISTINCT traj_id), count(*) FROM trajectories "
                     "WHERE iteration IN (21, 22)").row(0)
    assert ok and n > 0
    t = _sql(ws, "SELECT * FROM turns WHERE turn = 2").row(0, named=True)
    # its stages partly ran in the killed attempt, whose wall time is unknown: no overhead
    assert t["finished_at"] is not None and t["seconds"] > 0 and t["overhead_s"] is None
    # a plain turn after it: its own iteration only, nothing replayed but the run's init
    rc, out = _turn(ws, 1)
    assert rc == 0 and "turn 3 of" in out and "iterations 23..23" in out, out[-3000:]
    runs = _task_runs_of_last_flywheel()
    assert {_iteration(r) for r in runs} - {None} == {"23"}, [r.name for r in runs]
    assert [r.name.rsplit("-", 1)[0] for r in runs if r.state_name == "Cached"] == \
        ["init-policy"]
    t = _sql(ws, "SELECT * FROM turns WHERE turn = 3").row(0, named=True)
    assert 0 < t["overhead_s"] < t["seconds"] and t["iteration_seconds"] > 0


def test_gc_is_refused_during_a_turn(ws, tmp_path):
    proc = _turn(ws, 1, {"REASONLOOP_HOLD_AT": "verify:24", "REASONLOOP_HOLD_DIR": str(tmp_path)},
                 wait=False)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "held").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
        rc, out, err = _cli(ws, "gc", "--keep-last", "1")
        assert rc == 1 and err.count("\n") == 1 and "in progress" in err, err
    finally:
        (tmp_path / "go").touch()
        out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    assert _sql(ws, "SELECT count(*) AS n FROM retention")["n"][0] == 0    # nothing deleted


def _kept_state(ws: Path, tmp: Path, versions: list[str], tag: str) -> dict:
    """Each version's restored data and model files, as md5s."""
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    state = {}
    for v in versions:     # what `reasonloop models restore` does (the CLI: once, below)
        data.restore(ws, registry.lineage(f"{NAME}/{v}")["data_md5"], tmp / tag / v)
        state[v] = {"data": _tree_md5(tmp / tag / v),
                    "model": _tree_md5(Path(registry.resolve(f"{NAME}/{v}")))}
        assert state[v]["data"] and state[v]["model"]
    return state


def test_gc_keeps_champion_challenger_last_n_and_their_lineage_under_sigkill(ws, tmp_path):
    run_id = _sql(ws, "SELECT run_id FROM runs")["run_id"][0]
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    by_it = {int(mv.tags["iteration"]): str(mv.version) for mv, _ in registry.versions(NAME)}
    # an old champion, and an alias a user set by hand: both outside the last 2
    registry.promote(NAME, by_it[5])
    MlflowClient().set_registered_model_alias(NAME, "paper", by_it[7])
    champ = registry.version_by_alias(NAME, registry.CHAMPION)
    chall = registry.version_by_alias(NAME, registry.CHALLENGER)
    done = _sql(ws, "SELECT iteration FROM iterations WHERE finished_at IS NOT NULL AND "
                    "iteration > 0 ORDER BY iteration")["iteration"].to_list()
    assert done[-1] == 24 and int(champ.tags["iteration"]) == 5
    keep_its = {23, 24, 5, 7, int(chall.tags["iteration"])}
    kept_versions = sorted({by_it[i] for i in keep_its if i in by_it})
    before = _kept_state(ws, tmp_path, kept_versions, "before")
    sizes = {p: sum(f.stat().st_size for f in (ws / p).rglob("*") if f.is_file())
             for p in ("models", "mlartifacts", ".dvc/cache", ".dvc-storage")}

    rc, out, err = _cli(ws, "gc", "--keep-last", "2", "--dry-run")
    assert rc == 0 and "would free" in out, err
    assert all(sum(f.stat().st_size for f in (ws / p).rglob("*") if f.is_file()) == n
               for p, n in sizes.items())                   # a dry run deletes nothing

    for phase in ("gc-recorded:0", "gc-mlflow:0", "gc-files:1", "gc-dvc:0"):
        rc, out, err = _cli(ws, "gc", "--keep-last", "2", env={"REASONLOOP_CRASH_AT": phase})
        assert rc == -9, (phase, err[-2000:])
        for i in keep_its:       # nothing kept was touched, whatever the phase
            assert (ws / "models" / run_id / f"iter{i:02d}" / "model.safetensors").exists()
        assert {str(mv.version) for mv, _ in registry.versions(NAME)} >= set(kept_versions)
    rc, out, err = _cli(ws, "gc", "--keep-last", "2")       # the rerun finishes the job
    assert rc == 0, err
    assert f"kept {run_id}: iterations {sorted(keep_its)}" in out, out

    after = _kept_state(ws, tmp_path, kept_versions, "after")
    assert after == before                                  # restorable, byte for byte
    rc, out, err = _cli(ws, "models", "restore", f"{NAME}@champion", "--to",
                        str(tmp_path / "cli"))
    assert rc == 0 and _tree_md5(tmp_path / "cli") == before[by_it[5]]["data"], err
    left = {str(mv.version) for mv, _ in registry.versions(NAME)}
    assert left == set(kept_versions) | {by_it[0]}           # (the initial policy: always)
    models = sorted(p.name for p in (ws / "models" / run_id).iterdir())
    assert models == sorted(["init", *[f"iter{i:02d}" for i in keep_its if i > 0]]), models
    for p in ("models", "mlartifacts", ".dvc/cache", ".dvc-storage"):
        assert sum(f.stat().st_size for f in (ws / p).rglob("*") if f.is_file()) < sizes[p], p
    rows = _sql(ws, "SELECT kind, target, count(*) AS n FROM retention GROUP BY ALL")
    assert rows.height and set(rows["n"]) == {1}            # each deletion recorded once
    assert not (ws / ".reasonloop-trash").exists() or not any((ws / ".reasonloop-trash")
                                                              .iterdir())
    # and the flywheel goes on after it
    rc, out = _turn(ws, 1)
    assert rc == 0 and "iterations 25..25" in out, out[-3000:]
