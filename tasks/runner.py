"""Where a flow runs: the Prefect API it reports to, and where its submitted tasks — the
generate shards — run (`run.runner`).

The API: PREFECT_API_URL when set (checked first: one line if it does not answer), else a
temporary server of our own for this command (reasonloop/servers.py) — Prefect's built-in
one gives up after 20 s on a busy machine and is orphaned when the command is killed.

threads: Prefect's thread pool, in this process (the default; one machine). ray / dask: the
shards become Ray tasks or Dask futures, on a local instance (`run.workers` CPUs, no
dashboard) or on an existing cluster at `run.runner_address` — the way past one machine.
Results are the same whatever runs them: each shard's sampling seed is fixed by (seed,
iteration, shard), and each shard writes its own file.

Dask's local cluster listens on 127.0.0.1 only. Ray's does not: its GCS, raylets and workers
listen on all interfaces whatever `ray.init` is told (it maps localhost to the node's
address), guarded by Ray's token authentication — use it on a trusted network.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from reasonloop import servers
from reasonloop.errors import InputError, ReasonloopError

LOCAL = "127.0.0.1"


@contextmanager
def prefect_api(timeout_s: float):
    """Run the flows inside on a Prefect API that answers; yields its URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    url = os.environ.get("PREFECT_API_URL")
    if url:
        deadline = time.monotonic() + 10             # a busy server may answer slowly
        while not servers.healthy(url.rstrip("/") + "/health"):
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise ReasonloopError(f"the Prefect API at PREFECT_API_URL={url} does not answer: "
                                  "start that server, or unset PREFECT_API_URL to run on a "
                                  "temporary one")
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
        return
    log = Path(PREFECT_HOME.value()) / "reasonloop-temporary-server.log"   # beside its DB
    hint = ("the machine may be busy: raise serve.start_timeout_s, or start a server "
            "(`prefect server start`) and set PREFECT_API_URL")
    with servers.running(lambda: servers.start_temporary_prefect(log), timeout_s=timeout_s,
                         hint=hint) as (srv,):
        api = f"{srv.url}/api"
        os.environ["PREFECT_API_URL"] = api      # for processes we start (Ray, Dask, ranks)
        try:
            with temporary_settings({PREFECT_API_URL: api}):
                yield api
        finally:
            os.environ.pop("PREFECT_API_URL", None)


def task_runner(run):
    """A Prefect task runner for `run` (the config's `run` section)."""
    if run.runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner
        return ThreadPoolTaskRunner()
    try:
        if run.runner == "ray":
            from prefect_ray import RayTaskRunner
        else:
            from prefect_dask import DaskTaskRunner
    except ImportError:
        raise InputError(f"run.runner '{run.runner}' needs the scale extra: "
                         "pip install -e '.[scale]'") from None
    if run.runner == "ray":
        if run.runner_address:
            return RayTaskRunner(address=run.runner_address)
        return RayTaskRunner(init_kwargs={"num_cpus": run.workers, "include_dashboard": False})
    if run.runner_address:
        return DaskTaskRunner(address=run.runner_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": run.workers or 1,
                                          "threads_per_worker": 1, "processes": True,
                                          "host": LOCAL, "dashboard_address": None})
