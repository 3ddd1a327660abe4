"""Run start: the stores a run writes to, made ready before anything else."""

from __future__ import annotations

from reasonloop import compute
from reasonloop.config import Config
from reasonloop.errors import ReasonloopError
from reasonloop.store import data, db
from reasonloop.workspace import env_and_problems, git_sha, open_registry, paths


def start_run(cfg: Config, run_id: str) -> dict:
    """DuckDB schema + problems + the run row; DVC repo with a local remote; MLflow store."""
    P = paths(cfg)
    env, problems, _ = env_and_problems(cfg)
    db.init_db(P.db)
    added = db.insert_problems(P.db, env.name, problems)
    db.record_run(P.db, run_id, cfg.to_json(), cfg.hash(), git_sha(P.root),
                  compute.resolve(cfg).record())
    P.data.mkdir(parents=True, exist_ok=True)
    data.ensure_remote(P.root, P.dvc_remote)
    open_registry(cfg)
    return {"problems": len(problems), "new_problems": added}


def earlier(cfg: Config, run_id: str, first: int) -> tuple[list[dict], str]:
    """Where a turn starts, read from the stores instead of replaying the iterations before
    it through the task cache (a hundredth night would replay ~800 calls): the run's history
    as the learner schedule reads it, and the last iteration's saved policy."""
    P = paths(cfg)
    df = db.query(P.db, """
        SELECT i.iteration, i.phase, i.policy_path, p.val_pass1, p.test_pass1, p.test_passk,
               p.test_majk
        FROM iterations i LEFT JOIN pass_by_iteration p USING (run_id, iteration)
        WHERE i.run_id = $run AND i.iteration < $first
          AND (i.finished_at IS NOT NULL OR i.iteration = 0) ORDER BY i.iteration""",
                  {"run": run_id, "first": first})
    if df["iteration"].to_list() != list(range(first)):
        raise ReasonloopError(f"run {run_id}: cannot go on at iteration {first}: iterations "
                              f"{sorted(set(range(first)) - set(df['iteration']))} did not "
                              f"finish (`reasonloop run --resume {run_id}` replays them)")
    history = [{"iteration": r["iteration"], "phase": r["phase"], "val_pass@1": r["val_pass1"],
                "test_pass@1": r["test_pass1"], "test_pass@k": r["test_passk"],
                "test_maj@k": r["test_majk"]} for r in df.iter_rows(named=True)]
    return history, df["policy_path"][-1]
