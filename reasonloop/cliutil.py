"""What every `reasonloop` command shares: the workspace root, quiet library defaults, the
table printer and the one-line error exit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from reasonloop import faults, stopping

out = Console()

# Options every command spells the same way.
ROOT = typer.Option(None, help="workspace [default: . or REASONLOOP_HOME]")
CONFIG = typer.Option(Path("configs/default.yaml"), "--config", "-c", help="YAML recipe")
SET = typer.Option([], "--set", help="config override, e.g. search.n=8 (repeatable)")
VERBOSE = typer.Option(False, "--verbose", "-v",
                       help="show third-party progress bars, logs and warnings")

# Loggers that print tracebacks about a server that is gone once a run is stopped (Prefect's
# event and log workers), and library chatter beside our own progress bars.
NOISY_LOGGERS = ("prefect._internal.concurrency", "prefect.events.clients",
                 "prefect._internal", "datasets", "transformers", "trl",
                 "accelerate", "mlflow", "dvc", "httpx")


def _quiet_env(verbose: bool = False) -> None:
    """Library defaults for a CLI run: quiet, offline, and safe — every server Prefect
    starts for us (a runner's webserver) binds 127.0.0.1. One progress bar per stage, ours:
    the `datasets` map bars TRL draws per training call, transformers' advisories and
    Python warnings are off unless `verbose`. Set before the libraries are imported (they
    read these at import), and for the processes we start."""
    if not verbose:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")   # transformers' save bars
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        import warnings
        warnings.simplefilter("ignore")
    quiet_loggers(verbose)
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")
    os.environ.setdefault("PREFECT_RUNNER_SERVER_HOST", "127.0.0.1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def quiet_loggers(verbose: bool = False) -> None:
    """Third-party loggers to errors only — to nothing for Prefect's background workers,
    whose errors after a stop are about a server we stopped on purpose. Call again after
    importing Prefect (its logging set-up resets levels)."""
    import logging
    if verbose:
        return
    for name in NOISY_LOGGERS:
        level = logging.CRITICAL if name.startswith("prefect") else logging.ERROR
        logging.getLogger(name).setLevel(level)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if _after_stop not in logger.filters:
            logger.addFilter(_after_stop)


_STORAGE: dict = {}      # the workspace of the run in progress: root, min_free_mb


def watch_storage(root: Path, min_free_mb: int) -> None:
    """A full or read-only workspace is reported by the CLI in one line: Prefect's own
    tracebacks of the same failure are dropped (see `_after_stop`)."""
    _STORAGE.update(root=root, min_free_mb=min_free_mb)


def _after_stop(record) -> bool:
    """Drop Prefect's "Crash detected!" reports once the user asked us to stop (expected),
    and its reports of a disk that filled up or turned read-only (the CLI says it once)."""
    if stopping.stopped():
        return False
    if record.levelno >= logging.ERROR and _STORAGE:
        exc = record.exc_info[1] if record.exc_info else None
        if faults.storage_error(exc, _STORAGE["root"], _STORAGE["min_free_mb"]):
            return False
    return True


def _root(root: Path | None) -> Path:
    return Path(root or os.environ.get("REASONLOOP_HOME", ".")).resolve()


def _table(df, title: str | None = None) -> Table:
    t = Table(title=title, show_lines=False)
    for c in df.columns:
        t.add_column(c)
    for row in df.iter_rows():
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return t


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)   # one line, never wrapped
    raise typer.Exit(1)
