"""Step 2b — reward design's learned verifiers, fitted on D_search (`reward.train`).

A learned PRM/ORM is fitted every `reward.train_every` iterations on the run's D_search so
far (distinct texts, at most `reward.max_examples`), starting from the weights of the policy
that produced it. One problem in ten is held out (by id hash, so the same problems across
iterations) to measure it: step-level AUC against its labels and against the oracle's, and
the ORM's AUC at telling correct from wrong. Each fit is registered in MLflow as
`<run.name>-prm` / `-orm` with its lineage, and `champion` moves to it when its held-out
AUC is at least the champion's. Which PRM a search uses: reward/prm.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import time

import polars as pl

from reasonloop.compute import release_memory
from reasonloop.config import Config
from reasonloop.eval.metrics import auc
from reasonloop.policy.engines import handover, policy_engine
from reasonloop.reward.learned import (
    LearnedORM,
    LearnedPRM,
    orm_pairs,
    prefix_pairs,
    train_pairwise,
    train_prm,
)
from reasonloop.reward.mc import mc_labels
from reasonloop.reward.prm import label_source, mc_params
from reasonloop.reward.process import good_step
from reasonloop.stages.register import lineage
from reasonloop.store import db, registry
from reasonloop.workspace import Iteration, env_and_problems, open_registry, set_threads


def due(cfg: Config, iteration: int) -> bool:
    return bool(cfg.reward.train) and (iteration - 1) % cfg.reward.train_every == 0


def heldout(problem_id: str) -> bool:
    return int(hashlib.sha1(problem_id.encode()).hexdigest(), 16) % 10 == 0


def d_search_so_far(it: Iteration) -> pl.DataFrame:
    P = it.paths
    files = [P.d_search(it.run_id, i) for i in range(1, it.iteration + 1)
             if P.d_search(it.run_id, i).exists()]
    df = pl.concat([pl.read_parquet(f).select("problem_id", "text", "correct") for f in files])
    return df.unique(["problem_id", "text"]).sort(["problem_id", "text"])


def fit_verifiers(it: Iteration, policy: str) -> dict:
    """Fit every verifier in `reward.train` that is due → {kind: stats}; idempotent."""
    cfg, run_id, iteration = it.cfg, it.run_id, it.iteration
    if not due(cfg, iteration):
        return {}
    set_threads(cfg, "train")
    env, _, by_id = env_and_problems(cfg)
    df = d_search_so_far(it)
    mask = [heldout(p) for p in df["problem_id"]]
    test = df.filter(pl.Series(mask))
    train = df.filter(~pl.Series(mask))
    out = {}
    for kind in cfg.reward.train:
        path = it.paths.reward_model(run_id, kind, iteration)
        meta = path / "reasonloop.json"
        stats = json.loads(meta.read_text()).get("stats") if meta.exists() else None
        if stats is None:                 # not fitted yet (or cut off before its stats)
            t0 = time.perf_counter()
            fit = _fit_prm if kind == "prm" else _fit_orm
            stats = fit(cfg, env, by_id, train, test, policy, path, run_id, iteration)
            if "skipped" in stats:        # nothing to learn from yet: keep the last fit
                print(f"fit-verifiers: {kind} not fitted at iteration {iteration}: "
                      f"{stats['skipped']}")
                out[kind] = stats
                continue
            stats["seconds"] = time.perf_counter() - t0
            meta.write_text(json.dumps({**json.loads(meta.read_text()), "stats": stats},
                                       indent=2))
        # both idempotent: a rerun after a crash registers/records what is missing
        stats["version"] = _register(it, kind, policy, path, stats)
        _record(it, kind, path, stats)
        out[kind] = stats
    release_memory()
    return out


def _labels(cfg, env, items, policy):
    """Step labels for (problem, text) items from `reward.prm_labels` → ([labels], tokens)."""
    if cfg.reward.prm_labels == "oracle":
        return [env.verify(p, t).step_rewards for p, t in items], 0
    engine = policy_engine(cfg, policy)
    labs = mc_labels(items, engine, mc_params(cfg), cfg.reward.mc_rollouts,
                     lambda p, t: env.verify(p, t).correct)
    return [lab.hard for lab in labs], sum(lab.tokens for lab in labs)


def _meta(cfg, kind, run_id, iteration, policy) -> dict:
    return {"kind": kind, "run_id": run_id, "iteration": iteration, "policy": str(policy),
            "labels": label_source(cfg, kind),
            "loss": cfg.reward.prm_loss if kind == "prm" else "pairwise",
            "config_hash": cfg.hash()}


def _fit_prm(cfg, env, by_id, train, test, policy, path, run_id, iteration) -> dict:
    rows = train.sample(n=min(train.height, cfg.reward.max_examples), seed=cfg.run.seed)
    items = [(by_id[p], t) for p, t in zip(rows["problem_id"], rows["text"])]
    if not items:
        return {"skipped": "no trajectories outside the held-out problems"}
    labels, mc_tokens = _labels(cfg, env, items, policy)
    handed = handover()               # the labelling engine's memory, to the trainer
    labelled = [(p, t, y) for (p, t), y in zip(items, labels)]
    r, meta = cfg.reward, _meta(cfg, "prm", run_id, iteration, policy)
    if r.prm_loss == "pairwise":
        pairs = prefix_pairs(labelled, r.pairs_per_problem, cfg.run.seed + iteration)
        if not pairs:
            return {"skipped": "no problem and depth with both a good and a bad step"}
        stats = train_pairwise(policy, pairs, {x["problem_id"]: by_id[x["problem_id"]].prompt
                                               for x in pairs}, path, steps=r.steps,
                               batch_size=max(1, r.batch_size // 2), lr=r.lr,
                               seed=cfg.run.seed + iteration, meta=meta, desc="PRM fit",
                               bf16=cfg.learn.bf16, max_new_tokens=cfg.policy.max_new_tokens)
    else:
        stats = train_prm(policy, labelled, path, steps=r.steps, batch_size=r.batch_size,
                          lr=r.lr, seed=cfg.run.seed + iteration, meta=meta,
                          bf16=cfg.learn.bf16, max_new_tokens=cfg.policy.max_new_tokens)
    stats.update(handed)
    held = [(by_id[p], t) for p, t in zip(test["problem_id"], test["text"])]
    scores = LearnedPRM(path).many(held)
    oracle = [env.verify(p, t).step_rewards for p, t in held]
    test_labels = oracle if r.prm_labels == "oracle" else _labels(cfg, env, held, policy)[0]
    flat = [(good_step(y), good_step(o), s) for ys, os, ss in zip(test_labels, oracle, scores)
            for y, o, s in zip(ys, os, ss)]
    return {**stats, "n_train": len(items), "n_heldout": len(held), "mc_tokens": mc_tokens,
            "auc": auc([y for y, _, _ in flat], [s for _, _, s in flat]),
            "auc_oracle": auc([o for _, o, _ in flat], [s for _, _, s in flat])
            if any(oracle) else None}


def _fit_orm(cfg, env, by_id, train, test, policy, path, run_id, iteration) -> dict:
    groups: dict[str, list[tuple[str, bool]]] = {}
    for p, t, c in train.iter_rows():
        groups.setdefault(p, []).append((t, c))
    pairs = orm_pairs(groups, cfg.reward.pairs_per_problem, cfg.run.seed + iteration)
    pairs = random.Random(cfg.run.seed).sample(pairs, min(len(pairs), cfg.reward.max_examples))
    if not pairs:
        return {"skipped": "no problem has both a correct and a wrong trajectory"}
    r = cfg.reward
    handed = handover()
    stats = train_pairwise(policy, pairs, {p["problem_id"]: by_id[p["problem_id"]].prompt
                                           for p in pairs}, path, steps=r.steps,
                           batch_size=max(1, r.batch_size // 2), lr=r.lr,
                           seed=cfg.run.seed + iteration,
                           meta=_meta(cfg, "orm", run_id, iteration, policy), bf16=cfg.learn.bf16,
                           max_new_tokens=cfg.policy.max_new_tokens)
    stats.update(handed)
    held = [(by_id[p], t) for p, t in zip(test["problem_id"], test["text"])]
    scores = LearnedORM(path).many(held)
    return {**stats, "n_train": len(pairs), "n_heldout": len(held),
            "auc": auc(test["correct"].to_list(), scores), "auc_oracle": None}


def _register(it: Iteration, kind: str, policy: str, path, stats: dict) -> str | None:
    """MLflow: `<name>-<kind>` version with lineage; champion if its AUC is no worse."""
    cfg = it.cfg
    open_registry(cfg)
    name = f"{cfg.run.name}-{kind}"
    champ = registry.version_by_alias(name, registry.CHAMPION)
    metrics = {k: v for k, v in stats.items()
               if isinstance(v, int | float) and v == v and k != "version"}
    tags = {**lineage(cfg, it.run_id, it.iteration), "kind": kind, "policy": str(policy),
            "policy_name": cfg.run.name, "labels": label_source(cfg, kind)}
    version = registry.log_iteration(name, it.paths.mlartifacts,
                                     f"{it.run_id}/{kind}-iter{it.iteration:02d}",
                                     {"reward": cfg.reward.model_dump_json()}, metrics,
                                     path, [], tags)
    best = float(champ.tags.get("auc", "-1")) if champ else -1.0
    if version is not None and stats["auc"] == stats["auc"] and stats["auc"] >= best:
        registry.promote(name, version)
    return version


def _record(it: Iteration, kind: str, path, stats: dict) -> None:
    db.record_reward_model(it.paths.db, {
        "run_id": it.run_id, "iteration": it.iteration, "kind": kind,
        "labels": label_source(it.cfg, kind), "path": str(path),
        **{k: stats.get(k) for k in ("version", "n_train", "n_heldout", "auc", "auc_oracle",
                                     "loss_last", "seconds")}})
