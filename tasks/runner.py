"""Where the flow's submitted tasks — the generate shards — run (`run.runner`).

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

from reasonloop.errors import InputError

LOCAL = "127.0.0.1"


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
