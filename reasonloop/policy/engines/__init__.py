"""Generation engines behind one interface; picked by name (no plugin registry)."""

from __future__ import annotations

import threading
from pathlib import Path

from reasonloop.compute import gpu_free_gib, release_memory, sample_dtype
from reasonloop.policy.engines.base import Engine, Sample, SamplingParams
from reasonloop.policy.engines.hf import HFEngine
from reasonloop.policy.engines.lean import LeanEngine
from reasonloop.policy.init import load_policy

ENGINE_NAMES = ("lean", "hf", "vllm")


_VLLM: dict[tuple[str, int], Engine] = {}
_VLLM_LOCK = threading.Lock()      # generate shards run in threads: one start, not two


def load_engine(name: str, model_path: str | Path, seed: int = 0, dtype: str = "auto",
                vllm_memory: float = 0.5, max_model_len: int | None = None,
                reproducible: bool = True) -> Engine:
    """`lean` falls back to `hf` for non-Llama models (it only runs Llama weights); `dtype`
    (auto | bf16 | fp32) is the lean sampler's. A vLLM engine (`vllm_memory`: its share of the
    GPU) is kept for the next call with the same model — a start costs tens of seconds, and
    an iteration's evaluation and the next one's search share it — until a training or
    fitting stage needs the memory (`close_engines`)."""
    if name == "vllm":
        from reasonloop.policy.engines.vllm import VLLMEngine
        key = (str(Path(model_path).resolve()), seed)
        with _VLLM_LOCK:
            if key not in _VLLM:
                _close()
                _VLLM[key] = VLLMEngine(key[0], seed=seed, gpu_memory_utilization=vllm_memory,
                                        max_model_len=max_model_len, reproducible=reproducible)
                _VLLM[key].model_path = key[0]
            return _VLLM[key]
    model, tok = load_policy(model_path)
    if name == "lean" and model.config.model_type == "llama":
        engine = LeanEngine(model, tok, dtype=sample_dtype(dtype))
    else:
        engine = HFEngine(model, tok)
    engine.model_path = str(model_path)     # what a self PRM (reward/inside.py) scores with
    return engine


def policy_engine(cfg, model_path: str | Path) -> Engine:
    """The engine a stage samples `model_path` with, as the config sets it up."""
    p = cfg.policy
    return load_engine(p.engine, model_path, seed=cfg.run.seed, dtype=p.dtype,
                       vllm_memory=p.vllm_memory, max_model_len=p.vllm_max_model_len,
                       reproducible=p.vllm_reproducible)


def kept_engines() -> int:
    """How many vLLM engines are kept now (0 or 1)."""
    return len(_VLLM)


def close_engines() -> None:
    """Free a kept vLLM engine (its worker process, KV cache and ports): before a stage that
    trains or fits on the same device, and at the end of a run."""
    with _VLLM_LOCK:
        _close()


def handover() -> dict:
    """Before a stage trains or fits on the device the engines sample on: close the kept vLLM
    engine (its share of the GPU is what the trainer needs) and hand back what Python still
    holds. What it found goes into the stage's stats (the GPU check prints it)."""
    closed = kept_engines()
    close_engines()
    release_memory()
    return {"engines_closed": closed, "gpu_free_gib": gpu_free_gib()}


def _close() -> None:
    while _VLLM:
        _VLLM.popitem()[1].close()


__all__ = ["close_engines", "ENGINE_NAMES", "Engine", "kept_engines", "Sample", "SamplingParams",
           "handover", "load_engine", "policy_engine"]
