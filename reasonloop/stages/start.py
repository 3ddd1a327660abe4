"""Run start: the stores a run writes to, made ready before anything else."""

from __future__ import annotations

from reasonloop import compute
from reasonloop.config import Config
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
