"""`reasonloop models`: the registry as a user sees it — versions, one version's lineage,
and its training data brought back byte for byte (DVC)."""

from __future__ import annotations

from pathlib import Path

import typer

from reasonloop.cliutil import ROOT, _fail, _root, _table, out
from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths

models_app = typer.Typer(help="Registered model versions: list, show lineage, restore data.",
                         no_args_is_help=False)


def _registry(root: Path | None, create: bool = False):
    """MLflow set up on the workspace's store; a reader never creates one."""
    from reasonloop.store import registry
    r = _root(root)
    if not create and not registry.USER_TRACKING_URI and not (Paths(r).mlflow_db).exists():
        return None
    registry.setup(Paths(r).mlflow_db, Paths(r).mlartifacts)
    return registry


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, root: Path | None = ROOT):
    """Registered model versions with aliases, lineage and scores (`models list NAME`,
    `models show NAME@champion`, `models restore NAME/3`)."""
    if ctx.invoked_subcommand is None:
        list_(None, root)


@models_app.command("list")
def list_(name: str | None = typer.Argument(None), root: Path | None = ROOT):
    """List every version (of NAME, or of all models) with aliases and scores."""
    import polars as pl
    registry = _registry(root)
    if registry is None:
        out.print("no registered models")
        return
    try:
        rows = registry.list_versions(name)
    except ReasonloopError as e:
        _fail(e)
    out.print(_table(pl.DataFrame(rows)) if rows else "no registered models")


@models_app.command()
def show(ref: str = typer.Argument(..., help="NAME@alias or NAME/VERSION"),
         root: Path | None = ROOT):
    """Show one version's lineage, scores and gate decision.

    Git sha, config hash, DVC md5, run, iteration, phase, parent, gate decision, scores —
    and the command that restores its training data."""
    from rich.table import Table
    registry = _registry(root)
    try:
        if registry is None:
            raise ReasonloopError(f"no MLflow store under {_root(root)}: run the flywheel first")
        lin = registry.lineage(ref)
    except ReasonloopError as e:
        _fail(e)
    t = Table(title=f"{lin['model']} v{lin['version']}"
                    f"{' @' + ', @'.join(lin['aliases']) if lin['aliases'] else ''}",
              show_header=False)
    for k, v in lin.items():
        if k not in ("scores", "model", "version", "aliases") and v not in ("", None):
            t.add_row(k, str(v))
    for k, v in lin["scores"].items():
        t.add_row(k, f"{v:.4f}")
    out.print(t)
    if lin["data_md5"]:
        to = f"restored/{lin['model']}-v{lin['version']}"
        out.print(f"restore its data:  reasonloop models restore {lin['model']}/"
                  f"{lin['version']} --to {to} --root {_root(root)}", soft_wrap=True)


@models_app.command()
def restore(ref: str = typer.Argument(..., help="NAME@alias or NAME/VERSION"),
            to: Path = typer.Option(..., "--to", help="a new directory for the data"),
            root: Path | None = ROOT):
    """Restore the data/ a version was trained on, from DVC.

    D_search, D_expert and pairs, byte for byte, from the local DVC cache or else the
    remote."""
    from reasonloop.store import data
    registry = _registry(root)
    try:
        if registry is None:
            raise ReasonloopError(f"no MLflow store under {_root(root)}: run the flywheel first")
        lin = registry.lineage(ref)
        if not lin["data_md5"]:
            raise ReasonloopError(f"{ref} has no data version (the initial policy trains on "
                                  f"generated legal plays, not on data/)")
        dest = data.restore(_root(root), lin["data_md5"], to)
    except ReasonloopError as e:
        _fail(e)
    out.print(f"{lin['model']} v{lin['version']}: data {lin['data_md5']} restored to {dest}")


def promote(name: str, version: str,
            alias: str = typer.Option("champion", help="the alias to move"),
            reason: str = typer.Option("manual override", help="recorded with the promotion"),
            root: Path | None = ROOT):
    """Point ALIAS at NAME/VERSION by hand (who and why are recorded).

    Overrides the promotion gate; recorded as version tags and in the DuckDB `promotions`
    table."""
    import getpass

    from reasonloop.store import db, registry
    r = _root(root)
    registry.setup(Paths(r).mlflow_db, Paths(r).mlartifacts)
    who = getpass.getuser()
    try:
        before = registry.version_by_alias(name, alias)
        registry.promote(name, version, alias)
        registry.tag_version(name, version, {"promotion": "manual", "promoted_by": who,
                                             "promote_reason": reason})
        if (Paths(r).db).exists():
            db.init_db(Paths(r).db)   # a store from before the gate: add the table
            db.record_promotion(Paths(r).db, model=name, version=str(version),
                                champion_version=before.version if before else None,
                                decision="manual", who=who, reason=reason)
    except ReasonloopError as e:
        _fail(e)
    out.print(f"{name} v{version} is now @{alias} (by {who}: {reason})")


