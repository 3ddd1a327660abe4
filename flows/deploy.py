"""Deployment, kept apart from the loop: the flywheel on a schedule.

Each scheduled run is one *turn* of the same flywheel: it finds this workspace's run of the
same config and adds `iterations` more, the first one starting from the champion — a
schedule grows one run, one curve, one lineage, instead of starting over every night.

Schedules need a real Prefect server; `reasonloop serve` starts one on 127.0.0.1 when
PREFECT_API_URL is unset. `prefect.yaml` declares the same deployment for
`prefect deploy --all` + a process worker."""

from __future__ import annotations

import time
from datetime import timedelta

from prefect import flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import ValidationError

from flows.flywheel import run
from reasonloop import retention
from reasonloop.config import load_config
from reasonloop.errors import ReasonloopError
from reasonloop.store import db, turns
from reasonloop.workspace import continuation, paths


@flow(name="nightly-flywheel")
def nightly(config_path: str = "configs/default.yaml", iterations: int | None = None,
            overrides: list[str] | None = None, root: str | None = None) -> list[dict]:
    """One turn: continue this config's flywheel by `iterations` (or start it; a turn that
    crashed is run again as itself), then apply `retention`. Its cost beyond the
    iterations it ran goes to DuckDB `turns`."""
    t0 = time.perf_counter()
    cfg = load_config(config_path, list(overrides or []) + ([f"run.root={root}"] if root
                                                          else []))
    run_id, total, first = continuation(cfg, iterations or cfg.serve.iterations)
    run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.hash()[:6]}"
    P = paths(cfg)
    db.init_db(P.db)
    turn, resumed = turns.begin(P.db, run_id, first or 1, total, first is not None)
    print(f"turn {turn} of {run_id}: iterations {(first or 1)}..{total}"
          f"{' from the champion' if first else ''}")
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"iterations": total})})
    history = run(cfg, run_id, first)
    freed = 0
    if cfg.retention.keep_last:      # retention between turns: the disk stays level
        rep = retention.collect(P.root, cfg.retention.keep_last, progress=print)
        freed = sum(rep["freed"].values())
        print(f"retention: freed {freed / 2**20:.1f} MiB, kept iterations "
              f"{rep['kept'].get(run_id)}")
    done = turns.finish(P.db, run_id, turn, time.perf_counter() - t0, freed, resumed)
    print(f"turn {turn}: {done['seconds']:.1f} s" + (
        " (resumed after a crash: its overhead is not measured)" if resumed else
        f", {done['overhead_s']:.1f} s beyond its iterations"))
    return history


def deployment_parameters(config_path: str, iterations: int | None, root: str | None,
                          overrides: list[str]) -> dict:
    return {"config_path": config_path, "iterations": iterations, "root": root,
            "overrides": overrides}


def check_cron(cron: str) -> None:
    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise ReasonloopError(f"--cron {cron!r} is not a cron schedule (e.g. '0 3 * * *')") \
            from None


def serve_flywheel(api_url: str, parameters: dict, cron: str | None = None,
                   interval: float | None = None) -> None:
    """Serve `nightly` against the server at api_url until Ctrl-C / SIGTERM; one run at a
    time (a turn still running makes the next one wait, never overlap)."""
    with temporary_settings({PREFECT_API_URL: api_url}):
        nightly.serve(name="nightly", cron=cron,
                      interval=timedelta(seconds=interval) if interval else None,
                      parameters=parameters, limit=1, paused=False,
                      entrypoint_type=EntrypointType.MODULE_PATH,
                      print_starting_message=False)

