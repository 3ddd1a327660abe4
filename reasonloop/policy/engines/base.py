"""One interface for every generation engine: `sample(prompts, n, params)`.

Search methods only see this, so HF generate, vLLM and the lean sampler are interchangeable
(chosen by name from `ENGINES`, no plugin registry)."""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0      # 0 → greedy
    top_p: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    stop: tuple[str, ...] = ()    # strings that end a sample (kept in its text): a step
                                  # separator makes step-level search sample one step


@dataclass(frozen=True)
class Sample:
    text: str          # the completion, without the prompt and without EOS
    n_tokens: int      # generated tokens, EOS included: the compute this sample cost


_STOP_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stop_ids(tokenizer, params: SamplingParams) -> set[int]:
    """Token ids whose text contains a stop string, so an engine can stop on them at once
    (any tokenizer: "\n" is one char token here, "Ċ", ".Ċ", "ĊĊ"... in a byte-level BPE).
    A stop split over two tokens is not caught early; `to_sample` still cuts there."""
    if not params.stop:
        return set()
    cache = _STOP_IDS.setdefault(tokenizer, {})
    if params.stop not in cache:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        cache[params.stop] = {i for i, t in enumerate(texts) if any(s in t for s in params.stop)}
    return cache[params.stop]


def _first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    """End of the earliest stop string in `text` (None: no stop)."""
    ends = [i + len(s) for s in stop if (i := text.find(s)) >= 0]
    return min(ends) if ends else None


def end_ids(tokenizer, model=None) -> set[int]:
    """Every token that ends a completion: the tokenizer's EOS and the model's generation
    config's (a chat model has two: Qwen2.5-Instruct ends a turn with <|im_end|> and may write
    <|endoftext|>; stopping at the first only would run such a sample to the token limit)."""
    ids = {tokenizer.eos_token_id} - {None}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen) if isinstance(gen, list | tuple) else ({gen} - {None})
    return ids


def to_sample(tokenizer, ids: list[int], params: SamplingParams,
              ends: set[int] | None = None) -> Sample:
    """Generated ids → Sample: cut at an end token (`ends`, default the tokenizer's EOS;
    dropped) or just after the first stop string (kept); the tokens counted are those
    generated up to and including that point."""
    ends = ends or {tokenizer.eos_token_id}
    e = next((i for i, t in enumerate(ids) if t in ends), None)
    ids, used = (ids, len(ids)) if e is None else (ids[:e], e + 1)
    text, stop = tokenizer.decode(ids, skip_special_tokens=True), params.stop
    cut = _first_stop(text, stop)
    if cut is None:
        return Sample(text, used)
    stops = stop_ids(tokenizer, params)
    k = next((i for i, t in enumerate(ids) if t in stops), None)     # usual: one stop token
    if k is None or _first_stop(tokenizer.decode(ids[:k], skip_special_tokens=True), stop):
        k = next(i for i in range(len(ids))                           # split over tokens
                 if _first_stop(tokenizer.decode(ids[:i + 1], skip_special_tokens=True), stop))
    return Sample(text[:cut], k + 1)


class Engine(Protocol):
    def sample(self, prompts: list[str], n: int, params: SamplingParams,
               progress: bool = False) -> list[list[Sample]]:
        """n samples per prompt, in prompt order; deterministic for a given params.seed.
        `progress`: show a bar (the long training-time search calls)."""
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
