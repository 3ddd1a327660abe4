"""Step 4 — learn: one train stage of the flywheel, whichever phase the schedule picked.

- bc:   SFTTrainer on D_expert (expert iteration / ReST-EM);
- dpo:  DPOTrainer on the filter stage's preference pairs (reference = the policy before);
- grpo: GRPOTrainer online on the train split; its samples become D_search rows (`grpo`).

Every learner checkpoints under the iteration's model dir every `learn.save_every` steps, so a
crashed stage resumes from its last checkpoint; the finished policy replaces the checkpoints.
"""

from __future__ import annotations

import json
import random
import time

import polars as pl
import torch

from reasonloop import compute, faults
from reasonloop.config import Config
from reasonloop.learn import common, launch


def training_examples(cfg: Config, run_id: str, iteration: int) -> list[dict]:
    """BC data. ReST-EM (`init_from: base`) retrains on every D_expert so far; `previous`
    continues on this iteration's plus the last `learn.replay_iterations` ones (iterations
    that ran another phase have no D_expert file and are skipped). `learn.replay_init` mixes
    legal-format plays back in."""
    from reasonloop.stages import env_and_problems, paths
    P = paths(cfg)
    first = 1 if cfg.learn.init_from == "base" else max(1, iteration - cfg.learn.replay_iterations)
    files = [P.d_expert(run_id, i) for i in range(first, iteration + 1)]
    df = pl.concat([pl.read_parquet(f) for f in files if f.exists()])
    ex = df.select("prompt", "completion").to_dicts()
    n_replay = int(len(ex) * cfg.learn.replay_init)
    if n_replay:
        env = env_and_problems(cfg)[0]
        ex += env.warmup_examples(n_replay, seed=cfg.run.seed * 7919 + iteration)
    return ex


def preference_pairs(cfg: Config, run_id: str, iteration: int) -> list[dict]:
    from reasonloop.stages import paths
    df = pl.read_parquet(paths(cfg).d_pairs(run_id, iteration))
    if df.height > cfg.learn.dpo.max_pairs:
        df = df.sample(cfg.learn.dpo.max_pairs, seed=cfg.run.seed + iteration)
    return df.to_dicts()


def rl_problems(cfg: Config, iteration: int) -> list:
    """The train problems GRPO visits this iteration: a seeded shuffle, as many as it uses."""
    from reasonloop.stages import split
    g = cfg.learn.grpo
    train = split(cfg, "train")
    random.Random(cfg.run.seed * 7919 + iteration).shuffle(train)
    return train[: g.steps * g.prompts_per_step]


def train(cfg: Config, run_id: str, iteration: int, start_from: str, phase: str) -> dict:
    from reasonloop.learn.dpo import train_dpo
    from reasonloop.learn.grpo import train_grpo
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import TINY_ATTN, load_policy, save_policy
    from reasonloop.stages import COMPUTE_S, env_and_problems, paths
    out = paths(cfg).policy(run_id, iteration)
    if (out / "reasonloop.json").exists():
        return json.loads((out / "reasonloop.json").read_text())["train"]
    if cfg.learn.launcher == "accelerate" and not launch.inside():
        t0 = time.perf_counter()
        stats = launch.launch(cfg, run_id, iteration, start_from, phase, out)
        COMPUTE_S[("train", run_id, iteration)] = time.perf_counter() - t0
        return stats
    torch.set_num_threads(compute.resolve(cfg).train_threads)
    model, tok = load_policy(start_from, attn_implementation=TINY_ATTN
                             if cfg.policy.path is None else None)
    L, seed, desc = cfg.learn, cfg.run.seed + iteration, f"iter {iteration} {phase.upper()}"
    t0 = time.perf_counter()
    if phase == "bc":
        stats = train_sft(model, tok, training_examples(cfg, run_id, iteration), out,
                          steps=L.steps, batch_size=L.batch_size, lr=L.lr, bf16=L.bf16,
                          seed=seed, desc=desc, save_every=L.save_every)
    elif phase == "dpo":
        stats = train_dpo(model, tok, preference_pairs(cfg, run_id, iteration), out,
                          dcfg=L.dpo, bf16=L.bf16, seed=seed, save_every=L.save_every,
                          desc=desc)
    elif phase == "grpo":
        env = env_and_problems(cfg)[0]
        stats = train_grpo(model, tok, env, rl_problems(cfg, iteration), out, gcfg=L.grpo,
                           steps=L.grpo.steps, shaping=cfg.reward.shaping,
                           max_new_tokens=cfg.policy.max_new_tokens, bf16=L.bf16, seed=seed,
                           save_every=L.save_every, use_vllm=cfg.policy.engine == "vllm",
                           desc=desc)
        if launch.is_main():
            stats.update(store_rl_samples(cfg, run_id, iteration))
    else:
        raise ValueError(f"unknown learning phase {phase!r}")
    if not launch.is_main():      # under accelerate: rank 0 saves and writes the stores
        return stats
    faults.point("train", iteration)          # trained and checkpointed, not yet saved
    COMPUTE_S[("train", run_id, iteration)] = time.perf_counter() - t0
    stats.update(path=str(out), start_from=str(start_from), phase=phase,
                 world_size=common.world_size())
    from reasonloop.store import db
    db.update_iteration(paths(cfg).db, run_id, iteration, train_tokens=stats.get("train_tokens"))
    save_policy(model, tok, out, {"stage": "train", "iteration": iteration, "train": stats,
                                  "run_id": run_id, "config_hash": cfg.hash()})
    common.cleanup(out)      # the saved policy replaces the checkpoints
    return stats


def store_rl_samples(cfg: Config, run_id: str, iteration: int) -> dict:
    """GRPO's completions → DuckDB trajectories (verified by its reward function like D_search;
    ids deterministic, so a resumed stage inserts nothing twice) and this iteration's D_search
    file, versioned."""
    from reasonloop.learn.grpo import sampled_rows
    from reasonloop.stages import paths
    from reasonloop.store import data, db
    P = paths(cfg)
    rows = sampled_rows(common.trainer_dir(P.policy(run_id, iteration)) / "rows")
    if rows.is_empty():
        return {"inserted": 0}
    df = db.trajectories_frame(run_id, iteration, rows.to_dicts())   # scored while sampling
    inserted = db.insert_trajectories(P.db, df)
    P.run_data(run_id, iteration).mkdir(parents=True, exist_ok=True)
    df.write_parquet(P.d_search(run_id, iteration))
    md5 = data.snapshot(P.root, P.data, push=cfg.run.dvc_push)
    db.update_iteration(P.db, run_id, iteration, data_md5=md5, n_search=df.height)
    return {"inserted": inserted, "data_md5": md5,
            "sample_acc": float(df["correct"].mean())}
