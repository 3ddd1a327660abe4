"""Generation engines behind one interface; picked by name (no plugin registry)."""

from __future__ import annotations

import threading
from pathlib import Path

from reasonloop.compute import sample_dtype
from reasonloop.policy.engines.base import Engine, Sample, SamplingParams
from reasonloop.policy.engines.hf import HFEngine
from reasonloop.policy.engines.lean import LeanEngine
from reasonloop.policy.init import load_policy

ENGINE_NAMES = ("lean", "hf", "vllm")


_VLLM: dict[tuple[str, int], Engine] = {}
_VLLM_LOCK = threading.Lock()      # generate shards run in threads: one start, not two


def load_engine(name: str, model_path: str | Path, seed: int = 0, dtype: str = "auto") -> Engine:
    """`lean` falls back to `hf` for non-Llama models (it only runs Llama weights); `dtype`
    (auto | bf16 | fp32) is the lean sampler's. A vLLM engine is kept for the next call with
    the same model (one at a time: a vLLM start costs tens of seconds, and an iteration's
    evaluation and the next one's search share it)."""
    if name == "vllm":
        from reasonloop.policy.engines.vllm import VLLMEngine
        key = (str(Path(model_path).resolve()), seed)
        with _VLLM_LOCK:
            if key not in _VLLM:
                _close()
                _VLLM[key] = VLLMEngine(key[0], seed=seed)
                _VLLM[key].model_path = key[0]
            return _VLLM[key]
    model, tok = load_policy(model_path)
    if name == "lean" and model.config.model_type == "llama":
        engine = LeanEngine(model, tok, dtype=sample_dtype(dtype))
    else:
        engine = HFEngine(model, tok)
    engine.model_path = str(model_path)     # what a self PRM (reward/inside.py) scores with
    return engine


def close_engines() -> None:
    """Free a kept vLLM engine (its worker process, KV cache and ports): at the end of a run."""
    with _VLLM_LOCK:
        _close()


def _close() -> None:
    while _VLLM:
        _VLLM.popitem()[1].close()


__all__ = ["close_engines", "ENGINE_NAMES", "Engine", "Sample", "SamplingParams", "load_engine"]
