"""The servers reasonloop starts: the temporary Prefect API a command's flows report to, the
operator's Prefect server (schedules need a real one) and an MLflow server over the
workspace's registry. Each runs as a child process on 127.0.0.1 in its own process group,
is waited for until its health endpoint answers, and is stopped with its children when we
stop — and, on Linux, dies with us even when we are SIGKILLed (parent-death signal): a
server never outlives the command that started it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths


@dataclass
class Server:
    name: str
    url: str
    health: str
    proc: subprocess.Popen
    log: Path
    seconds: float = 0.0      # from start to the first healthy answer


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """The console script next to this interpreter (the venv's), else one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, however it dies (Linux
    prctl PR_SET_PDEATHSIG; a no-op elsewhere, where `stop` is the only guard)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # 1: PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start(name: str, cmd: list[str], url: str, health: str, log: Path, env: dict) -> Server:
    host, port = url.split("//")[1].split(":")
    if not port_free(host, int(port)):
        raise ReasonloopError(f"{name}: port {port} on {host} is in use (set serve."
                              f"{name.lower()}_port=N, or stop what listens there)")
    log.parent.mkdir(parents=True, exist_ok=True)
    # The parent-death signal fires when the *thread* that started the child ends: start
    # servers from the main thread only (the CLI and test fixtures do).
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env={**os.environ, **env},
                            start_new_session=True, preexec_fn=_die_with_parent)
    return Server(name, url, health, proc, log)


def wait_healthy(servers: list[Server], timeout_s: float, hint: str = "") -> None:
    """Until every server answers its health endpoint; one line naming the log if not."""
    t0 = time.perf_counter()
    waiting = list(servers)
    while waiting:
        for srv in list(waiting):
            if srv.proc.poll() is not None:
                tail = srv.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                raise ReasonloopError(f"{srv.name} server exited ({srv.proc.returncode}): "
                                      f"{tail[0][:200]} (log: {srv.log})")
            if healthy(srv.url + srv.health):
                srv.seconds = time.perf_counter() - t0
                waiting.remove(srv)
        if waiting and time.perf_counter() - t0 > timeout_s:
            raise ReasonloopError(f"{waiting[0].name} server did not answer "
                                  f"{waiting[0].url}{waiting[0].health} within {timeout_s:g} s "
                                  f"(log: {waiting[0].log}){'; ' + hint if hint else ''}")
        time.sleep(0.2)


def start_prefect(host: str, port: int, log: Path) -> Server:
    return _start("Prefect", [_bin("prefect"), "server", "start", "--host", host, "--port",
                              str(port)], f"http://{host}:{port}", "/api/health", log,
                  {"PREFECT_SERVER_ANALYTICS_ENABLED": "false",       # the UI's API, on
                   "PREFECT_UI_API_URL": f"http://{host}:{port}/api"})  # this port too


def start_temporary_prefect(log: Path, host: str = "127.0.0.1") -> Server:
    """The API server for one command's flows — what Prefect's own temporary server is (the
    same app, no UI), but started by us: waited for as long as a busy machine needs
    (Prefect's own gives up after 20 s) and stopped with us, even on SIGKILL (Prefect's own
    is orphaned by any signal)."""
    import importlib.util
    port = free_port(host)
    app_dir = Path(importlib.util.find_spec("prefect").origin).parent.parent
    return _start("Prefect", [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir),
                              "--factory", "prefect.server.api.server:create_app",
                              "--host", host, "--port", str(port), "--log-level", "error",
                              "--lifespan", "on"],
                  f"http://{host}:{port}", "/api/health", log,
                  {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})


def start_mlflow(host: str, port: int, root: Path, log: Path) -> Server:
    """The registry of this workspace (mlflow.db, mlartifacts/) behind the MLflow UI."""
    root = Path(root).resolve()
    cmd = [_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(Paths(root).mlartifacts), "--host", host, "--port",
           str(port), "--workers", "1"]
    return _start("MLflow", cmd, f"http://{host}:{port}", "/health", log,
                  {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def stop(srv: Server, timeout_s: float = 20) -> None:
    """SIGTERM to the server's process group (uvicorn/gunicorn workers included), then
    SIGKILL what is left."""
    if srv.proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(srv.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            srv.proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running(*starters, timeout_s: float = 90, hint: str = ""):
    """Start servers together (each a no-argument callable), wait until all answer, and
    stop them all on exit — also when one fails to start or the user presses Ctrl-C."""
    with ExitStack() as stack:
        servers = []
        for start in starters:
            srv = start()
            stack.callback(stop, srv)
            servers.append(srv)
        wait_healthy(servers, timeout_s, hint)
        yield servers

