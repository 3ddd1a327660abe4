"""Crash anywhere → rerun resumes; no trajectory lost or duplicated (real CLI, real flow)."""

import os
import signal
import subprocess
import sys

import pytest

from reasonloop.store import db
from tests.conftest import ROOT, SMOKE, _clean_env

pytestmark = pytest.mark.slow


def _cli(args, cwd, **env):
    """Run the CLI in its own process group; output to files, not pipes: after a hard crash
    Prefect's temporary server (a child) outlives the parent and would hold pipes open."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "reasonloop.cli", *args], cwd=cwd,
                                stdout=o, stderr=e, start_new_session=True,
                                env={**_clean_env(), "PYTHONPATH": str(ROOT), **env})
        try:
            rc = proc.wait(timeout=600)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)   # the orphaned temporary server
            except ProcessLookupError:
                pass
    return subprocess.CompletedProcess(args, rc, out.read_text(), err.read_text())


@pytest.mark.parametrize("crash_at", ["verify:2", "train:1"])
def test_hard_crash_then_resume(tmp_path, crash_at):
    ws = tmp_path / "ws"
    args = ["run", "-c", str(SMOKE), "--root", str(ws), "--run-id", "r"]
    crashed = _cli(args, tmp_path, REASONLOOP_CRASH_AT=crash_at)
    assert crashed.returncode == 3, crashed.stderr[-2000:]
    n_before = db.query(ws / "reasonloop.duckdb", "SELECT count(*) AS n FROM trajectories")["n"][0]
    assert n_before > 0
    resumed = _cli(["run", "--root", str(ws), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    q = db.query(ws / "reasonloop.duckdb", """
        SELECT iteration, count(*) AS n, count(DISTINCT traj_id) AS ids FROM trajectories
        WHERE method = 'best_of_n' GROUP BY 1 ORDER BY 1""")
    per_it = 40 * 4   # smoke: problems_per_iteration × n
    assert q.rows() == [(1, per_it, per_it), (2, per_it, per_it)]
    evals = db.query(ws / "reasonloop.duckdb", """
        SELECT iteration, count(*) FILTER (WHERE metric NOT IN ('accuracy', 'tokens')) AS n,
               count(*) FILTER (WHERE metric IN ('accuracy', 'tokens')) AS search
        FROM evals GROUP BY 1 ORDER BY 1""")
    assert evals["iteration"].to_list() == [0, 1, 2]
    assert len(set(evals["n"].to_list())) == 1     # each iteration evaluated exactly once
    assert evals["search"].to_list() == [0, 0, 5 * 2]   # test-time search: last iteration
    from reasonloop.store import registry
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    versions = registry.list_versions("countdown-smoke")
    assert sorted(int(v["iteration"]) for v in versions) == [0, 1, 2]   # none twice


def test_grpo_stage_killed_after_a_checkpoint_resumes_from_it(tmp_path):
    """SIGKILL-like exit right after GRPO's step-4 checkpoint; the rerun continues at step 4,
    and every sampled completion is stored exactly once (those before the checkpoint were
    flushed with it; those after it are sampled again by the resumed trainer)."""
    import json
    ws = tmp_path / "ws"
    steps, prompts, gens = 10, 2, 4
    args = ["run", "-c", str(SMOKE), "--root", str(ws), "--run-id", "r", "-n", "1",
            "--set", "learn.phases=[grpo]", "--set", "learn.save_every=4",
            "--set", f"learn.grpo.steps={steps}", "--set", f"learn.grpo.prompts_per_step={prompts}",
            "--set", f"learn.grpo.num_generations={gens}", "--set", "eval.search_methods=[]"]
    crashed = _cli(args, tmp_path, REASONLOOP_CRASH_AT="train-step:4")
    assert crashed.returncode == 3, crashed.stderr[-2000:]
    trainer = ws / "models" / "r" / "iter01" / "_trainer"
    assert [c.name for c in trainer.glob("checkpoint-*")] == ["checkpoint-4"]
    assert [f.name for f in (trainer / "rows").glob("*.parquet")] == ["upto-000004.parquet"]
    resumed = _cli(["run", "--root", str(ws), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    meta = json.loads((trainer.parent / "reasonloop.json").read_text())["train"]
    assert meta["resumed_from"] == 4 and meta["phase"] == "grpo"
    assert not trainer.exists()                         # checkpoints replaced by the policy
    q = db.query(ws / "reasonloop.duckdb", """SELECT count(*) AS n, count(DISTINCT traj_id)
        AS ids, count(DISTINCT sample_idx) AS idx FROM trajectories WHERE method = 'grpo'""")
    assert q.row(0) == (steps * prompts * gens,) * 3
