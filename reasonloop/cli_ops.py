"""The operator's commands: `serve` (the flywheel on a schedule), `ui` (the Prefect and
MLflow UIs) and `report` (the HTML page of a run)."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import typer

from reasonloop import preflight, servers, stopping
from reasonloop.cliutil import CONFIG, ROOT, SET, VERBOSE, _fail, _quiet_env, _root, _table, out
from reasonloop.config import load_config
from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths


def _config(config: Path, root: Path | None, set_: list[str]):
    cfg = load_config(config, list(set_) + [f"run.root={_root(root)}"])
    preflight.workspace(cfg.run.root, cfg.run.min_free_mb)
    return cfg


@contextmanager
def prefect_api(cfg):
    """PREFECT_API_URL when set; else a Prefect server already answering on serve.host:
    serve.prefect_port (say, from `reasonloop ui`); else one started here, and stopped
    when we stop."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    url = f"http://{cfg.serve.host}:{cfg.serve.prefect_port}"
    if servers.healthy(f"{url}/api/health"):
        yield f"{url}/api"
        return
    log = Path(cfg.run.root) / "logs" / "prefect-server.log"
    with ExitStack() as stack:
        with out.status(f"starting a Prefect server on {url}"):
            srv, = stack.enter_context(servers.running(
                lambda: servers.start_prefect(cfg.serve.host, cfg.serve.prefect_port, log),
                timeout_s=cfg.serve.start_timeout_s))
        out.print(f"Prefect server {srv.url} up in {srv.seconds:.1f} s (log: {log})")
        os.environ["PREFECT_API_URL"] = f"{srv.url}/api"   # for the runs it spawns
        try:
            yield f"{srv.url}/api"
        finally:
            os.environ.pop("PREFECT_API_URL", None)


def serve(config: Path = CONFIG,
          cron: str | None = typer.Option(None, help="cron schedule [default: serve.cron]"),
          interval: float | None = typer.Option(None, help="seconds between runs, instead "
                                                           "of --cron"),
          iterations: int | None = typer.Option(None, "--iterations", "-n",
                                                help="iterations per run [serve.iterations]"),
          root: Path | None = ROOT, set_: list[str] = SET, verbose: bool = VERBOSE):
    """Run the flywheel on a schedule; each run continues it from the champion."""
    _quiet_env(verbose)
    stopping.install(grace_s=60, event_loop=True)   # a running turn gets time to stop
    try:
        if cron and interval:
            raise ReasonloopError("give --cron or --interval, not both")
        if interval is not None and interval <= 0:
            raise ReasonloopError(f"--interval must be positive (got {interval})")
        if iterations is not None and iterations < 1:
            raise ReasonloopError(f"--iterations must be positive (got {iterations})")
        cfg = _config(config, root, set_)
        cron = None if interval else (cron or cfg.serve.cron)
        from flows.deploy import check_cron, deployment_parameters, serve_flywheel
        if cron:
            check_cron(cron)
        from reasonloop.workspace import env_and_problems
        env_and_problems(cfg)
        params = deployment_parameters(str(config.resolve()), iterations,
                                       str(cfg.run.root), list(set_))
        with prefect_api(cfg) as api:
            every = f"cron '{cron}'" if cron else f"every {interval:g} s"
            out.print(f"serving nightly-flywheel/nightly ({every}, "
                      f"{iterations or cfg.serve.iterations} iteration(s) per run) on {api}; "
                      f"Ctrl-C stops")
            serve_flywheel(api, params, cron=cron, interval=interval)
    except ReasonloopError as e:
        _fail(e)
    except KeyboardInterrupt:
        out.print("stopped")
        stopping.finish(0)      # asked to stop: not an error for a service
    out.print("stopped")


def ui(config: Path = CONFIG, root: Path | None = ROOT, set_: list[str] = SET):
    """Start the Prefect and MLflow UIs on 127.0.0.1; Ctrl-C stops both."""
    _quiet_env()
    stopping.install(grace_s=30)
    try:
        cfg = _config(config, root, set_)
        s, ws = cfg.serve, Path(cfg.run.root)
        t0 = time.perf_counter()
        with ExitStack() as stack:
            with out.status("starting the Prefect and MLflow servers"):
                pf, ml = stack.enter_context(servers.running(
                    lambda: servers.start_prefect(s.host, s.prefect_port,
                                                  ws / "logs" / "prefect-server.log"),
                    lambda: servers.start_mlflow(s.host, s.mlflow_port, ws,
                                                 ws / "logs" / "mlflow-server.log"),
                    timeout_s=s.start_timeout_s))
            out.print(f"Prefect UI  {pf.url}  (flow runs, schedules, artifacts)")
            out.print(f"MLflow UI   {ml.url}/#/models/{cfg.run.name}  (registry: champion, "
                      f"challenger, lineage tags)")
            out.print(f"both answering {time.perf_counter() - t0:.1f} s after start; "
                      f"Ctrl-C stops both")
            while pf.proc.poll() is None and ml.proc.poll() is None:
                time.sleep(0.5)
            dead = pf if pf.proc.poll() is not None else ml
            raise ReasonloopError(f"{dead.name} server exited ({dead.proc.returncode}); "
                                  f"log: {dead.log}")
    except ReasonloopError as e:
        _fail(e)
    except KeyboardInterrupt:
        out.print("stopped both")
        stopping.finish(0)


def report(run_id: str | None = typer.Option(None, "--run", "-r",
                                             help="run id [default: the latest]"),
           root: Path | None = ROOT):
    """Write a run's HTML report (plots, tables, example trajectories), log it to MLflow."""
    _quiet_env()
    p = Paths(_root(root)).db
    try:
        if not p.exists():
            raise ReasonloopError(f"no store at {p}: run the flywheel first")
        from reasonloop.workspace import latest_run, stored_config
        run_id = run_id or latest_run(p)
        cfg = stored_config(p, run_id, root=_root(root)) if run_id else None
        if cfg is None:
            raise ReasonloopError(f"no run {run_id!r} in {p}" if run_id else "no runs yet")
        from reasonloop.stages.register import report as build
        with out.status(f"building the report of {run_id}"):
            rep = build(cfg, run_id)
    except ReasonloopError as e:
        _fail(e)
    import polars as pl
    its = rep["iterations"].select(
        "iteration", "phase", pl.col("val_pass1").alias("val pass@1"),
        pl.col("test_pass1").alias("test pass@1"), pl.col("n_search").alias("|D_search|"),
        pl.col("n_expert").alias("|D_expert|"), "version", "gate")
    out.print(_table(its, title=f"run {run_id}"))
    for f in rep["fits"]:
        out.print(f"fit ({f['phase']}) test pass@1 = {f['a']:.3f} + {f['b']:.3f}·log10("
                  f"{f['axis']})  R²={f['r2']:.2f}  ({f['n']} points)")
    out.print(f"report: {rep['html']}  ({len(rep['pngs'])} plots, {rep['seconds']:.1f} s; "
              f"also MLflow run {run_id}/report)")
