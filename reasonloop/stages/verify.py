"""Step 2 — verify/score: the ORM's outcome reward and the PRM's step rewards for every
trajectory → DuckDB `trajectories` + this iteration's D_search (Parquet, written last)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from reasonloop import faults
from reasonloop.policy.engines import policy_engine
from reasonloop.reward.outcome import score_rows
from reasonloop.search.base import scores_of
from reasonloop.search.spec import search_spec
from reasonloop.store import db
from reasonloop.workspace import Iteration, env_and_problems


@dataclass(frozen=True)
class Searched:
    """D_search of an iteration, in numbers."""
    n_search: int                 # trajectories
    inserted: int                 # new rows in DuckDB (0 on a rerun)
    solved: int                   # problems with at least one correct trajectory
    problems: int
    sample_acc: float
    legal: float
    tokens: int
    solved_per_1k_tokens: float
    verify_errors: int = 0        # texts the env's verify raised on (stored as incorrect)
    seconds: float = 0.0          # scoring time

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "seconds"}


def uses_policy(cfg) -> bool:
    """Step rewards that need the policy: MC rollouts, or its own confidence (self, mix)."""
    r = cfg.reward
    return r.prm in ("self", "mix") or "mc" in (r.prm, r.prm_labels)


def verify(it: Iteration, shard_files: list[str], policy: str | None = None) -> Searched:
    """Score the raw samples → D_search and its numbers. The step rewards come
    from `reward.prm`: oracle labels; MC labels from rollouts of `policy`; the learned PRM
    fitted before this iteration; `policy`'s own confidence (self, mix)."""
    cfg, out = it.cfg, it.d_search
    if out.exists():     # written last and atomically: this iteration was verified already
        d_search = pl.read_parquet(out)
        return search_stats(d_search, db.insert_trajectories(it.paths.db, d_search), 0.0)
    env, _, by_id = env_and_problems(cfg)
    rows = pl.concat([pl.read_parquet(f) for f in sorted(shard_files)]).to_dicts()
    t0 = time.perf_counter()
    scored = score_rows(env, by_id, rows, cfg.reward.shaping, cfg.policy.max_new_tokens)
    if cfg.reward.prm != "oracle":
        engine = policy_engine(cfg, policy) if policy and uses_policy(cfg) else None
        prm = search_spec(cfg, engine, run_id=it.run_id, iteration=it.iteration - 1).prm
        for s, steps in zip(scored, scores_of(prm, [(by_id[s["problem_id"]], s["text"])
                                                   for s in scored])):
            s["step_rewards"] = [float(x) for x in steps]
    seconds = time.perf_counter() - t0
    # created_at = when the shards were sampled: the same on a rerun, in DuckDB and D_search
    sampled = datetime.fromtimestamp(max(Path(f).stat().st_mtime for f in shard_files), UTC)
    df = db.trajectories_frame(it.run_id, it.iteration, scored, sampled.replace(tzinfo=None))
    added = db.insert_trajectories(it.paths.db, df)
    faults.point("verify", it.iteration)         # rows stored, D_search not yet written
    d_search = df.with_columns(pl.Series("legal", [s["legal"] for s in scored]),
                               pl.Series("answer", [s["answer"] for s in scored]))
    d_search.write_parquet(out.with_suffix(".tmp"))
    out.with_suffix(".tmp").rename(out)
    return search_stats(d_search, added, seconds)


def search_stats(d_search: pl.DataFrame, added: int, seconds: float) -> Searched:
    solved = d_search.filter(pl.col("correct"))["problem_id"].n_unique()
    n_tok = int(d_search["n_tokens"].sum())
    return Searched(n_search=d_search.height, inserted=added, solved=solved,
                    problems=d_search["problem_id"].n_unique(),
                    sample_acc=float(d_search["correct"].mean()),
                    legal=float(d_search["legal"].mean()), tokens=n_tok,
                    solved_per_1k_tokens=1000 * solved / max(1, n_tok),
                    verify_errors=int(d_search["verify_error"].is_not_null().sum())
                    if "verify_error" in d_search.columns else 0, seconds=seconds)
