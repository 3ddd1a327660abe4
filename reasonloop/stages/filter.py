"""Step 3 — filter: D_search → D_expert (correct, deduplicated, capped per problem; plus
hindsight relabels and revision examples) and, when a DPO phase is scheduled, preference
pairs; exported as Parquet and versioned by DVC (`dvc add` + `dvc push`)."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass

import polars as pl

from reasonloop import faults
from reasonloop import filter as filt
from reasonloop.config import Config
from reasonloop.store import data, db
from reasonloop.workspace import Iteration, env_and_problems


@dataclass(frozen=True)
class Filtered:
    """D_expert (and the DPO pairs) of an iteration, in numbers, and its DVC version."""
    n_expert: int
    n_hindsight: int              # of them relabelled in hindsight
    n_revision: int               # of them revision examples (fix a failed attempt)
    data_md5: str | None          # `data/` as DVC versioned it
    n_pairs: int | None = None    # DPO pairs, when a DPO phase is scheduled
    n_step_pairs: int | None = None
    seconds: float = 0.0

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "seconds" and v is not None}


def filter_expert(it: Iteration) -> Filtered:
    cfg, P, seed = it.cfg, it.paths, it.seed
    env, _, by_id = env_and_problems(cfg)
    t0 = time.perf_counter()
    d_search = pl.read_parquet(it.d_search)
    prompts = {pid: by_id[pid].prompt for pid in d_search["problem_id"].unique()}
    expert = filt.d_expert(d_search, prompts, cfg.filter.max_per_problem, cfg.run.seed,
                           cfg.filter.prefer_shorter)
    if cfg.filter.revision_examples:
        expert = pl.concat([expert, filt.revision_examples(
            env, d_search, by_id, cfg.filter.revision_examples, seed)])
    # the env's repairs of the wrong samples: asked on first use, once for both uses
    repaired = functools.cache(lambda: filt.repairs(env, d_search, by_id, seed))
    if cfg.filter.corrections:
        expert = pl.concat([expert, filt.corrections(
            env, d_search, by_id, cfg.filter.corrections, seed, repaired())])
    if cfg.filter.hindsight:
        hs = filt.hindsight(env, d_search, by_id, cfg.filter.max_hindsight,
                            cfg.filter.max_per_problem, seed)
        expert = pl.concat([expert, hs])
    expert.write_parquet(it.d_expert)
    pairs = {}
    if uses_dpo(cfg):
        d = cfg.learn.dpo
        dp = filt.dpo_pairs(d_search, prompts, d.pairs_per_problem, seed,
                            d.step_pairs_per_problem, env.step_sep)
        if d.correction_pairs_per_problem:
            dp = pl.concat([dp, filt.correction_pairs(
                env, d_search, by_id, d.correction_pairs_per_problem, seed, repaired())])
        dp.write_parquet(it.d_pairs)
        pairs = {"n_pairs": dp.height, "n_step_pairs": int((dp["kind"] != "outcome").sum())}
    seconds = time.perf_counter() - t0
    faults.point("filter", it.iteration)         # D_expert written, not yet versioned by DVC
    md5 = data.snapshot(P.root, P.data, push=cfg.run.dvc_push)
    db.update_iteration(P.db, it.run_id, it.iteration, data_md5=md5, n_expert=expert.height,
                        n_search=d_search.height, **pairs)
    return Filtered(n_expert=expert.height,
                    n_hindsight=int((expert["source"] == "hindsight").sum()),
                    n_revision=int((expert["source"] == "revision").sum()), data_md5=md5,
                    seconds=seconds, **pairs)


def uses_dpo(cfg: Config) -> bool:
    return "dpo" in (cfg.learn.phases or cfg.learn.schedule)
