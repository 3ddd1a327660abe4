"""BC / SFT with TRL's SFTTrainer: the learning step of expert iteration (ReST-EM, STaR).

Completion-only loss: the policy learns the solution given the problem, never the problem.
CPU settings: use_cpu, no gradient checkpointing, from-scratch lr ~1e-3, bf16 autocast where
the hardware has it (~1.9× faster than fp32 there at equal loss; 10× slower where emulated).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from reasonloop.learn import common


def sft_args(out_dir: Path, steps: int, batch_size: int, lr: float, bf16: bool | str, seed: int,
             save_every: int | None = None, **extra) -> SFTConfig:
    saving = common.checkpoint_args(out_dir, save_every) if save_every else \
        {"output_dir": str(common.trainer_dir(out_dir)), "save_strategy": "no"}
    return SFTConfig(
        **common.base_args(bf16, seed, steps), **saving,
        per_device_train_batch_size=common.per_device(batch_size), learning_rate=lr,
        lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.0,
        completion_only_loss=True, packing=False, max_length=256,
        train_sampling_strategy="sequential", **extra)    # the order comes from `batch_order`


BUCKET_CHARS = 64


def batch_order(examples: list[dict], batch_size: int, steps: int, seed: int) -> list[dict]:
    """Shuffled batches whose examples share a length bucket (prompt + completion, in
    64-char bins), repeated with fresh shuffles for `steps` batches. Revision examples are ~3×
    longer than the rest; mixed in at random, every batch would pad to them (half the BC
    speed). Within a bucket the order stays random — unlike length-sorted batching, which
    correlates a batch's examples and hurt learning here."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < steps * batch_size:
        buckets: dict[int, list[dict]] = {}
        for e in rng.sample(examples, len(examples)):
            buckets.setdefault((len(e["prompt"]) + len(e["completion"])) // BUCKET_CHARS,
                               []).append(e)
        batches = []
        for b in buckets.values():
            for i in range(0, len(b), batch_size):
                batch = b[i:i + batch_size]       # a short last batch is topped up from its
                batch += rng.choices(b, k=batch_size - len(batch))   # bucket: batches align
                batches.append(batch)
        rng.shuffle(batches)
        out += [e for b in batches for e in b]
    return out


def train_sft(model, tokenizer, examples: list[dict], out_dir: Path, *, steps: int,
              batch_size: int, lr: float, bf16: bool | str, seed: int, desc: str = "BC",
              save_every: int | None = None) -> dict:
    """Fine-tune `model` in place on prompt/completion pairs; returns loss stats. With
    `save_every`, checkpoints under `out_dir` and resumes from the last one."""
    if not examples:
        return {"loss_first": None, "loss_last": None, "steps": 0, "train_tokens": 0}
    ds = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]}
                            for e in batch_order(examples, batch_size, steps, seed)])
    args = sft_args(Path(out_dir), steps, batch_size, lr, bf16, seed, save_every)
    progress = common.Progress(steps, desc)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                         callbacks=[progress])
    resumed = common.run(trainer, out_dir if save_every else None, progress)
    model.to(torch.float32).eval()
    first, last = progress.first_last("loss")
    per_example = common.mean_tokens(tokenizer, (e["prompt"] + e["completion"]
                                                 for e in examples))
    return {"loss_first": first, "loss_last": last, "steps": steps, "resumed_from": resumed,
            "n_examples": len(examples), "train_tokens": int(per_example * steps * batch_size)}
