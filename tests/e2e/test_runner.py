"""Scale-out: the generate stage's shards on a local Ray instance (2 CPUs) and a local Dask
cluster give the same trajectories as the thread runner — the same tasks, only elsewhere."""

import threading

import polars as pl
import pytest
from prefect import flow, unmapped

from reasonloop.config import load_config
from reasonloop.stages.progress import Laps
from reasonloop.workspace import Iteration
from tasks.runner import task_runner
from tasks.stages import generate_shard, start_run
from tests.conftest import SMOKE
from tests.e2e.test_resume import _listening


def _ray_own(addr: str) -> bool:
    """A socket of Ray's: GCS, raylet, dashboard agents, workers, or the core worker Ray runs
    inside this (the driver) process."""
    import psutil
    who = addr.split(" (", 1)[1][:-1]
    me = " ".join(psutil.Process().cmdline())[:120]
    return who == me or any(k in who for k in ("ray/", "ray::", "raylet", "gcs_server"))


def _cfg(root, runner):
    return load_config(SMOKE, [f"run.root={root}", f"run.runner={runner}", "run.workers=2",
                               "search.shards=2", "search.problems_per_iteration=16"])


def _generate(cfg, policy) -> pl.DataFrame:
    """Step 1 of iteration 1, as the flywheel runs it, on `cfg.run.runner`; its timing
    recorded as the flywheel records it."""
    @flow(name="generate-only")
    def generate_only():
        start_run(cfg, "r")
        it = Iteration(cfg, "r", 1)
        lap = Laps(it)
        shards = generate_shard.map(unmapped(it), unmapped(str(policy)),
                                    range(cfg.search.shards)).result()
        lap("generate", shards)
        return shards, lap

    shards, lap = generate_only.with_options(task_runner=task_runner(cfg.run))()
    # the sampling seconds came back from wherever the shards ran (a Ray or Dask worker)
    assert all(s.seconds > 0 for s in shards), shards
    assert lap.compute["generate"] == max(s.seconds for s in shards)
    assert 0 < lap.compute["generate"] <= lap.seconds["generate"]
    return pl.concat([pl.read_parquet(s.path) for s in shards])


@pytest.fixture(scope="module")
def by_threads(tmp_path_factory, tiny_model_dir):
    return _generate(_cfg(tmp_path_factory.mktemp("threads"), "threads"), tiny_model_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("all_cpus")
@pytest.mark.parametrize("runner", ["dask", "ray"])   # Ray last: its processes outlive it
def test_shards_elsewhere_give_the_same_trajectories(runner, by_threads, tmp_path,
                                                     tiny_model_dir):
    pytest.importorskip("prefect_ray" if runner == "ray" else "prefect_dask")
    import os
    cfg = _cfg(tmp_path, runner)
    assert cfg.hash() == _cfg(tmp_path, "threads").hash()     # where it runs is not a result
    before = _listening(os.getpid())   # left by earlier tests in this process: not the runner's
    seen, stop = set(), threading.Event()

    def watch():                       # every address the run's process tree listens on
        while not stop.wait(0.2):
            seen.update(_listening(os.getpid()))
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    try:
        got = _generate(cfg, tiny_model_dir)
    finally:
        stop.set()
        w.join()
    assert got.height == by_threads.height == 16 * cfg.search.n
    assert got.sort("problem_id", "sample_idx").equals(by_threads.sort("problem_id",
                                                                        "sample_idx"))
    seen -= before
    ours = {a for a in seen if not _ray_own(a)}
    assert all(a.startswith("127.0.0.1:") for a in ours), ours
    if runner == "dask":                                         # Dask's cluster too
        assert seen and all(a.startswith("127.0.0.1:") for a in seen), \
            [a for a in seen if not a.startswith("127.0.0.1:")]
    else:                 # Ray listens on all interfaces (tasks/runner.py): its own processes
        assert seen - ours and _ray_token_auth()


def _ray_token_auth() -> bool:
    """Ray's guard for those sockets: token authentication, on unless RAY_AUTH_MODE says not."""
    import os
    from pathlib import Path
    return os.environ.get("RAY_AUTH_MODE", "token") != "disabled" and \
        (Path.home() / ".ray" / "auth_token").is_file()
