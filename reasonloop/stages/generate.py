"""Step 1 — search: training-time search with the current policy over the train split.

The problems of an iteration are split into `search.shards` shards, each searched on its
own (a thread, a Ray task, a Dask future) and written to its own Parquet file — raw samples,
not yet verified. Which problems: the ones this run never searched first, then the ones it
never solved, then the rest (fresh problems beat a memorised pool).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import polars as pl

from reasonloop import faults
from reasonloop.envs.base import Problem
from reasonloop.policy.engines import SamplingParams, load_engine
from reasonloop.search.methods import SEARCH
from reasonloop.search.spec import search_spec
from reasonloop.store import db
from reasonloop.workspace import Iteration, set_threads, split

SHARD_SCHEMA = {"problem_id": pl.String, "method": pl.String, "sample_idx": pl.Int32,
                "text": pl.String, "n_tokens": pl.Int32}


@dataclass(frozen=True)
class Shard:
    path: str
    seconds: float        # sampling time (0 when the shard was found already written)


def pick_problems(it: Iteration) -> list[Problem]:
    """This iteration's problems, in sample-allocation order (see the module docstring)."""
    cfg = it.cfg
    solved = db.solved_before(it.paths.db, it.run_id, it.iteration)
    rng = random.Random(cfg.run.seed * 1000 + it.iteration)
    order = split(cfg, "train")
    rng.shuffle(order)
    if cfg.search.prefer_unsolved:
        order.sort(key=lambda p: 0 if p.problem_id not in solved else
                   (1 if not solved[p.problem_id] else 2))
    return order[: cfg.search.problems_per_iteration]


def generate_shard(it: Iteration, policy: str, shard: int) -> Shard:
    """Training-time search over one shard of this iteration's problems → raw samples."""
    cfg, out = it.cfg, it.shard(shard)
    if out.exists():
        return Shard(str(out), 0.0)
    t0 = time.perf_counter()
    set_threads(cfg)
    problems = pick_problems(it)[shard::cfg.search.shards]
    engine = load_engine(cfg.policy.engine, policy, seed=cfg.run.seed, dtype=cfg.policy.dtype)
    params = SamplingParams(temperature=cfg.search.temperature, top_p=cfg.search.top_p,
                            max_new_tokens=cfg.policy.max_new_tokens,
                            seed=hash((cfg.run.seed, it.iteration, shard)) % 2**31)
    spec = search_spec(cfg, engine, progress=True, run_id=it.run_id,
                       iteration=it.iteration - 1)
    rows = SEARCH[cfg.search.method](problems, engine, params, cfg.search.n, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pl.DataFrame(rows, schema=SHARD_SCHEMA).write_parquet(tmp)
    tmp.rename(out)   # atomic: a crash never leaves half a shard
    if shard == 0:
        faults.point("generate", it.iteration)   # the other shards may still be sampling
    return Shard(str(out), time.perf_counter() - t0)
