"""The disk fills up, or the workspace turns read-only, *during* a stage (not only before
the run, where preflight catches it): the run stops with one clear line and exit != 0, and
once the disk is fixed `--resume` finishes with the same trajectories as a clean run.

The workspace lives on its own small tmpfs so the test can fill it or make it read-only
while the run is held at a fault point (REASONLOOP_HOLD_AT). Mounting needs root with
CAP_SYS_ADMIN (CI here has it); elsewhere the tests skip and say why."""

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from reasonloop.store import db
from tests.conftest import ROOT, SMOKE, _clean_env

pytestmark = pytest.mark.slow
QUICK = ["run.iterations=1", "eval.search_methods=[]"]


def _mount(path, size="512m"):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    ok, why = _mount(mnt)
    if not ok:
        pytest.skip(f"cannot mount a tmpfs here (needs root + CAP_SYS_ADMIN): {why}")
    try:
        yield mnt
    finally:
        while subprocess.run(["umount", "-l", str(mnt)], capture_output=True).returncode == 0:
            pass                                  # a bind mount over it, then the disk


def _args(ws, solver):
    return ["run", "-c", SMOKE, "--root", str(ws), "--run-id", "r",
            *[a for o in [*solver, *QUICK] for a in ("--set", o)]]


def _run(args, cwd, hold_at=None, hold_dir=None, on_hold=None):
    """The CLI in a subprocess; when held at `hold_at`, call `on_hold()`, then let it go."""
    env = {**_clean_env(), "PYTHONPATH": str(ROOT)}
    if hold_at:
        hold_dir.mkdir(parents=True, exist_ok=True)
        env.update(REASONLOOP_HOLD_AT=hold_at, REASONLOOP_HOLD_DIR=str(hold_dir))
    proc = subprocess.Popen([sys.executable, "-m", "reasonloop.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if hold_at:
        deadline = time.monotonic() + 300
        while not (hold_dir / "held").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        on_hold()
        (hold_dir / "go").touch()
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def clean(tmp_path_factory, solver_overrides):
    tmp = tmp_path_factory.mktemp("clean")
    rc, _, err = _run(_args(tmp / "ws", solver_overrides), tmp)
    assert rc == 0, err[-3000:]
    return tmp / "ws"


def _fill(path):
    """Write until the disk says no."""
    with open(path / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            pass


def _one_clear_line(rc, err, words):
    assert rc not in (0, None) and rc > 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and words in last.lower() and "--resume" in last, last
    return last


def _same_as_clean(ws, clean):
    q = ("SELECT traj_id, iteration, problem_id, method, sample_idx, text, correct "
         "FROM trajectories ORDER BY traj_id")
    got, want = db.query(ws / "reasonloop.duckdb", q), db.query(clean / "reasonloop.duckdb", q)
    assert got.height == want.height > 0 and got.equals(want)
    q = "SELECT iteration, n_search, n_expert, stage_done FROM iterations ORDER BY iteration"
    assert db.query(ws / "reasonloop.duckdb", q).equals(db.query(clean / "reasonloop.duckdb", q))


@pytest.mark.parametrize("stage", ["verify:1", "train:1"])
def test_disk_fills_during_a_stage(small_disk, clean, solver_overrides, tmp_path, stage):
    ws = small_disk / "ws"
    rc, _, err = _run(_args(ws, solver_overrides), tmp_path, stage, tmp_path / "hold",
                      on_hold=lambda: _fill(small_disk))
    _one_clear_line(rc, err, "disk full")
    (small_disk / "filler").unlink()
    rc, _, err = _run(["run", "--resume", "--root", str(ws)], tmp_path)
    assert rc == 0, err[-3000:]
    _same_as_clean(ws, clean)


def test_workspace_turns_read_only_during_a_stage(small_disk, clean, solver_overrides,
                                                  tmp_path):
    ws = small_disk / "ws"

    def read_only():
        """A read-only bind mount over the workspace's disk: every file opened from now on
        is read-only (a remount of the disk itself is refused while the run holds files
        open for writing — those stay writable, as on a network share turned read-only)."""
        for cmd in (["mount", "--bind", str(small_disk), str(small_disk)],
                    ["mount", "-o", "remount,bind,ro", str(small_disk)]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
    rc, _, err = _run(_args(ws, solver_overrides), tmp_path, "train:1", tmp_path / "hold",
                      on_hold=read_only)
    _one_clear_line(rc, err, "read-only")
    subprocess.run(["umount", str(small_disk)], check=True)       # the bind mount goes
    rc, _, err = _run(["run", "--resume", "--root", str(ws)], tmp_path)
    assert rc == 0, err[-3000:]
    _same_as_clean(ws, clean)
    assert shutil.disk_usage(small_disk).free > 0
