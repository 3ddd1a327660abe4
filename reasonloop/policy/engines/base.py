"""One interface for every generation engine: `sample(prompts, n, params)`.

Search methods only see this, so HF generate, vLLM and the lean sampler are interchangeable
(chosen by name from `ENGINES`, no plugin registry)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0      # 0 → greedy
    top_p: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    stop: tuple[str, ...] = ()    # single-token strings that end a sample (kept in its text):
                                  # "\n" makes step-level search sample one step at a time


@dataclass(frozen=True)
class Sample:
    text: str          # the completion, without the prompt and without EOS
    n_tokens: int      # generated tokens, EOS included: the compute this sample cost


def stop_ids(tokenizer, params: SamplingParams) -> set[int]:
    return {tokenizer.convert_tokens_to_ids(t) for t in params.stop}


def to_sample(tokenizer, ids: list[int], stops: set[int]) -> Sample:
    """Generated ids → Sample: cut at the first EOS (dropped) or stop token (kept); the
    tokens counted are those generated up to and including it."""
    eos = tokenizer.eos_token_id
    k = next((i for i, t in enumerate(ids) if t == eos or t in stops), None)
    if k is None:
        return Sample(tokenizer.decode(ids, skip_special_tokens=True), len(ids))
    keep = k + 1 if ids[k] in stops else k
    return Sample(tokenizer.decode(ids[:keep], skip_special_tokens=True), k + 1)


class Engine(Protocol):
    def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        """n samples per prompt, in prompt order; deterministic for a given params.seed."""
        ...


@contextmanager
def own_environ():
    """vLLM (and TRL's colocated vLLM) write process-wide variables — RANK, WORLD_SIZE,
    MASTER_PORT, LD_PRELOAD... — that outlive them: a later trainer in the same process, or
    any child process, would then start torch.distributed (a TCP store on all interfaces).
    Everything they set is put back on exit."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
