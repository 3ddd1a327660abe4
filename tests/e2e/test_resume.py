"""Crash anywhere → rerun resumes with nothing lost or duplicated; transient failures are
retried; readers never see a lock. Real CLI, real flow, real stores.

Both run the solver smoke setting (tests/solver.py), so there is real data to lose: correct
trajectories, a non-empty D_expert, BC steps, gate decisions on discordant problems.
The reference run goes straight through — with a transient failure injected into each
stage (retried by the tasks) and `reasonloop sql` / `reasonloop models` reading in a loop.
One other run is SIGKILLed in the middle of each stage in turn, another at seeded random
moments; each reruns the same command after every kill, and each final state must equal
the reference's."""

import os
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from reasonloop.store import db
from tests.conftest import ROOT, SMOKE, _clean_env

pytestmark = pytest.mark.slow

# Mid-stage fault points (reasonloop/faults.py): all five stages, register on its own, the
# train stage inside BC (iteration 1) and inside GRPO (iteration 2: it learns online and
# stores every sample it draws — the hardest stage to resume).
KILLS = ["generate:1", "verify:1", "filter:1", "train-step:5", "evaluate:1", "register:1",
         "train-step:5"]
RANDOM_KILLS = [f"random:{seed}" for seed in (1, 2)]     # within CRASH_WINDOW of a start
CRASH_WINDOW = "3-40"
TRANSIENT = "generate:1,verify:1,filter:1,train:1,evaluate:1,register:2"
GRPO = dict(steps=10, prompts_per_step=2, num_generations=4)
NAME = "countdown-smoke"


def _cli(args, cwd, started=None, own_server=False, **env):
    """Run the CLI in its own process group, output to files; `own_server`: without the
    test process's Prefect API, so the run starts (and must stop) its own."""
    tag = f"{time.monotonic_ns()}"
    out, err = cwd / f"stdout-{tag}.txt", cwd / f"stderr-{tag}.txt"
    base = {k: v for k, v in _clean_env().items() if not (own_server and k == "PREFECT_API_URL")}
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "reasonloop.cli", *map(str, args)],
                                cwd=cwd, stdout=o, stderr=e, start_new_session=True,
                                env={**base, "PYTHONPATH": str(ROOT), **env})
        if started is not None:
            started["pid"] = proc.pid
        try:
            rc = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(args, rc, out.read_text(), err.read_text())


def _run_args(ws, solver):
    return ["run", "-c", SMOKE, "--root", ws, "--run-id", "r", "--set", "learn.save_every=5",
            *[a for o in solver for a in ("--set", o)],
            "--set", "learn.phases=[bc,grpo]",
            *[a for k, v in GRPO.items() for a in ("--set", f"learn.grpo.{k}={v}")]]


def _listening(pid: int) -> set[str]:
    """host:port (and who) of every socket the process tree listens on (Prefect's server
    included)."""
    import psutil
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    out = set()
    for p in procs:
        try:
            who = " ".join(p.cmdline()) or p.name()     # a process still starting: its name
            out |= {f"{c.laddr.ip}:{c.laddr.port} ({who[:120]})"
                    for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    return out


def _read_loop(ws, stop: threading.Event, reads: list, run: dict, pause: float = 0.5) -> None:
    """What a user does during a run: query trajectories, list models — over and over;
    and what a security review does: note every address the run listens on."""
    while not (ws / "reasonloop.duckdb").exists() or not (ws / "mlflow.db").exists():
        if stop.wait(0.2):
            return
    queries = [["sql", "SELECT iteration, count(*) AS n FROM trajectories GROUP BY 1"],
               ["models"], ["sql", "SELECT * FROM pass_by_iteration"]]
    i = 0
    while not stop.is_set():
        args = [*queries[i % len(queries)], "--root", str(ws)]
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "reasonloop.cli", *args], capture_output=True,
                           text=True, timeout=300, cwd=ws.parent,
                           env={**_clean_env(), "PYTHONPATH": str(ROOT)})
        reads.append({"cmd": args[0], "rc": r.returncode, "stderr": r.stderr,
                      "seconds": time.perf_counter() - t0})
        run.setdefault("listen", set()).update(_listening(run["pid"]))
        i += 1
        stop.wait(pause)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, solver_overrides):
    tmp = tmp_path_factory.mktemp("straight")
    ws, stop, reads, run = tmp / "ws", threading.Event(), [], {}
    reader = threading.Thread(target=_read_loop, args=(ws, stop, reads, run))
    reader.start()
    try:
        done = _cli(_run_args(ws, solver_overrides), tmp, run, own_server=True,
                    REASONLOOP_TRANSIENT=TRANSIENT)
    finally:
        stop.set()
        reader.join()
    assert done.returncode == 0, done.stderr[-3000:]
    return ws, done, reads, run.get("listen", set())


@pytest.fixture(scope="module")
def killed(tmp_path_factory, solver_overrides):
    tmp = tmp_path_factory.mktemp("killed")
    ws = tmp / "ws"
    args = _run_args(ws, solver_overrides)
    kills = [_cli(args, tmp, REASONLOOP_CRASH_AT=spec) for spec in KILLS]
    final = _cli(args, tmp)
    assert final.returncode == 0, final.stderr[-3000:]
    return ws, kills


@pytest.fixture(scope="module")
def killed_at_random(tmp_path_factory, solver_overrides):
    """Kills at seeded random moments — wherever the run is then, not at a named point."""
    tmp = tmp_path_factory.mktemp("random")
    ws = tmp / "ws"
    args = _run_args(ws, solver_overrides)
    kills = [_cli(args, tmp, REASONLOOP_CRASH_AT=spec, REASONLOOP_CRASH_WINDOW=CRASH_WINDOW)
             for spec in RANDOM_KILLS]
    final = _cli(args, tmp)
    assert final.returncode == 0, final.stderr[-3000:]
    return ws, kills


def test_every_kill_landed_in_its_stage(killed):
    _, kills = killed
    for spec, k in zip(KILLS, kills):
        assert k.returncode == -signal.SIGKILL, (spec, k.stderr[-2000:])
        assert f"fault injection: SIGKILL at {spec}" in k.stderr


def _traj(ws) -> pl.DataFrame:
    return db.query(ws / "reasonloop.duckdb", "SELECT traj_id, run_id, iteration, problem_id, "
                    "method, sample_idx, text, correct FROM trajectories ORDER BY traj_id")


@pytest.fixture(params=["killed", "killed_at_random"])
def resumed(request):
    return request.getfixturevalue(request.param)


def test_random_kills_landed_and_the_run_resumed(killed_at_random):
    _, kills = killed_at_random
    landed = [k for k in kills if k.returncode == -signal.SIGKILL]
    assert len(landed) >= 1, [k.stderr[-500:] for k in kills]
    for k in landed:
        assert "fault injection: SIGKILL at random:" in k.stderr
    for k in kills:
        assert k.returncode in (0, -signal.SIGKILL), k.stderr[-2000:]


def test_the_runs_had_real_data_to_lose(reference):
    """The solver setting at work: correct trajectories, D_expert, BC steps, a gate that
    compared models differing on some problems."""
    import json
    from pathlib import Path
    ws = reference[0]
    it1 = db.query(ws / "reasonloop.duckdb", "SELECT n_expert, policy_path FROM iterations "
                   "WHERE iteration = 1").row(0, named=True)
    assert it1["n_expert"] > 0
    train = json.loads((Path(it1["policy_path"]) / "reasonloop.json").read_text())["train"]
    assert train["phase"] == "bc" and train["steps"] > 0
    gate = db.query(ws / "reasonloop.duckdb", "SELECT b, c FROM promotions WHERE iteration > 0")
    assert (gate["b"] + gate["c"]).max() > 0


def test_same_trajectories_as_the_uninterrupted_run_and_no_duplicates(reference, resumed):
    killed = resumed
    ref, got = _traj(reference[0]), _traj(killed[0])
    assert got.height == ref.height > 0
    assert got["traj_id"].to_list() == ref["traj_id"].to_list()
    assert got.equals(ref)          # same texts, same verdicts: the resumed run is exact
    key = ["run_id", "iteration", "problem_id", "method", "sample_idx"]
    assert got.select(key).is_duplicated().sum() == 0
    for it, method in ((1, "best_of_n"), (2, "grpo")):
        d_search = pl.read_parquet(killed[0] / "data" / "r" / f"iter{it:02d}" / "d_search.parquet")
        assert d_search["traj_id"].n_unique() == d_search.height
        assert set(d_search["traj_id"]) == set(got.filter((pl.col("iteration") == it) & (
            pl.col("method") == method))["traj_id"])
    assert got.filter(pl.col("method") == "grpo").height == GRPO["steps"] * GRPO[
        "prompts_per_step"] * GRPO["num_generations"]


def test_same_d_expert_and_metrics(reference, resumed):
    killed = resumed
    q = ("SELECT iteration, n_search, n_expert, stage_done FROM iterations ORDER BY iteration")
    assert db.query(killed[0] / "reasonloop.duckdb", q).equals(
        db.query(reference[0] / "reasonloop.duckdb", q))
    rel = "data/r/iter01/d_expert.parquet"
    assert pl.read_parquet(killed[0] / rel).equals(pl.read_parquet(reference[0] / rel))
    q = "SELECT * FROM pass_by_iteration ORDER BY iteration"
    assert db.query(killed[0] / "reasonloop.duckdb", q).equals(
        db.query(reference[0] / "reasonloop.duckdb", q))


def test_dvc_and_mlflow_consistent_after_kills(reference, resumed):
    import yaml
    from dvc.repo import Repo
    from mlflow import MlflowClient

    from reasonloop.store import registry
    ws = resumed[0]
    md5 = db.query(ws / "reasonloop.duckdb", "SELECT data_md5 FROM iterations "
                   "WHERE iteration = 2")["data_md5"][0]
    assert yaml.safe_load((ws / "data.dvc").read_text())["outs"][0]["md5"] == md5
    repo = Repo(str(ws))
    try:
        assert repo.status() == {}                  # data/ is what data.dvc says
        assert repo.status(cloud=True) == {}        # ... and all of it is on the remote
    finally:
        repo.close()
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    versions = MlflowClient().search_model_versions(f"name = '{NAME}'")
    assert sorted(int(v.tags["iteration"]) for v in versions) == [0, 1, 2]    # none twice
    for v in versions:       # fully registered: lineage, the gate's decision, the model
        assert {"git_sha", "config_hash", "data_md5", "run_id", "phase", "parent_version",
                "champion_before", "promotion"} <= set(v.tags)
        assert MlflowClient().list_artifacts(v.run_id, "model")
    assert int(registry.version_by_alias(NAME, "challenger").tags["iteration"]) == 2
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name(NAME)
                                       .experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)   # none left RUNNING by a kill
    q = "SELECT iteration, decision, b, c FROM promotions ORDER BY iteration"
    got = db.query(ws / "reasonloop.duckdb", q)
    assert got["iteration"].to_list() == [0, 1, 2]          # one decision per version
    assert got.equals(db.query(reference[0] / "reasonloop.duckdb", q))


def test_transient_failures_were_retried(reference):
    _, done, _, _ = reference
    for spec in TRANSIENT.split(","):
        stage, times = spec.split(":")
        assert done.stderr.count(f"transient failure {times} at {stage}:") == 1, stage


def test_readers_never_saw_a_lock_error(reference):
    _, _, reads, _ = reference
    # each read takes 1–25 s on a loaded 2-core machine: a few of each kind, not a count
    assert len(reads) >= 4 and {r["cmd"] for r in reads} == {"sql", "models"}
    failed = [r for r in reads if r["rc"] != 0 or "lock" in r["stderr"].lower()]
    assert not failed, failed[0]["stderr"][-2000:]
    print(f"\n{len(reads)} reads during the run, 0 errors, slowest "
          f"{max(r['seconds'] for r in reads):.1f}s")


def test_servers_bind_localhost_only(reference):
    """Prefect's temporary API server (and anything else the run starts) listens on
    127.0.0.1 only."""
    listen = reference[3]
    assert listen, "no listening socket seen during the run"
    assert all(a.startswith("127.0.0.1:") for a in listen), listen


def test_sigterm_stops_within_seconds_leaves_nothing_and_resumes(reference, solver_overrides,
                                                                  tmp_path):
    """What a service manager (or `make`) does: SIGTERM mid-generate. The run ends within
    seconds with one line and exit 143, its Prefect server and every other child gone, and
    `--resume` finishes with exactly the uninterrupted run's trajectories."""
    import psutil
    ws, err = tmp_path / "ws", tmp_path / "stderr.txt"
    env = {k: v for k, v in _clean_env().items() if k != "PREFECT_API_URL"}
    with open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "reasonloop.cli", *map(str, _run_args(
            ws, solver_overrides))], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=e,
            start_new_session=True,
            env={**env, "PYTHONPATH": str(ROOT), "REASONLOOP_PAUSE_AT": "generate:1"})
    try:
        deadline = time.monotonic() + 300
        while "paused at generate:1" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.2)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("uvicorn" in " ".join(c.cmdline()) for c in children)   # its own server
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = err.read_text()
    assert rc == 128 + signal.SIGTERM and took < 15, (rc, took, text[-2000:])
    assert "Traceback" not in text and "Crash detected" not in text, text[-2000:]
    assert text.strip().splitlines()[-1] == \
        "stopped: `reasonloop run --resume` continues run r"
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [" ".join(p.cmdline()) for p in alive]
    print(f"\nSIGTERM → exit in {took:.1f} s, {len(children)} children gone")

    again = _cli(["run", "--resume", "--root", ws], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _traj(ws).equals(_traj(reference[0]))
