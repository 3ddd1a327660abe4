"""BC / SFT with TRL's SFTTrainer: the learning step of expert iteration (ReST-EM, STaR).

Completion-only loss: the policy learns the solution given the problem, never the problem.
CPU settings: use_cpu, no gradient checkpointing, from-scratch lr ~1e-3, bf16 autocast where
the hardware has it (~1.9× faster than fp32 there at equal loss; 10× slower where emulated).
"""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer
from trl.data_utils import common_prefix_length

from reasonloop.learn import common


def sft_args(out_dir: Path, steps: int, batch_size: int, lr: float, bf16: bool | str, seed: int,
             max_length: int, save_every: int | None = None, grad_ckpt: bool = False,
             micro_batch: int | None = None, torch_compile: bool = False, **extra) -> SFTConfig:
    saving = common.checkpoint_args(out_dir, save_every) if save_every else \
        {"output_dir": str(common.trainer_dir(out_dir)), "save_strategy": "no"}
    return SFTConfig(
        **common.base_args(bf16, seed, steps, grad_ckpt), **saving,
        **common.batching(batch_size, micro_batch), learning_rate=lr,
        lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.0,
        completion_only_loss=True, packing=False, max_length=max_length,
        torch_compile=torch_compile,
        train_sampling_strategy="sequential",              # the order comes from `batch_order`
        dataset_kwargs={"skip_prepare_dataset": True}, **extra)   # tokenized by `tokenize`


def tokenize(tokenizer, examples: list[dict]) -> dict[tuple[str, str], dict]:
    """Each distinct prompt/completion once, exactly as TRL's SFT preparation would (prompt +
    completion + EOS, loss only from where the tokenized prompt stops being a prefix); `cut`
    then applies the length. TRL tokenizes every row of the dataset, and `batch_order` repeats
    examples for `steps` batches: ~40 s per BC stage here for ~5k distinct examples; once per
    distinct example it is ~1 s."""
    keys = list(dict.fromkeys((e["prompt"], e["completion"]) for e in examples))
    eos = tokenizer.eos_token
    prompt_ids = tokenizer([p for p, _ in keys])["input_ids"]
    full_ids = tokenizer([p + c + ("" if c.endswith(eos) else eos) for p, c in keys])["input_ids"]
    out = {}
    for key, p, f in zip(keys, prompt_ids, full_ids, strict=True):
        n = common_prefix_length(p, f)
        out[key] = {"input_ids": f, "labels": [-100] * n + f[n:], "prompt_len": len(p)}
    return out


def cut(tokens: dict, max_length: int) -> dict:
    """TRL's truncation (keep the start) and its drop of rows left with nothing to learn."""
    out = {}
    for key, t in tokens.items():
        labels = t["labels"][:max_length]
        if any(x != -100 for x in labels):
            out[key] = {"input_ids": t["input_ids"][:max_length], "labels": labels}
    return out


BUCKET_CHARS = 64     # up to FINE_FROM characters; 16-char bins above
FINE_FROM, FINE_CHARS = 128, 16


def bucket(n_chars: int) -> int:
    """An example's length bin. Short ones (direct answers, ~30 chars) share wide bins: their
    padding costs little. Search traces (50-700 chars) get 16-char bins: with 64 a batch
    of DFS traces was 8% padding, with 16 3%, and an init step took 0.88 s, not 0.93 s."""
    if n_chars < FINE_FROM:
        return n_chars // BUCKET_CHARS
    return FINE_FROM // BUCKET_CHARS + (n_chars - FINE_FROM) // FINE_CHARS


def batch_order(examples: list[dict], batch_size: int, steps: int, seed: int) -> list[dict]:
    """Shuffled batches whose examples share a length bucket (prompt + completion, `bucket`),
    repeated with fresh shuffles for `steps` batches. Revision examples are ~3×
    longer than the rest; mixed in at random, every batch would pad to them (half the BC
    speed). Within a bucket the order stays random — unlike length-sorted batching, which
    correlates a batch's examples and hurt learning here."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < steps * batch_size:
        buckets: dict[int, list[dict]] = {}
        for e in rng.sample(examples, len(examples)):
            buckets.setdefault(bucket(len(e["prompt"]) + len(e["completion"])), []).append(e)
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
              save_every: int | None = None, max_new_tokens: int | None = None,
              grad_ckpt: bool = False, micro_batch: int | None = None,
              torch_compile: bool = False) -> dict:
    """Fine-tune `model` in place on prompt/completion pairs; returns loss stats. With
    `save_every`, checkpoints under `out_dir` and resumes from the last one. Examples are cut
    at the longest prompt + `max_new_tokens` (+ EOS), or not at all without a budget
    (`common.fit_length`); how many were cut is in the stats. `torch_compile`: compile the
    forward and backward (the trainer wraps the module; `model` itself is what trains)."""
    if not examples:
        return {"loss_first": None, "loss_last": None, "steps": 0, "train_tokens": 0}
    full = tokenize(tokenizer, examples)
    max_length, n_cut = common.fit_length(
        model, [t["prompt_len"] for t in full.values()],
        [len(t["input_ids"]) for t in full.values()], max_new_tokens, desc)
    args = sft_args(Path(out_dir), steps, batch_size, lr, bf16, seed, max_length, save_every,
                    grad_ckpt, micro_batch, torch_compile)
    if torch_compile:
        # a graph inductor fails to build (seen: a bf16 C++ kernel) runs eager instead of
        # ending a long init
        import torch._dynamo
        torch._dynamo.config.suppress_errors = True
    tokens = cut(full, max_length)
    rows = [tokens[k] for k in ((e["prompt"], e["completion"]) for e in
                                batch_order(examples, batch_size, steps, seed)) if k in tokens]
    ds = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                            "labels": [r["labels"] for r in rows]})
    progress = common.Progress(steps, desc)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                         callbacks=[progress])
    resumed = common.run(trainer, out_dir if save_every else None, progress)
    common.finish(model, bf16)
    first, last = progress.first_last("loss")
    per_example = sum(len(r["input_ids"]) for r in rows) / max(1, len(rows))
    return {"loss_first": first, "loss_last": last, "steps": steps, "resumed_from": resumed,
            "n_examples": len(examples), "train_tokens": int(per_example * steps * batch_size),
            "max_length": max_length, "cut_examples": n_cut}
