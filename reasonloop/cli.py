"""`reasonloop` — run the flywheel, query its store, manage its models.

Errors a user can cause print as one line (no traceback) and exit 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import get_args

import typer
from rich.table import Table

from reasonloop import faults, preflight, stopping
from reasonloop.cli_gc import gc
from reasonloop.cli_models import models_app, promote
from reasonloop.cli_ops import report, serve, ui
from reasonloop.cli_verify import verify
from reasonloop.cliutil import (
    CONFIG,
    ROOT,
    SET,
    VERBOSE,
    _fail,
    _quiet_env,
    _root,
    _table,
    out,
    quiet_loggers,
    watch_storage,
)
from reasonloop.config import TEST_TIME_METHODS, learned_prm, load_config
from reasonloop.envs import plugins
from reasonloop.errors import ReasonloopError
from reasonloop.paths import Paths

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.command()
def run(config: Path | None = typer.Option(None, "--config", "-c",
                                          help="YAML recipe [default: configs/default.yaml]"),
        iterations: int | None = typer.Option(None, "--iterations", "-n",
                                              help="iterations [default: run.iterations]"),
        run_id: str | None = typer.Option(None, "--run-id", help="resume this run"),
        resume: bool = typer.Option(False, "--resume", help="resume the latest run"),
        root: Path | None = ROOT, set_: list[str] = SET, verbose: bool = VERBOSE):
    """Run the flywheel: policy init, then N × (search → verify → filter → learn → evaluate).
    Ctrl-C / SIGTERM stop it within seconds; `--resume` continues it."""
    _quiet_env(verbose)
    stopping.install()
    faults.arm_random_kill()      # only when a reliability test asks for it
    cfg = None
    try:
        overrides = list(set_) + [f"run.root={_root(root)}"]
        if iterations is not None:
            overrides.append(f"run.iterations={iterations}")
        resuming = resume or run_id is not None
        if config is None and not resuming:
            config = Path("configs/default.yaml")
        cfg = load_config(config, overrides)
        # fail before anything is written: workspace and stores, model dir, problems
        preflight.workspace(cfg.run.root, cfg.run.min_free_mb)
        watch_storage(cfg.run.root, cfg.run.min_free_mb)
        if cfg.policy.path is not None or cfg.policy.init_from is not None:
            from reasonloop.policy.init import load_policy
            load_policy(cfg.policy.path or cfg.policy.init_from)
        from reasonloop.workspace import env_and_problems, latest_run, stored_config
        env_and_problems(cfg)
        store = Paths(Path(cfg.run.root)).db
        if resume and run_id is None:
            run_id = latest_run(store)
            if run_id is None:
                raise ReasonloopError("nothing to resume: no runs in this workspace")
        if run_id is not None:   # a resumed run keeps its config; only root/iterations move
            cfg = stored_config(store, run_id, root=cfg.run.root, **(
                {"iterations": iterations} if iterations else {})) or cfg
        run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.hash()[:6]}"
        out.rule(f"reasonloop run {run_id}")
        out.print_json(cfg.to_json())
        from reasonloop import compute
        out.print(f"compute: {compute.resolve(cfg).describe()}")
        from flows.flywheel import run as run_flywheel
        quiet_loggers(verbose)
        history = run_flywheel(cfg, run_id)
    except ReasonloopError as e:
        if _storage(e, cfg):
            e = ReasonloopError(f"{e} (fix it, then `reasonloop run --resume`)")
        _fail(e)
    except KeyboardInterrupt:
        _stopped(f"`reasonloop run --resume` continues run {run_id}" if run_id else "")
    except Exception as e:   # the disk filled up, turned read-only mid-run: resumable
        what = _storage(e, cfg)
        if what is None and not isinstance(e, OSError):
            raise
        _fail(ReasonloopError(f"{what or e.strerror or e} (fix it, then "
                              f"`reasonloop run --resume`)"))
    _print_history(history, run_id)
    page = Path(cfg.run.root) / "reports" / run_id / "report.html"
    if page.exists():
        out.print(f"report: {page}")


def _storage(e: BaseException, cfg) -> str | None:
    """A full or read-only workspace in words (None: some other failure)."""
    return faults.storage_error(e, *((cfg.run.root, cfg.run.min_free_mb) if cfg else ()))


def _stopped(then: str) -> None:
    """One line, then exit 130/143 without waiting for worker threads (reasonloop/stopping)."""
    typer.echo(f"\nstopped{': ' + then if then else ''}", err=True)
    stopping.finish(stopping.exit_code())


def _print_history(history: list[dict], run_id: str) -> None:
    t = Table(title=f"run {run_id}")
    for c in ["it", "phase", "val pass@1", "test pass@1", "test pass@k", "test maj@k",
              "|D_search|", "|D_expert|", "seconds"]:
        t.add_column(c)
    for h in history:
        t.add_row(str(h["iteration"]), h["phase"], f"{h['val_pass@1']:.3f}",
                  f"{h['test_pass@1']:.3f}", f"{h['test_pass@k']:.3f}", f"{h['test_maj@k']:.3f}",
                  str(h.get("n_search", "")), str(h.get("n_expert", "")),
                  f"{h['seconds']['total']:.0f}" if "seconds" in h else "")
    out.print(t)


@app.command()
def sql(query: str, fmt: str = typer.Option("table", "--format", "-f",
                                           help="table | csv | json | parquet"),
        output: Path | None = typer.Option(None, "--out", "-o",
                                           help="write here (parquet needs it)"),
        root: Path | None = ROOT):
    """Run SQL on the store: read-only (writes are refused), safe while a flywheel writes."""
    from reasonloop.store import db
    if fmt not in ("table", "csv", "json", "parquet"):
        _fail(ReasonloopError(f"--format must be table, csv, json or parquet (got {fmt!r})"))
    if fmt == "parquet" and output is None:
        _fail(ReasonloopError("--format parquet needs --out FILE"))
    try:
        db.check_read_only(query)
        df = db.query(Paths(_root(root)).db, query)
    except ReasonloopError as e:
        _fail(e)
    if output is not None:
        try:
            {"parquet": df.write_parquet, "csv": df.write_csv, "table": df.write_csv,
             "json": df.write_json}[fmt](output)
        except OSError as e:
            _fail(ReasonloopError(f"cannot write {output}: {e.strerror or e}"))
        out.print(f"{df.height} rows → {output}")
    elif fmt == "csv":
        sys.stdout.write(df.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=str) + "\n")
    else:
        out.print(_table(df))


@app.command("eval")
def eval_(model: str = typer.Option(..., "--model", "-m",
                                    help="a model dir, NAME@alias or NAME/VERSION"),
          methods: str | None = typer.Option(
              None, help="test-time search, e.g. best_of_n,majority,weighted_bon,orm_bon,"
                         "orm_weighted,beam,dvts,mcts,revise (without it: greedy pass@1, "
                         "pass@k, maj@k)"),
          budgets: str = typer.Option("1,4,16,64", help="budgets n for --methods"),
          problems: Path | None = typer.Option(None, help="JSONL of problems (Countdown: "
                                               "{numbers, target}; math: {question, answer})"),
          split: str = typer.Option("test", help="split to search when no --problems"),
          limit: int | None = typer.Option(None, help="first N problems only"),
          config: Path = CONFIG,
          root: Path | None = ROOT,
          set_: list[str] = SET, verbose: bool = VERBOSE):
    """Evaluate a model: greedy pass@1/pass@k/maj@k, or accuracy vs tokens per search method."""
    _quiet_env(verbose)
    stopping.install()
    import polars as pl
    try:
        # a typo in the arguments fails in ~1 s, before the ~13 s of torch and mlflow imports
        ms, bs = _search_args(methods, budgets, split, limit) if methods is not None else \
            (None, None)
        from reasonloop.store import registry
        cfg = load_config(config, list(set_) + [f"run.root={_root(root)}"])
        preflight.workspace(cfg.run.root, cfg.run.min_free_mb)
        if methods is not None:
            if problems is not None:           # fail before the flow starts, in one line
                from reasonloop.workspace import env
                plugins.problems_file(env(cfg), problems)
            registry.setup(Paths(_root(root)).mlflow_db, Paths(_root(root)).mlartifacts)
            registry.resolve(model)
            _check_verifiers(cfg, ms)
            from flows.evaluate import run as run_eval
            quiet_loggers(verbose)
            res = run_eval(cfg, model, ms, bs, problems, split, limit)
            _print_search(res, model)
            return
        registry.setup(Paths(_root(root)).mlflow_db, Paths(_root(root)).mlartifacts)
        from reasonloop.stages.evaluate import evaluate_model
        metrics = evaluate_model(cfg, registry.resolve(model))[0].metrics
    except ReasonloopError as ex:
        _fail(ex)
    except KeyboardInterrupt:
        _stopped("")
    out.print(_table(pl.DataFrame({"metric": list(metrics), "value": list(metrics.values())}),
                     title=f"{model} (k={cfg.eval.k})"))


def _search_args(methods: str, budgets: str, split: str, limit: int | None):
    """The names come from the config's list (light), not search.methods (imports torch)."""
    names = get_args(TEST_TIME_METHODS)
    ms = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in ms if m not in names]
    if not ms or bad:
        raise ReasonloopError(f"unknown --methods {bad or methods!r}; choose from "
                              f"{','.join(names)}")
    try:
        bs = [int(b) for b in budgets.split(",")]
    except ValueError:
        raise ReasonloopError(f"--budgets must be integers like 1,4,16 (got {budgets!r})") \
            from None
    if not bs or min(bs) < 1:
        raise ReasonloopError(f"--budgets must be positive (got {budgets!r})")
    if split not in ("train", "val", "test"):
        raise ReasonloopError(f"--split must be train, val or test (got {split!r})")
    if limit is not None and limit < 1:
        raise ReasonloopError(f"--limit must be positive (got {limit})")
    return ms, bs


def _check_verifiers(cfg, methods: list[str]) -> None:
    """Learned verifiers the methods need must exist before the flow starts."""
    from reasonloop.reward.prm import fitted_path
    from reasonloop.search.methods import needs_orm
    need = {"orm"} if needs_orm(methods) or cfg.reward.orm_model else set()
    if learned_prm(cfg.reward) or cfg.reward.prm_model:
        need.add("prm")
    for kind in sorted(need):
        if fitted_path(cfg, kind, None, None) is None:
            raise ReasonloopError(
                f"no learned {kind.upper()}: pass --set reward.{kind}_model=PATH|NAME@alias, "
                f"or fit one in a run (reward.train: [{kind}] registers {cfg.run.name}-{kind})")


def _print_search(res: dict, model: str) -> None:
    v = f" (v{res['version']})" if res["version"] else ""
    t = Table(title=f"{model}{v}: {res['n_problems']} {res['split']} problems")
    for c in ["method", "budget", "accuracy", "tokens/problem", "seconds"]:
        t.add_column(c)
    for r in res["results"]:
        t.add_row(r["method"], str(r["budget"]), f"{100 * r['accuracy']:.1f}%",
                  f"{r['tokens']:.0f}", f"{r['seconds']:.1f}")
    out.print(t)
    out.print(f"plot: {res['plot']}   rows: evals/trajectories WHERE run_id = "
              f"'{res['eval_id']}'")


app.add_typer(models_app, name="models")
app.command()(promote)
app.command()(report)
app.command()(serve)
app.command()(ui)
app.command()(verify)
app.command()(gc)

if __name__ == "__main__":
    app()
