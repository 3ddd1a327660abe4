"""What every learner shares: a progress bar, CPU-friendly trainer settings, and checkpoints
under models/ so a crashed train stage resumes from its last checkpoint instead of step 0."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from reasonloop import compute, faults


class Progress(TrainerCallback):
    """A tqdm bar over optimizer steps, with the running loss (and reward, for GRPO)."""

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=desc, unit="step", leave=False)
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.logs.append({k: float(v) for k, v in logs.items()
                              if isinstance(v, int | float)})
            shown = {k: f"{logs[k]:.3f}" for k in ("loss", "reward") if k in logs}
            self.bar.set_postfix(**shown)

    def on_step_end(self, args, state, control, **kw):
        self.bar.update(1)

    def on_train_end(self, args, state, control, **kw):
        self.bar.close()

    def first_last(self, key: str = "loss") -> tuple[float | None, float | None]:
        vals = [x[key] for x in self.logs if key in x]
        return (vals[0], vals[-1]) if vals else (None, None)


class CrashAfterSave(TrainerCallback):
    """Fault injection for the resume tests: `REASONLOOP_CRASH_AT=train-step:N` SIGKILLs the
    process right after the checkpoint of step N is on disk."""

    def on_save(self, args, state, control, **kw):
        if faults.crash_step(state.global_step):
            faults.kill(f"train-step:{state.global_step}")


def trainer_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "_trainer"


def checkpoint_args(out_dir: Path, save_every: int) -> dict:
    """TrainingArguments fields for periodic checkpoints (only the last one is kept)."""
    return {"output_dir": str(trainer_dir(out_dir)), "save_strategy": "steps",
            "save_steps": save_every, "save_total_limit": 1, "save_only_model": False}


def last_checkpoint(out_dir: Path | None) -> str | None:
    if out_dir is None:
        return None
    d = trainer_dir(out_dir)
    return get_last_checkpoint(str(d)) if d.is_dir() else None


def start_step(ckpt: str | None) -> int:
    return int(ckpt.rsplit("-", 1)[1]) if ckpt else 0


def run(trainer, out_dir: Path | None, progress: Progress) -> int:
    """Train from the last checkpoint under `out_dir` if there is one (None: never resume);
    returns the step it resumed from."""
    ckpt = last_checkpoint(out_dir)
    if ckpt:
        print(f"resuming from {ckpt}")
        progress.bar.update(start_step(ckpt))
    logging.getLogger("transformers.trainer").setLevel(logging.WARNING)
    trainer.remove_callback(PrinterCallback)   # the bar shows the loss; no dict spam
    trainer.add_callback(CrashAfterSave())
    trainer.train(resume_from_checkpoint=ckpt)
    return start_step(ckpt)


def mean_tokens(tokenizer, texts, sample: int = 512) -> float:
    """Mean token count over the first `sample` of `texts` (any iterable): training-token
    estimates for the scaling report, without tokenizing a whole dataset twice."""
    counts = [len(tokenizer(t)["input_ids"]) for t in itertools.islice(texts, sample)]
    return sum(counts) / max(1, len(counts))


def fit_length(model, prompt_lens: list[int], full_lens: list[int],
               max_new_tokens: int | None, desc: str) -> tuple[int, int]:
    """(max_length, examples cut) for a learner: the longest prompt + the generation budget +
    EOS, so every completion the policy can write is learnt whole, its ending included (a fixed
    256 cut a real model's answers and end-of-turn token off); with no budget, the longest
    example. Never past the model's positions. Cut examples get a warning line."""
    want = max(prompt_lens, default=0) + max_new_tokens + 1 if max_new_tokens else \
        max(full_lens, default=1)
    positions = getattr(model.config, "max_position_embeddings", None)
    max_length = min(want, positions) if positions else want
    n_cut = sum(n > max_length for n in full_lens)
    if n_cut:
        logging.getLogger("reasonloop").warning(
            "%s: %d of %d examples are longer than max_length %d and are cut",
            desc, n_cut, len(full_lens), max_length)
    return max_length, n_cut


def finish(model, bf16: bool | str) -> None:
    """After training: eval mode, in the dtype the policy is saved and sampled in
    (`compute.save_dtype`: bf16 on a GPU that trained in bf16, fp32 on a CPU)."""
    model.to(compute.save_dtype(compute.bf16(bf16))).eval()


def pair_lengths(tokenizer, prompts: list[str], chosen: list[str], rejected: list[str]
                 ) -> tuple[list[int], list[int], list[int], list[int]]:
    """(prompt, prompt+chosen, prompt+rejected, longer side + EOS) token counts of preference
    pairs: a pair is cut when either side is."""
    def n(texts):
        return [len(x) for x in tokenizer(texts)["input_ids"]]
    c = n([p + x for p, x in zip(prompts, chosen)])
    r = n([p + x for p, x in zip(prompts, rejected)])
    return n(prompts), c, r, [max(a, b) + 1 for a, b in zip(c, r, strict=True)]


def cleanup(out_dir: Path) -> None:
    """Checkpoints are only for resuming; the saved policy replaces them."""
    shutil.rmtree(trainer_dir(out_dir), ignore_errors=True)


def base_args(bf16: bool | str, seed: int, steps: int, grad_ckpt: bool = False) -> dict:
    """TRL defaults are for GPUs: the settings every learner uses — CPU ones here, and the
    GPU where there is one (under `accelerate launch`, each rank's own). `bf16="auto"`: only
    where the hardware has it (reasonloop/compute.py). Gradient checkpointing only when asked
    (`learn.gradient_checkpointing`): it trades GPU memory for ~30% more time."""
    return {"use_cpu": not torch.cuda.is_available(), "bf16": compute.bf16(bf16),
            "gradient_checkpointing": grad_ckpt,
            "report_to": "none", "dataloader_num_workers": 0, "dataloader_pin_memory": False,
            "seed": seed, "data_seed": seed, "disable_tqdm": True, "max_steps": steps,
            "logging_steps": max(1, steps // 20)}


def world_size() -> int:
    """Processes training together (`accelerate launch` sets WORLD_SIZE; 1 in-process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_device(batch_size: int) -> int:
    """The config's batch size is global: each of the world's processes takes its share."""
    return max(1, batch_size // world_size())


def batching(batch_size: int, micro_batch: int | None = None) -> dict:
    """TrainingArguments for a global batch of `batch_size` examples per optimizer step, in
    forward/backward passes of at most `micro_batch` per process (None: one pass): the
    same steps, less activation memory (`learn.micro_batch`)."""
    share = per_device(batch_size)
    micro = min(micro_batch or share, share)
    return {"per_device_train_batch_size": micro,
            "gradient_accumulation_steps": max(1, share // micro)}
