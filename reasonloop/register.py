"""Step 5's second half: register the evaluated policy in MLflow with its lineage, run the
promotion gate, and publish the train-time scaling report. Idempotent like every stage: a
rerun after a crash at any point finishes the job without a second version or decision."""

from __future__ import annotations

from pathlib import Path

from reasonloop import compute, faults
from reasonloop.config import Config
from reasonloop.stages import git_sha, paths, split
from reasonloop.store import db


def register(cfg: Config, run_id: str, iteration: int, policy: str, metrics: dict,
             phase: str, data_md5: str | None) -> dict:
    """Log to MLflow, register the policy as `challenger` with lineage tags, and move
    `champion` to it only if it beats the champion on val (the promotion gate)."""
    from reasonloop.eval.evaluate import eval_rows
    from reasonloop.eval.plots import plot_curve, plot_test_time
    from reasonloop.eval.test_time import from_metrics
    from reasonloop.store import registry
    P = paths(cfg)
    registry.setup(P.mlflow_db, P.mlartifacts)
    name = cfg.run.name
    champ = registry.version_by_alias(name, registry.CHAMPION)
    parent = registry.version_by_alias(name, registry.CHALLENGER)
    sizes = {"val": len(split(cfg, "val")), "test": len(split(cfg, "test"))}
    db.replace_evals(P.db, run_id, iteration, eval_rows(
        metrics, run_id, iteration, None, cfg.eval.k, sizes, cfg.eval.n_sampled_problems,
        cfg.eval.search_problems))
    history = db.query(P.db, f"SELECT * FROM pass_by_iteration WHERE run_id = '{run_id}'")
    plot = plot_curve([{"iteration": r["iteration"], "val_pass@1": r["val_pass1"],
                        "test_pass@1": r["test_pass1"], "test_pass@k": r["test_passk"],
                        "test_maj@k": r["test_majk"]} for r in history.to_dicts()],
                      P.run_reports(run_id) / "pass_by_iteration.png", title=f"run {run_id}")
    plots = [plot]
    for sp, results in from_metrics(metrics).items():
        plots.append(plot_test_time(results, P.run_reports(run_id) /
                                    f"test_time_iter{iteration:02d}_{sp}.png",
                                    title=f"{run_id} iteration {iteration}: {sp} split"))
    tags = {"run_id": run_id, "iteration": iteration, "phase": phase, "git_sha": git_sha(P.root),
            "config_hash": cfg.hash(), "data_md5": data_md5 or "",
            "parent_version": parent.version if parent else "",
            "champion_before": champ.version if champ else "",
            **compute.resolve(cfg).record()}     # the machine and numeric type it came from
    params = {"config": cfg.to_json(), **{f"{s}.{k}": v for s, sec in
                                          cfg.model_dump(mode="json").items()
                                          for k, v in sec.items()}}
    version = registry.log_iteration(name, P.mlartifacts, f"{run_id}/iter{iteration:02d}",
                                     params, metrics, Path(policy), plots, tags)
    faults.point("register", iteration)       # version registered, the gate not yet run
    db.replace_evals(P.db, run_id, iteration, eval_rows(
        metrics, run_id, iteration, version, cfg.eval.k, sizes, cfg.eval.n_sampled_problems,
        cfg.eval.search_problems))
    promoted = _gate(cfg, run_id, iteration, version, metrics)
    db.update_iteration(P.db, run_id, iteration, phase=phase, policy_path=str(policy))
    return {"version": version, "promoted": promoted,
            "plot": str(plot), "plots": [str(p) for p in plots]}


def _gate(cfg: Config, run_id: str, iteration: int, version: str, metrics: dict) -> bool:
    """The promotion gate, once per version. The decision's tag on the version is written
    last: a rerun after a crash anywhere before it decides again — against the champion the
    version was registered under (its `champion_before` tag), with the same outcome — and
    the DuckDB row is replaced, not added."""
    from reasonloop.eval.gate import promotion
    from reasonloop.store import registry
    P, name, key = paths(cfg), cfg.run.name, cfg.eval.promote_metric
    tags = registry.version_tags(name, version)
    if tags.get("promotion"):
        return tags["promotion"] == "promoted"
    before = tags.get("champion_before")
    champ = registry.get_version(name, before) if before else None
    best = float(champ.tags.get(key.replace("@", "_at_"), "-1")) if champ else -1.0
    promoted, gate = promotion(P.db, champ.tags if champ else None, run_id, iteration,
                               metrics.get(key, 0.0), best, cfg.eval.promote_alpha, key)
    if promoted:
        registry.promote(name, version)
    db.record_promotion(P.db, model=name, version=version, run_id=run_id, iteration=iteration,
                        who="gate", champion_version=champ.version if champ else None, **gate)
    registry.tag_version(name, version, {"promotion": gate["decision"],
                                         "promotion_p": f"{gate.get('p_value', 0):.4g}"})
    return promoted


def report(cfg: Config, run_id: str) -> dict:
    """The run report (reports/<run>/report.html + PNGs, train-time scaling fits) and an
    MLflow run `<run>/report` holding the same page: a rerun updates it, adds none."""
    from reasonloop.eval import report as run_report
    from reasonloop.store import registry
    P = paths(cfg)
    rep = run_report.build(P.db, run_id, P.run_reports(run_id), cfg.run.name)
    registry.setup(P.mlflow_db, P.mlartifacts)
    metrics = {f"{f['phase']}_{f['axis']}_{k}": f[k] for f in rep["fits"] for k in ("b", "r2")}
    rep["mlflow_run"] = registry.log_report(
        cfg.run.name, P.mlartifacts, f"{run_id}/report", metrics,
        [rep["html"], rep["scaling_md"], *rep["pngs"].values()],
        {"run_id": run_id, "report": "flywheel"})
    return rep


def champion_policy(cfg: Config) -> str | None:
    """The champion's model directory: its run's saved policy when still on disk, else the
    registered artifact. A scheduled turn starts from it, not from the last challenger."""
    from reasonloop.store import registry
    P = paths(cfg)
    registry.setup(P.mlflow_db, P.mlartifacts)
    champ = registry.version_by_alias(cfg.run.name, registry.CHAMPION)
    if champ is None:
        return None
    local = db.query(P.db, "SELECT policy_path FROM iterations WHERE run_id = $run AND "
                     "iteration = $it", {"run": champ.tags.get("run_id", ""),
                                         "it": int(champ.tags.get("iteration", -1))})
    if local.height and local["policy_path"][0] and Path(local["policy_path"][0]).exists():
        return local["policy_path"][0]
    return registry.resolve(f"{cfg.run.name}/{champ.version}")


def continuation(cfg: Config, turn_iterations: int) -> tuple[str | None, int, int | None]:
    """The flywheel a scheduled turn continues: this workspace's latest run of the same
    config (same hash). → (run_id or None for a first run, iterations in all, the first new
    iteration — to start from the champion — or None when there is nothing to continue)."""
    P = paths(cfg)
    if not P.db.exists():
        return None, turn_iterations, None
    df = db.query(P.db, """
        SELECT r.run_id, coalesce(max(i.iteration) FILTER (WHERE i.finished_at IS NOT NULL
                                                           AND i.iteration > 0), 0) AS done
        FROM runs r LEFT JOIN iterations i USING (run_id) WHERE r.config_hash = $hash
        GROUP BY r.run_id, r.started_at ORDER BY r.started_at DESC LIMIT 1""",
                  {"hash": cfg.hash()})
    if not df.height:
        return None, turn_iterations, None
    run_id, done = df["run_id"][0], int(df["done"][0])
    return run_id, done + turn_iterations, (done + 1 if done else None)
