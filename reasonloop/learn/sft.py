"""BC / SFT with TRL's SFTTrainer: the learning step of expert iteration (ReST-EM, STaR).

Completion-only loss: the policy learns the solution given the problem, never the problem.
CPU settings from STACK_NOTES: use_cpu, no gradient checkpointing, from-scratch lr ~1e-3,
bf16 autocast (~1.9× faster than fp32 here at equal loss).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer


class _Progress(TrainerCallback):
    """A rich/tqdm-style bar over optimizer steps, with the running loss."""

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=desc, unit="step", leave=False)
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

    def on_step_end(self, args, state, control, **kw):
        self.bar.update(1)

    def on_train_end(self, args, state, control, **kw):
        self.bar.close()


def sft_args(out_dir: Path, steps: int, batch_size: int, lr: float, bf16: bool, seed: int,
             **extra) -> SFTConfig:
    return SFTConfig(
        output_dir=str(out_dir / "_trainer"), max_steps=steps,
        per_device_train_batch_size=batch_size, learning_rate=lr,
        lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.0,
        use_cpu=True, bf16=bf16, gradient_checkpointing=False, completion_only_loss=True,
        packing=False, report_to="none", dataloader_num_workers=0,
        dataloader_pin_memory=False, save_strategy="no", logging_steps=max(1, steps // 20),
        seed=seed, data_seed=seed, max_length=256, disable_tqdm=True,
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
              batch_size: int, lr: float, bf16: bool, seed: int, desc: str = "BC") -> dict:
    """Fine-tune `model` in place on prompt/completion pairs; returns loss stats."""
    if not examples:
        return {"loss_first": None, "loss_last": None, "steps": 0}
    ds = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]}
                            for e in batch_order(examples, batch_size, steps, seed)])
    args = sft_args(Path(out_dir), steps, batch_size, lr, bf16, seed)
    progress = _Progress(steps, desc)
    logging.getLogger("transformers.trainer").setLevel(logging.WARNING)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                         callbacks=[progress])
    trainer.remove_callback(PrinterCallback)   # our bar shows the loss; no dict spam
    trainer.train()
    model.to(torch.float32).eval()
    losses = progress.losses or [float("nan")]
    return {"loss_first": losses[0], "loss_last": losses[-1], "steps": steps,
            "n_examples": len(examples)}
