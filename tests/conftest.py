"""Isolation for every test: Prefect, DVC and MLflow state under a per-session temp dir;
nothing touches the user's home or the repo's own workspace. One Prefect API server per test
process (the product's own temporary server; none when only tests/unit runs), and a check at
the end of the run that no process the tests started outlives them.

tests/unit: one module or stage at a time, tiny locally-built models, no servers, a few
training steps at most. tests/e2e: the real Prefect/DuckDB/DVC/MLflow/vLLM/browser runs."""

import os
import shutil
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import pytest

# Every process the tests start inherits this mark: any still alive when the run ends leaked
# (a server, a Ray or Dask worker, a run that did not stop when told).
LEAK_MARK = "REASONLOOP_TEST_SESSION"
os.environ.setdefault(LEAK_MARK, uuid.uuid4().hex)
# This file runs twice in a test process — as pytest's conftest and as `tests.conftest`,
# which test modules import — so its state lives in one place, made once per process.
_STATE = sys.modules.setdefault("_reasonloop_tests", types.ModuleType("_reasonloop_tests"))
if not hasattr(_STATE, "session"):
    _STATE.session = Path(tempfile.mkdtemp(prefix="reasonloop-tests-"))
    _STATE.server = []
_SESSION, _SERVER = _STATE.session, _STATE.server
os.environ.update({
    "PREFECT_HOME": str(_SESSION / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DVC_NO_ANALYTICS": "1",
    "DVC_SITE_CACHE_DIR": str(_SESSION / "dvc-site"),
    "DVC_GLOBAL_CONFIG_DIR": str(_SESSION / "dvc-global"),
    "DVC_SYSTEM_CONFIG_DIR": str(_SESSION / "dvc-system"),
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
})
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("REASONLOOP_HOME", None)


def _controller(config) -> bool:
    """The pytest-xdist controller: it runs no test itself."""
    return not hasattr(config, "workerinput") and bool(config.getoption("numprocesses", 0))


def _unit_only(config) -> bool:
    """Only tests/unit asked for (`make test-fast`): no flow runs, so no Prefect server."""
    unit = Path(__file__).resolve().parent / "unit"
    args = [Path(a.split("::")[0]).resolve() for a in config.args]
    return bool(args) and all(a == unit or unit in a.parents for a in args)


def _pin_worker(config) -> None:
    """Each xdist worker (and every process it starts) on its own CPU. Unpinned, each
    worker's runs sized their torch threads to all CPUs, and on 2 cores the two workers'
    threads took turns: the four slowest files took 470 s unpinned, 414 s pinned."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    if len(cpus) < 2 or not worker.startswith("gw"):
        return
    _STATE.all_cpus = set(cpus)
    os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})


@pytest.fixture
def all_cpus():
    """For a test whose run spreads over processes (Ray and Dask shards, vLLM's engine
    beside the trainer): every CPU, not its worker's one. Pinned, the Ray and Dask shard test
    took 49 and 37 s instead of 18 and 16, colocated vLLM GRPO 49 s instead of 37."""
    wide = getattr(_STATE, "all_cpus", None)
    if wide is None:
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, wide)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def pytest_configure(config):
    """A Prefect API for this test process's flows and the CLI runs it starts — started
    before any test imports Prefect (its root settings read PREFECT_API_URL then)."""
    _pin_worker(config)
    if _controller(config) or _SERVER or _unit_only(config):
        return
    from reasonloop import servers
    srv = servers.start_temporary_prefect(_SESSION / f"prefect-{os.getpid()}.log")
    servers.wait_healthy([srv], timeout_s=120)
    _SERVER.append(srv)
    os.environ["PREFECT_API_URL"] = f"{srv.url}/api"


def _stop_server() -> None:
    from reasonloop import servers
    while _SERVER:
        servers.stop(_SERVER.pop())


def pytest_unconfigure(config):
    _stop_server()
    shutil.rmtree(_SESSION, ignore_errors=True)     # Prefect's DB, DVC's and MLflow's state
    if not hasattr(config, "workerinput"):          # the last process of the run to finish
        from tests import solver
        shutil.rmtree(solver.shared_dir(), ignore_errors=True)


def _marked() -> dict[int, str]:
    """Processes carrying this run's mark (not this one, not zombies): pid → command line."""
    mark = f"{LEAK_MARK}={os.environ[LEAK_MARK]}".encode()
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if mark not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:        # gone meanwhile, or not ours to read
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def _math_judge_helper():
    """The math judge's helper process lives as long as its parent (tests in this process)."""
    yield
    from reasonloop.envs import math_judge
    math_judge.shutdown()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """The run fails if a process it started is still alive once every test process has
    finished (xdist workers shut down before this runs in the controller): given 30 s to
    go, then listed and killed."""
    if hasattr(session.config, "workerinput") or not Path("/proc/self/environ").exists():
        return
    _stop_server()
    deadline = time.monotonic() + 30
    while (left := _marked()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not left:
        return
    import signal
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  {pid}: {cmd[:160]}" for pid, cmd in sorted(left.items())]
    msg = "\n".join([f"{len(left)} process(es) started by the tests outlived them "
                     "(killed now):", *lines])
    if tr:
        tr.write_line(msg, red=True)
    else:
        print(msg, file=sys.stderr)
    session.exitstatus = 1

ROOT = Path(__file__).resolve().parents[1]


def _clean_env() -> dict:
    """The environment for CLI subprocesses: without the MLFLOW_TRACKING_URI that mlflow
    writes into this process's environ when an earlier test set up a workspace."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
sys.path.insert(0, str(ROOT))
SMOKE = ROOT / "configs" / "smoke.yaml"


@pytest.fixture
def workspace(tmp_path):
    return tmp_path / "ws"


@pytest.fixture
def smoke_cfg(workspace):
    from reasonloop.config import load_config
    return load_config(SMOKE, [f"run.root={workspace}"])


@pytest.fixture(scope="session")
def solver_overrides() -> list[str]:
    """Config overrides for the smoke setting whose policy solves problems (tests/solver.py)."""
    from tests import solver
    return solver.overrides()


@pytest.fixture(scope="session")
def trace_solver_overrides() -> list[str]:
    """The same setting with a policy BC'd on search traces (tests/solver.py)."""
    from tests import solver
    return solver.overrides("traces")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny char-level Llama, briefly BC'd on legal Countdown plays, saved in HF format."""
    import torch

    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    torch.set_num_threads(1)
    cfg = load_config(SMOKE)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 32, 2, 2, seed=0)
    out = tmp_path_factory.mktemp("tiny") / "policy"
    ex = Countdown(cfg.env).warmup_examples(256, seed=0)
    train_sft(model, tok, ex, out, steps=8, batch_size=32, lr=3e-3, bf16=False, seed=0)
    save_policy(model, tok, out, {"stage": "test"})
    return out


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory):
    """A tiny Llama vLLM's CPU attention accepts (head_dim 32; it rejects 16), BC'd briefly."""
    import torch

    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 64, 2, 2, seed=0)
    out = tmp_path_factory.mktemp("tiny-vllm") / "policy"
    ex = Countdown(load_config(SMOKE).env).warmup_examples(256, seed=0)
    train_sft(model, tok, ex, out, steps=8, batch_size=32, lr=3e-3, bf16=False, seed=0)
    save_policy(model, tok, out, {"stage": "test"})
    return out


@pytest.fixture(scope="session")
def qwen2_model(tmp_path_factory):
    """A tiny Qwen2-shaped chat model (q/k/v biases, grouped KV heads, tied embeddings,
    ChatML template, two end tokens) with a BPE tokenizer, BC'd on the shipped sample's own
    word problems (configs/problems/arith50.jsonl is `generate(50, seed=8)`) so that it
    solves some (~20% of T=1 samples) and a flywheel on it has a D_expert to learn from."""
    import torch

    from reasonloop.policy.bpe import build
    torch.set_num_threads(1)
    return build(tmp_path_factory.mktemp("qwen2") / "model", n_problems=50, problems_seed=8,
                 warmup_steps=160, arch="qwen2", lr=3e-3, hidden=128, heads=4, kv_heads=2)


@pytest.fixture(scope="session")
def bpe_model(tmp_path_factory):
    """The ~10M Llama with a byte-level BPE tokenizer, warmed up on word problems whose
    solutions are blank-line-separated steps (the real path's model, built here)."""
    from reasonloop.policy.bpe import build
    return build(tmp_path_factory.mktemp("bpe") / "model", n_problems=1000, warmup_steps=30)
