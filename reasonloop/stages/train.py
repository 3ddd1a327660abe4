"""Step 4 — learn: one train stage of the flywheel, whichever phase the schedule picked.

- bc:   SFTTrainer on D_expert (expert iteration / ReST-EM);
- dpo:  DPOTrainer on the filter stage's preference pairs (reference = the policy before);
- grpo: GRPOTrainer online on the train split; its samples become D_search rows (`grpo`).

Every learner checkpoints under the iteration's model dir every `learn.save_every` steps, so a
crashed stage resumes from its last checkpoint; the finished policy replaces the checkpoints.
With `learn.launcher: accelerate` the same function runs on every rank (stages/launch.py).

    python -m reasonloop.stages.train JOB.json     (what `accelerate launch` starts)
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import polars as pl

from reasonloop import faults
from reasonloop.compute import release_memory
from reasonloop.config import Config
from reasonloop.learn import common
from reasonloop.learn.dpo import train_dpo
from reasonloop.learn.grpo import sampled_rows, train_grpo
from reasonloop.learn.sft import train_sft
from reasonloop.policy.engines import handover
from reasonloop.policy.init import load_policy, save_policy, tiny_attn, warmup
from reasonloop.stages import launch
from reasonloop.store import data, db
from reasonloop.workspace import Iteration, env, set_threads, split


def training_examples(it: Iteration) -> list[dict]:
    """BC data. ReST-EM (`init_from: base`) retrains on every D_expert so far; `previous`
    continues on this iteration's plus the last `learn.replay_iterations` ones (iterations
    that ran another phase have no D_expert file and are skipped). `learn.replay_init` mixes
    policy-initialization data (plays or traces) back in; `learn.augment` adds K variants of
    each example (env.augment)."""
    cfg, P = it.cfg, it.paths
    first = 1 if cfg.learn.init_from == "base" else \
        max(1, it.iteration - cfg.learn.replay_iterations)
    files = [P.d_expert(it.run_id, i) for i in range(first, it.iteration + 1)]
    df = pl.concat([pl.read_parquet(f) for f in files if f.exists()])
    ex = df.select("prompt", "completion").to_dicts()
    if cfg.learn.augment:
        rng, augment = random.Random(cfg.run.seed * 7919 + it.iteration), env(cfg).augment
        variants = [augment(e["prompt"], e["completion"], rng)
                    for e in ex for _ in range(cfg.learn.augment)]
        ex += [{"prompt": p, "completion": c} for p, c in variants]
    n_replay = int(len(ex) * cfg.learn.replay_init)
    if n_replay:
        ex += warmup(cfg, env(cfg), n_replay, seed=cfg.run.seed * 7919 + it.iteration)
    return ex


def preference_pairs(it: Iteration) -> list[dict]:
    df = pl.read_parquet(it.d_pairs)
    if df.height > it.cfg.learn.dpo.max_pairs:
        df = df.sample(it.cfg.learn.dpo.max_pairs, seed=it.seed)
    return df.to_dicts()


def rl_problems(cfg: Config, iteration: int) -> list:
    """The train problems GRPO visits this iteration: a seeded shuffle, as many as it uses."""
    g = cfg.learn.grpo
    train = split(cfg, "train")
    random.Random(cfg.run.seed * 7919 + iteration).shuffle(train)
    return train[: g.steps * g.prompts_per_step]


def bc_steps(n_examples: int, learn) -> int:
    """`learn.steps`, or fewer where that would pass over the BC data more than
    `learn.max_epochs` times."""
    if learn.max_epochs is None:
        return learn.steps
    return max(1, min(learn.steps, math.ceil(learn.max_epochs * n_examples / learn.batch_size)))


def train(it: Iteration, start_from: str, phase: str) -> dict:
    """BC, DPO or GRPO from `start_from` → this iteration's policy; its stats (+ `seconds`)."""
    cfg, out = it.cfg, it.policy
    if (out / "reasonloop.json").exists():
        common.cleanup(out)      # a crash may have come between saving and this
        return json.loads((out / "reasonloop.json").read_text())["train"]
    t0 = time.perf_counter()
    handed = handover()
    if cfg.learn.launcher == "accelerate" and not launch.inside():
        stats = launch.launch(cfg, it.run_id, it.iteration, start_from, phase, out)
        return {**stats, **handed, "seconds": time.perf_counter() - t0}
    set_threads(cfg, "train")
    model, tok = load_policy(start_from, attn_implementation=tiny_attn(cfg.policy.context)
                             if cfg.policy.path is None else None)
    L, seed, desc = cfg.learn, it.seed, f"iter {it.iteration} {phase.upper()}"
    if phase == "bc":
        examples = training_examples(it)
        stats = train_sft(model, tok, examples, out,
                          steps=bc_steps(len(examples), L), batch_size=L.batch_size,
                          lr=L.lr, bf16=L.bf16,
                          seed=seed, desc=desc, save_every=L.save_every,
                          max_new_tokens=cfg.policy.max_new_tokens,
                          grad_ckpt=L.gradient_checkpointing, micro_batch=L.micro_batch,
                          torch_compile=L.torch_compile)
    elif phase == "dpo":
        stats = train_dpo(model, tok, preference_pairs(it), out,
                          dcfg=L.dpo, bf16=L.bf16, seed=seed, save_every=L.save_every,
                          max_new_tokens=cfg.policy.max_new_tokens, desc=desc,
                          grad_ckpt=L.gradient_checkpointing, micro_batch=L.micro_batch)
    elif phase == "grpo":
        stats = train_grpo(model, tok, env(cfg), rl_problems(cfg, it.iteration), out,
                           gcfg=L.grpo, steps=L.grpo.steps, shaping=cfg.reward.shaping,
                           max_new_tokens=cfg.policy.max_new_tokens, bf16=L.bf16, seed=seed,
                           save_every=L.save_every, use_vllm=cfg.policy.engine == "vllm",
                           desc=desc, grad_ckpt=L.gradient_checkpointing)
        if launch.is_main():
            stats.update(store_rl_samples(it))
    else:
        raise ValueError(f"unknown learning phase {phase!r}")
    if not launch.is_main():      # under accelerate: rank 0 saves and writes the stores
        return stats
    faults.point("train", it.iteration)          # trained and checkpointed, not yet saved
    stats.update(path=str(out), start_from=str(start_from), phase=phase, **handed,
                 world_size=common.world_size(), seconds=time.perf_counter() - t0)
    db.update_iteration(it.paths.db, it.run_id, it.iteration,
                        **{k: stats.get(k) for k in ("train_tokens", "max_length", "cut_examples")})
    save_policy(model, tok, out, {"stage": "train", "iteration": it.iteration, "train": stats,
                                  "run_id": it.run_id, "config_hash": cfg.hash()})
    common.cleanup(out)      # the saved policy replaces the checkpoints
    del model
    release_memory()         # optimizer states and the trainer's copies: the next engine's
    return stats


def store_rl_samples(it: Iteration) -> dict:
    """GRPO's completions → DuckDB trajectories (verified by its reward function like D_search;
    ids deterministic, so a resumed stage inserts nothing twice) and this iteration's D_search
    file, versioned."""
    P = it.paths
    rows = sampled_rows(common.trainer_dir(it.policy) / "rows")
    if rows.is_empty():
        return {"inserted": 0}
    df = db.trajectories_frame(it.run_id, it.iteration, rows.to_dicts())   # scored while sampling
    inserted = db.insert_trajectories(P.db, df)
    P.run_data(it.run_id, it.iteration).mkdir(parents=True, exist_ok=True)
    df.write_parquet(it.d_search)
    md5 = data.snapshot(P.root, P.data, push=it.cfg.run.dvc_push)
    db.update_iteration(P.db, it.run_id, it.iteration, data_md5=md5, n_search=df.height)
    return {"inserted": inserted, "data_md5": md5,
            "sample_acc": float(df["correct"].mean())}


def main(job: str) -> None:
    """One rank of an `accelerate launch`ed train stage (the job file launch.py wrote)."""
    d = json.loads(Path(job).read_text())
    train(Iteration(Config.model_validate(d["config"]), d["run_id"], d["iteration"]),
          d["start_from"], d["phase"])


if __name__ == "__main__":
    main(sys.argv[1])
