"""Step 5's second half: register the evaluated policy in MLflow with its lineage, run the
promotion gate, and publish the train-time scaling report. Idempotent like every stage: a
rerun after a crash at any point finishes the job without a second version or decision."""

from __future__ import annotations

from pathlib import Path

from reasonloop import compute, faults
from reasonloop.config import Config
from reasonloop.eval import report as run_report
from reasonloop.eval.evaluate import eval_rows
from reasonloop.eval.gate import promotion
from reasonloop.eval.plots import plot_test_time
from reasonloop.eval.report_plots import train_time
from reasonloop.eval.test_time import results_table
from reasonloop.stages.evaluate import Evaluation
from reasonloop.store import db, registry
from reasonloop.workspace import Iteration, git_sha, open_registry, paths, split


def lineage(cfg: Config, run_id: str, iteration: int) -> dict:
    """The tags every registered version carries (policy or learned verifier): where it came
    from, from which code and config, on which machine and numeric type."""
    return {"run_id": run_id, "iteration": iteration, "git_sha": git_sha(paths(cfg).root),
            "config_hash": cfg.hash(), **compute.resolve(cfg).record()}


def _evals(it: Iteration, ev: Evaluation, version: str | None) -> None:
    cfg = it.cfg
    sizes = {"val": len(split(cfg, "val")), "test": len(split(cfg, "test"))}
    db.replace_evals(it.paths.db, it.run_id, it.iteration, eval_rows(
        ev.metrics, ev.search, it.run_id, it.iteration, version, cfg.eval.k, sizes,
        cfg.eval.n_sampled_problems, cfg.eval.search_problems))


def register(it: Iteration, policy: str, ev: Evaluation, phase: str,
             data_md5: str | None) -> dict:
    """Log to MLflow, register the policy as `challenger` with lineage tags, and move
    `champion` to it only if it beats the champion on val (the promotion gate)."""
    cfg, P, run_id = it.cfg, it.paths, it.run_id
    open_registry(cfg)
    name = cfg.run.name
    champ = registry.version_by_alias(name, registry.CHAMPION)
    parent = registry.version_by_alias(name, registry.CHALLENGER)
    _evals(it, ev, None)
    curve = db.query(P.db, """SELECT p.*, i.phase FROM pass_by_iteration p LEFT JOIN
                              iterations i USING (run_id, iteration) WHERE p.run_id = $run
                              ORDER BY p.iteration""", {"run": run_id})
    plot = train_time(curve, set(), P.run_reports(run_id) / "pass_by_iteration.png",
                      title=f"run {run_id}")
    plots = [plot]
    for sp, results in ev.search.items():
        plots.append(plot_test_time(results, P.run_reports(run_id) /
                                    f"test_time_iter{it.iteration:02d}_{sp}.png",
                                    title=f"{run_id} iteration {it.iteration}: {sp} split"))
    tags = {**lineage(cfg, run_id, it.iteration), "phase": phase, "data_md5": data_md5 or "",
            "parent_version": parent.version if parent else "",
            "champion_before": champ.version if champ else ""}
    params = {"config": cfg.to_json(), **{f"{s}.{k}": v for s, sec in
                                          cfg.model_dump(mode="json").items()
                                          for k, v in sec.items()}}
    version = registry.log_iteration(name, P.mlartifacts, f"{run_id}/iter{it.iteration:02d}",
                                     params, ev.flat(), Path(policy), plots, tags)
    faults.point("register", it.iteration)       # version registered, the gate not yet run
    _evals(it, ev, version)
    promoted = _gate(it, version, ev.metrics)
    db.update_iteration(P.db, run_id, it.iteration, phase=phase, policy_path=str(policy))
    return {"version": version, "promoted": promoted,
            "plot": str(plot), "plots": [str(p) for p in plots]}


def _gate(it: Iteration, version: str, metrics: dict) -> bool:
    """The promotion gate, once per version. The decision's tag on the version is written
    last: a rerun after a crash anywhere before it decides again — against the champion the
    version was registered under (its `champion_before` tag), with the same outcome — and
    the DuckDB row is replaced, not added."""
    cfg = it.cfg
    name, key = cfg.run.name, cfg.eval.promote_metric
    tags = registry.version_tags(name, version)
    if tags.get("promotion"):
        return tags["promotion"] == "promoted"
    before = tags.get("champion_before")
    champ = registry.get_version(name, before) if before else None
    best = float(champ.tags.get(key.replace("@", "_at_"), "-1")) if champ else -1.0
    promoted, gate = promotion(it.paths.db, champ.tags if champ else None, it.run_id,
                               it.iteration, metrics.get(key, 0.0), best,
                               cfg.eval.promote_alpha, key)
    if promoted:
        registry.promote(name, version)
    db.record_promotion(it.paths.db, model=name, version=version, run_id=it.run_id,
                        iteration=it.iteration, who="gate",
                        champion_version=champ.version if champ else None, **gate)
    registry.tag_version(name, version, {"promotion": gate["decision"],
                                         "promotion_p": f"{gate.get('p_value', 0):.4g}"})
    return promoted


def summary(it: Iteration, phase: str, ev: Evaluation, reg: dict, data_md5: str | None) -> str:
    """The iteration as markdown (the flow run's artifact)."""
    lines = [f"# {it.run_id} — iteration {it.iteration} ({phase})", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(ev.metrics.items())]
    lines += ["", f"MLflow: `{it.cfg.run.name}` v{reg['version']}"
              f"{' → **champion**' if reg['promoted'] else ' (challenger)'}",
              *[f"Plot: `{p}`" for p in reg["plots"]], f"DVC data md5: `{data_md5}`"]
    for sp, results in ev.search.items():
        lines += ["", f"## Test-time search ({sp} split): accuracy (tokens/problem)", "",
                  results_table(results)]
    return "\n".join(lines)


def report(cfg: Config, run_id: str) -> dict:
    """The run report (reports/<run>/report.html + PNGs, train-time scaling fits) and an
    MLflow run `<run>/report` holding the same page: a rerun updates it, adds none."""
    P = paths(cfg)
    rep = run_report.build(P.db, run_id, P.run_reports(run_id), cfg.run.name)
    open_registry(cfg)
    metrics = {f"{f['phase']}_{f['axis']}_{k}": f[k] for f in rep["fits"] for k in ("b", "r2")}
    rep["mlflow_run"] = registry.log_report(
        cfg.run.name, P.mlartifacts, f"{run_id}/report", metrics,
        [rep["html"], rep["scaling_md"], *rep["pngs"].values()],
        {"run_id": run_id, "report": "flywheel"})
    return rep


def champion_policy(cfg: Config) -> str | None:
    """The champion's model directory: its run's saved policy when still on disk, else the
    registered artifact. A scheduled turn starts from it, not from the last challenger."""
    P = paths(cfg)
    open_registry(cfg)
    champ = registry.version_by_alias(cfg.run.name, registry.CHAMPION)
    if champ is None:
        return None
    local = db.query(P.db, "SELECT policy_path FROM iterations WHERE run_id = $run AND "
                     "iteration = $it", {"run": champ.tags.get("run_id", ""),
                                         "it": int(champ.tags.get("iteration", -1))})
    if local.height and local["policy_path"][0] and Path(local["policy_path"][0]).exists():
        return local["policy_path"][0]
    return registry.resolve(f"{cfg.run.name}/{champ.version}")
