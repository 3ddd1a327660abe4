"""Step 5 — evaluate (greedy pass@1 val/test, pass@k, maj@k), then register + promote."""

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from reasonloop import register as register_stage
from reasonloop import stages
from tasks.common import CACHED, RETRIED, stage_key


@task(name="evaluate", cache_key_fn=stage_key("evaluate"), **CACHED, **RETRIED)
def evaluate(cfg, run_id: str, iteration: int, policy: str) -> dict:
    return stages.evaluate_policy(cfg, run_id, iteration, policy)


@task(name="register", cache_key_fn=stage_key("register"),
      **CACHED, **RETRIED)
def register(cfg, run_id: str, iteration: int, policy: str, metrics: dict, phase: str,
             data_md5: str | None) -> dict:
    reg = register_stage.register(cfg, run_id, iteration, policy, metrics, phase, data_md5)
    lines = [f"# {run_id} — iteration {iteration} ({phase})", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(metrics.items()) if "/" not in k]
    lines += ["", f"MLflow: `{cfg.run.name}` v{reg['version']}"
              f"{' → **champion**' if reg['promoted'] else ' (challenger)'}",
              *[f"Plot: `{p}`" for p in reg["plots"]], f"DVC data md5: `{data_md5}`"]
    from reasonloop.eval.test_time import from_metrics, results_table
    for split, results in from_metrics(metrics).items():
        lines += ["", f"## Test-time search ({split} split): accuracy (tokens/problem)", "",
                  results_table(results)]
    create_markdown_artifact(key=f"flywheel-iter-{iteration}", markdown="\n".join(lines),
                             description=f"{run_id} iteration {iteration}")
    return reg


@task(name="champion", **RETRIED)
def champion(cfg) -> str | None:
    """The champion's model dir (a scheduled turn's starting policy)."""
    return register_stage.champion_policy(cfg)


@task(name="report", **RETRIED)
def report(cfg, run_id: str) -> dict:
    """The run report (HTML + PNGs), also on the MLflow run `<run>/report`; on the flow run
    the same page (Prefect's markdown artifacts render its HTML and inlined PNGs), the
    iterations as a table, and a link to the file."""
    rep = register_stage.report(cfg, run_id)
    its = rep["iterations"]
    rows = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
            for r in its.to_dicts()]
    create_table_artifact(key="flywheel-iterations", table=rows,
                          description=f"{run_id}: pass@1, data and promotions by iteration")
    create_markdown_artifact(key="flywheel-report", markdown=rep["body"],
                             description=f"{run_id}: the run report (also {rep['html']} and "
                                         f"MLflow run {run_id}/report)")
    create_link_artifact(key="flywheel-report-file", link=rep["html"].resolve().as_uri(),
                         link_text=f"report.html ({run_id})")
    return {"html": str(rep["html"]), "pngs": [str(p) for p in rep["pngs"].values()],
            "fits": rep["fits"], "mlflow_run": rep["mlflow_run"]}


@task(name="test-time search", **RETRIED)
def search_eval(cfg, model: str, methods: list[str], budgets: list[int], problems_file,
                split: str, limit: int | None) -> dict:
    """Test-time search outside a run; publishes the accuracy-vs-tokens table and plot."""
    from reasonloop.eval.standalone import evaluate_search
    res = evaluate_search(cfg, model, methods, budgets, problems_file, split, limit)
    create_markdown_artifact(
        key="test-time-search", description=f"{model} on {res['n_problems']} problems",
        markdown=f"# Test-time search: {model} (v{res['version']})\n\n{res['table']}\n\n"
                 f"Plot: `{res['plot']}` (also in MLflow run `{res['eval_id']}`)\n")
    return res
