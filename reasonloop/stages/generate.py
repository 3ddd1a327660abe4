"""Step 1 — search: training-time search with the current policy over the train split.

The problems of an iteration are split into `search.shards` shards, each searched on its
own (a thread, a Ray task, a Dask future) and written to its own Parquet file — raw samples,
not yet verified. Which problems (`search.allocation`): the ones this run never searched
first (fresh problems beat a memorised pool); once the pool is spent, `learnable` serves the
partly solved ones, then the rest, least searched first. Serving only never-solved problems
(`unsolved`) starved D_expert on the default once its pool ran out: search accuracy 23% → 8%.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import polars as pl

from reasonloop import faults
from reasonloop.envs.base import Problem
from reasonloop.policy.engines import SamplingParams, policy_engine
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


def allocation_key(cfg, history: dict[str, tuple[float, int]]):
    """Sort key of a train problem under `search.allocation`, given its search history."""
    def key(p: Problem) -> tuple:
        if p.problem_id not in history:
            return (0,)
        rate, times = history[p.problem_id]
        if cfg.search.allocation == "unsolved":
            return (1 if rate == 0 else 2,)
        return (1 if 0 < rate < 1 else 2, times)
    return key


def pick_problems(it: Iteration) -> list[Problem]:
    """This iteration's problems, in sample-allocation order (see the module docstring)."""
    cfg = it.cfg
    rng = random.Random(cfg.run.seed * 1000 + it.iteration)
    order = split(cfg, "train")
    rng.shuffle(order)
    if cfg.search.allocation != "random":
        history = db.search_history(it.paths.db, it.run_id, it.iteration)
        order.sort(key=allocation_key(cfg, history))   # stable: shuffled within a class
    return order[: cfg.search.problems_per_iteration]


def generate_shard(it: Iteration, policy: str, shard: int) -> Shard:
    """Training-time search over one shard of this iteration's problems → raw samples."""
    cfg, out = it.cfg, it.shard(shard)
    if out.exists():
        return Shard(str(out), 0.0)
    t0 = time.perf_counter()
    set_threads(cfg)
    problems = pick_problems(it)[shard::cfg.search.shards]
    engine = policy_engine(cfg, policy)
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
