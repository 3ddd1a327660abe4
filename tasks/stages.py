"""The stages as Prefect tasks: a name, a cache key per (run, iteration, stage[, shard]),
retries for transient failures — and no logic; that lives in `reasonloop/stages/`. The
register and report tasks also publish what they made as Prefect artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from reasonloop.stages import evaluate as evaluate_stage
from reasonloop.stages import filter as filter_stage
from reasonloop.stages import fit_verifiers as fit_stage
from reasonloop.stages import generate, init, start, verify
from reasonloop.stages import register as register_stage
from reasonloop.stages import train as train_stage
from reasonloop.stages.evaluate import Evaluation
from reasonloop.stages.search_eval import evaluate_search
from reasonloop.workspace import Iteration
from tasks.common import CACHED, RETRIED, stage_key


def _stage(fn, name: str, run_level: bool = False):
    """A cached stage; one of an iteration is named for it in the UI (`train-it21`)."""
    return task(fn, name=name, cache_key_fn=stage_key(name), **CACHED, **RETRIED,
                **({} if run_level else {"task_run_name": name + "-it{it.iteration}"}))


start_run = task(start.start_run, name="start-run", **RETRIED)
earlier_iterations = task(start.earlier, name="earlier-iterations", **RETRIED)
init_policy = _stage(init.init, "init-policy", run_level=True)
generate_shard = _stage(generate.generate_shard, "generate")                 # Step 1
verify_search = _stage(verify.verify, "verify")                              # Step 2
fit_verifiers = _stage(fit_stage.fit_verifiers, "fit-verifiers")
filter_expert = _stage(filter_stage.filter_expert, "filter")                  # Step 3
train = _stage(train_stage.train, "train")                                   # Step 4
evaluate = _stage(evaluate_stage.evaluate_policy, "evaluate")                # Step 5
champion = task(register_stage.champion_policy, name="champion", **RETRIED)


@task(name="register", task_run_name="register-it{it.iteration}",
      cache_key_fn=stage_key("register"), **CACHED, **RETRIED)
def register(it: Iteration, policy: str, ev: Evaluation, phase: str,
             data_md5: str | None) -> dict:
    reg = register_stage.register(it, policy, ev, phase, data_md5)
    create_markdown_artifact(key=f"flywheel-iter-{it.iteration}",
                             markdown=register_stage.summary(it, phase, ev, reg, data_md5),
                             description=f"{it.run_id} iteration {it.iteration}")
    return reg


@task(name="report", **RETRIED)
def report(cfg, run_id: str) -> dict:
    """The run report (HTML + PNGs), also on the MLflow run `<run>/report`; on the flow run
    the same page (Prefect's markdown artifacts render its HTML and inlined PNGs), the
    iterations as a table, and a link to the file."""
    rep = register_stage.report(cfg, run_id)
    rows = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
            for r in rep["iterations"].to_dicts()]
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
    res = evaluate_search(cfg, model, methods, budgets, problems_file, split, limit)
    create_markdown_artifact(
        key="test-time-search", description=f"{model} on {res['n_problems']} problems",
        markdown=f"# Test-time search: {model} (v{res['version']})\n\n{res['table']}\n\n"
                 f"Plot: `{res['plot']}` (also in MLflow run `{res['eval_id']}`)\n")
    return res
