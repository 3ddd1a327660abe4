"""What every `reasonloop` command shares: the workspace root, quiet library defaults, the
table printer and the one-line error exit."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

out = Console()

# Options every command spells the same way.
ROOT = typer.Option(None, help="workspace [default: . or REASONLOOP_HOME]")
CONFIG = typer.Option(Path("configs/default.yaml"), "--config", "-c", help="YAML recipe")
SET = typer.Option([], "--set", help="config override, e.g. search.n=8 (repeatable)")


def _quiet_env() -> None:
    """Library defaults for a CLI run: quiet, offline, and safe — every server Prefect
    starts for us (the temporary API server, a runner's webserver) binds 127.0.0.1."""
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")
    os.environ.setdefault("PREFECT_RUNNER_SERVER_HOST", "127.0.0.1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


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
