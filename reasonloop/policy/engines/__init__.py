"""Generation engines behind one interface; picked by name (no plugin registry)."""

from __future__ import annotations

from pathlib import Path

from reasonloop.policy.engines.base import Engine, Sample, SamplingParams

ENGINE_NAMES = ("lean", "hf", "vllm")


def load_engine(name: str, model_path: str | Path, seed: int = 0) -> Engine:
    """`lean` falls back to `hf` for non-Llama models (it only runs Llama weights)."""
    if name == "vllm":
        from reasonloop.policy.engines.vllm import VLLMEngine
        return VLLMEngine(str(model_path), seed=seed)
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(model_path)
    if name == "lean" and model.config.model_type == "llama":
        from reasonloop.policy.engines.lean import LeanEngine
        return LeanEngine(model, tok)
    from reasonloop.policy.engines.hf import HFEngine
    return HFEngine(model, tok)


__all__ = ["ENGINE_NAMES", "Engine", "Sample", "SamplingParams", "load_engine"]
