"""HF `generate` as an engine: works for any causal LM, the reference the others match."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from reasonloop import stopping
from reasonloop.policy.engines.base import Sample, SamplingParams, end_ids, stop_ids, to_sample


class HFEngine:
    def __init__(self, model, tokenizer, batch_size: int = 256, device: str | None = None):
        """On the GPU when there is one (`device` None), else the CPU."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.tok, self.batch_size = model.to(device).eval(), tokenizer, batch_size
        self.tok.padding_side = "left"
        self.ends = end_ids(tokenizer, model)

    @torch.inference_mode()
    def sample(self, prompts: list[str], n: int, params: SamplingParams,
               progress: bool = False) -> list[list[Sample]]:
        torch.manual_seed(params.seed)
        greedy = params.temperature == 0
        per_batch = max(1, self.batch_size // n)
        out: list[list[Sample]] = []
        stops = stop_ids(self.tok, params)
        for i in tqdm(range(0, len(prompts), per_batch), desc="generate (hf)",
                      disable=not progress, leave=False):
            stopping.check()          # a stop signal ends a shard's thread between batches
            chunk = prompts[i:i + per_batch]
            enc = self.tok(chunk, return_tensors="pt", padding=True).to(self.model.device)
            kw = dict(do_sample=False) if greedy else dict(
                do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            gen = self.model.generate(
                **enc, max_new_tokens=params.max_new_tokens, num_return_sequences=n,
                pad_token_id=self.tok.pad_token_id, eos_token_id=[*self.ends, *stops], **kw)
            new = gen[:, enc["input_ids"].shape[1]:].tolist()
            out += [[to_sample(self.tok, ids, params, self.ends) for ids in new[j * n:(j + 1) * n]]
                    for j in range(len(chunk))]
        return out
