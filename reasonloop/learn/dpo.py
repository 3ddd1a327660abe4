"""DPO (TRL DPOTrainer) on preference pairs the filter stage built from D_search.

The reference model is the policy before the update (TRL copies it when `ref_model=None`);
its log-probs are computed once up front, which halves the per-step cost on CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset

from reasonloop.learn import common


def train_dpo(model, tokenizer, pairs: list[dict], out_dir: Path, *, dcfg, bf16: bool | str,
              seed: int, save_every: int, max_new_tokens: int | None = None,
              desc: str = "DPO", grad_ckpt: bool = False,
              micro_batch: int | None = None) -> dict:
    """Update `model` in place on (prompt, chosen, rejected) pairs; returns stats. Pairs are cut
    at the longest prompt + `max_new_tokens` (+ EOS) (`common.fit_length`)."""
    from trl import DPOConfig, DPOTrainer
    if not pairs:
        return {"steps": 0, "n_pairs": 0, "train_tokens": 0}

    prompt, chosen, rejected, longer = common.pair_lengths(
        tokenizer, *([p[k] for p in pairs] for k in ("prompt", "chosen", "rejected")))
    max_length, n_cut = common.fit_length(model, prompt, longer, max_new_tokens, desc)
    rng = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(pairs), generator=rng).tolist()
    ds = Dataset.from_list([{k: pairs[i][k] for k in ("prompt", "chosen", "rejected")}
                            for i in order])
    args = DPOConfig(**common.base_args(bf16, seed, dcfg.steps, grad_ckpt),
                     **common.checkpoint_args(out_dir, save_every),
                     **common.batching(dcfg.batch_size, micro_batch),
                     learning_rate=dcfg.lr,
                     lr_scheduler_type="cosine", warmup_steps=max(1, dcfg.steps // 20),
                     weight_decay=0.0, beta=dcfg.beta, **_loss(dcfg),
                     max_length=max_length, precompute_ref_log_probs=True)
    progress = common.Progress(dcfg.steps, desc)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=ds,
                         processing_class=tokenizer, callbacks=[progress])
    resumed = common.run(trainer, out_dir, progress)
    common.finish(model, bf16)
    first, last = progress.first_last("loss")
    acc = progress.first_last("rewards/accuracies")[1]
    per_pair = (sum(chosen) + sum(rejected)) / len(pairs)     # tokenized once, above
    return {"steps": dcfg.steps, "resumed_from": resumed, "loss_first": first, "loss_last": last,
            "reward_accuracy": acc, "n_pairs": len(pairs),
            "train_tokens": int(per_pair * dcfg.steps * dcfg.batch_size),
            "max_length": max_length, "cut_examples": n_cut}


def _loss(dcfg) -> dict:
    if not dcfg.sft_weight:
        return {"loss_type": [dcfg.loss_type]}
    return {"loss_type": [dcfg.loss_type, "sft"], "loss_weights": [1.0, dcfg.sft_weight]}
