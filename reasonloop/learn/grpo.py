"""GRPO (TRL GRPOTrainer): online RL on the train split, reward = verifier outcome + shaping.

TRL 1.16 has no PPOTrainer; GRPO is its clipped-ratio PPO-family learner (group-normalised
advantages instead of a value network) and RLOO its leave-one-out sibling. Every completion
GRPO samples is kept as a D_search row (method `grpo`): the reward function scores it with
the same verifier as the verify stage and records it, verdict included; rows are flushed at each
checkpoint, so a resumed run neither loses nor repeats one.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
from datasets import Dataset
from transformers import TrainerCallback

from reasonloop.learn import common
from reasonloop.learn.vllm_sync import patch_cpu_sync
from reasonloop.policy.engines.base import own_environ
from reasonloop.policy.engines.vllm import close_llm
from reasonloop.reward.outcome import score_rows
from reasonloop.store.db import SHAPING_COLS


class VerifierReward:
    """The reward function TRL calls: verifier outcome + configured shaping terms."""

    __name__ = "verifier"

    def __init__(self, env, problems: dict, shaping: dict, max_new_tokens: int,
                 method: str = "grpo"):
        self.env, self.problems, self.shaping = env, problems, shaping
        self.max_new_tokens, self.method = max_new_tokens, method
        self.rows: list[dict] = []
        self.n_tokens = 0
        self.step_began: float | None = None   # set by _Flush: times each step's sampling
        self.gen_s = 0.0

    def __call__(self, prompts, completions, completion_ids, problem_id, trainer_state,
                 **_) -> list[float]:
        if self.step_began is not None:     # the trainer samples, then calls us at once
            self.gen_s += time.perf_counter() - self.step_began
            self.step_began = None
        base = trainer_state.global_step * len(completions)
        rows = [{"problem_id": pid, "method": self.method, "sample_idx": base + i,
                 "text": text, "n_tokens": len(ids)}
                for i, (pid, text, ids) in enumerate(zip(problem_id, completions,
                                                         completion_ids))]
        scored = score_rows(self.env, self.problems, rows, self.shaping, self.max_new_tokens)
        self.rows += scored
        self.n_tokens += sum(r["n_tokens"] for r in rows)
        return [s["shaped_reward"] for s in scored]


class _Flush(TrainerCallback):
    """Writes the rows sampled so far next to each checkpoint (atomically)."""

    def __init__(self, reward: VerifierReward, rows_dir: Path):
        self.reward, self.dir = reward, rows_dir

    def on_step_begin(self, args, state, control, **kw):
        self.reward.step_began = time.perf_counter()

    def on_save(self, args, state, control, **kw):
        flush(self.reward, self.dir, state.global_step)

    def on_train_end(self, args, state, control, **kw):
        flush(self.reward, self.dir, state.global_step)


# what a trajectory row needs (db.trajectories_frame): the verdict is stored as scored, so
# writing the samples to DuckDB does not verify them a second time
ROW_COLS = ("problem_id", "method", "sample_idx", "text", "n_tokens", "steps", "step_rewards",
            "outcome_reward", "correct", *SHAPING_COLS, "verify_error")


def flush(reward: VerifierReward, rows_dir: Path, step: int) -> None:
    if not reward.rows:
        return
    rows_dir.mkdir(parents=True, exist_ok=True)
    tmp = rows_dir / f".upto-{step:06d}.parquet"
    pl.DataFrame([{k: r.get(k) for k in ROW_COLS} for r in reward.rows],
                 schema_overrides={"steps": pl.List(pl.String),
                                   "step_rewards": pl.List(pl.Float64),
                                   "verify_error": pl.String}).write_parquet(tmp)
    tmp.rename(rows_dir / f"upto-{step:06d}.parquet")
    reward.rows = []


def sampled_rows(rows_dir: Path) -> pl.DataFrame:
    """Every completion sampled in this train stage, including before a crash."""
    files = sorted(Path(rows_dir).glob("upto-*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def train_grpo(model, tokenizer, env, problems: list, out_dir: Path, *, gcfg, steps: int,
               shaping: dict, max_new_tokens: int, bf16: bool | str, seed: int, save_every: int,
               use_vllm: bool = False, desc: str = "GRPO", grad_ckpt: bool = False) -> dict:
    """Online GRPO/RLOO on `problems`; `model` is updated in place. Returns stats; the
    sampled completions are under `out_dir/_trainer/rows` (see `sampled_rows`)."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
    by_id = {p.problem_id: p for p in problems}
    ds = Dataset.from_list([{"prompt": p.prompt, "problem_id": p.problem_id}
                            for p in problems])
    reward = VerifierReward(env, by_id, shaping, max_new_tokens,
                            "rloo" if gcfg.algorithm == "rloo" else "grpo")
    rows_dir = common.trainer_dir(out_dir) / "rows"
    Cfg, Trainer = (RLOOConfig, RLOOTrainer) if gcfg.algorithm == "rloo" else \
        (GRPOConfig, GRPOTrainer)
    extra = {"epsilon": gcfg.epsilon, "loss_type": gcfg.loss_type} \
        if gcfg.algorithm == "grpo" else {}
    total = gcfg.prompts_per_step * gcfg.num_generations   # sequences per optimizer step
    micro = gcfg.micro_batch or total
    args = Cfg(**common.base_args(bf16, seed, steps, grad_ckpt),
               **common.checkpoint_args(out_dir, save_every),
               per_device_train_batch_size=micro, gradient_accumulation_steps=total // micro,
               vllm_gpu_memory_utilization=gcfg.vllm_memory,
               vllm_enable_sleep_mode=gcfg.vllm_sleep,
               num_generations=gcfg.num_generations, beta=gcfg.beta, learning_rate=gcfg.lr,
               lr_scheduler_type="constant_with_warmup", warmup_steps=max(1, steps // 20),
               weight_decay=0.0, max_completion_length=max_new_tokens,
               temperature=gcfg.temperature, top_k=0, top_p=1.0, use_vllm=use_vllm,
               vllm_mode="colocate", shuffle_dataset=True, **extra)
    progress = common.Progress(steps, desc)
    t0 = time.perf_counter()
    with own_environ():          # TRL's colocated vLLM sets RANK/WORLD_SIZE/MASTER_PORT
        trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                          reward_funcs=[reward], callbacks=[progress, _Flush(reward, rows_dir)])
        if use_vllm:
            patch_cpu_sync(trainer)
        try:
            resumed = common.run(trainer, out_dir, progress)
        finally:         # TRL never closes its colocated engine: the next stage's could not start
            gen = getattr(trainer, "vllm_generation", None)
            if getattr(gen, "llm", None) is not None:
                close_llm(gen.llm)
                gen.llm = None
    wall = time.perf_counter() - t0
    common.finish(model, bf16)
    rows = sampled_rows(rows_dir)
    first, last = progress.first_last("reward")
    gen = int(rows["n_tokens"].sum()) if rows.height else 0
    return {"steps": steps, "trainer": type(trainer).__name__,   # the class that ran
            "resumed_from": resumed, "reward_first": first, "reward_last": last,
            "loss_last": progress.first_last("loss")[1], "n_sampled": rows.height,
            "gen_tokens": gen, "n_problems": len(problems),
            "seconds_per_step": wall / max(1, steps - resumed),
            "gen_tokens_per_s": reward.n_tokens / reward.gen_s if reward.gen_s else None,
            # under the loss: each sampled completion and its prompt
            "train_tokens": gen + int(rows.height * common.mean_tokens(tokenizer, ds["prompt"]))}
