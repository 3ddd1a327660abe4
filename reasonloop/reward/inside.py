"""Guidance from inside (the roadmap's policy-guided search): the policy's own confidence in
each step, as a PRM. Where no oracle exists and a learned PRM generalises poorly, this is
what a user has; mixed with an outside PRM it is the roadmap's combination of the two.

    SelfPRM(path)             a step's score = exp(mean token log-prob of the step under the
                              policy), the geometric-mean probability, in (0, 1]
    MixPRM(inside, outside, w)  w · inside + (1 − w) · outside, per step

The step's tokens include its separator (the decision that the step ends there).
"""

from __future__ import annotations

from pathlib import Path

import torch

from reasonloop.compute import scorer_placement
from reasonloop.envs.base import Problem, step_spans
from reasonloop.policy.init import load_policy
from reasonloop.reward.process import CachedPRM

BATCH = 64


class SelfPRM(CachedPRM):
    """`prm(problem, text) -> [confidence per step]`, batched by `many`, cached."""

    def __init__(self, model_path: str | Path):
        self.path = str(model_path)
        device, dtype = scorer_placement()          # the GPU in bf16 where there is one
        self.model, self.tok = load_policy(model_path, dtype=dtype)
        self.model.to(device)
        self.cache: dict[tuple[str, str], list[float]] = {}

    def _fill(self, todo: list[tuple[Problem, str]]) -> None:
        for i in range(0, len(todo), BATCH):
            self._score(todo[i:i + BATCH])

    @torch.inference_mode()
    def _score(self, chunk: list[tuple[Problem, str]]) -> None:
        enc = [self.tok(p.prompt + t, return_offsets_mapping=True) for p, t in chunk]
        width = max(len(e["input_ids"]) for e in enc)
        pad = self.tok.pad_token_id
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):                  # right-padded: positions from 0
            ids[r, :len(e["input_ids"])] = torch.tensor(e["input_ids"])
            mask[r, :len(e["input_ids"])] = 1
        dev = self.model.device
        logp = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)
                          ).logits.float().log_softmax(-1)
        token_logp = logp[:, :-1].gather(-1, ids[:, 1:, None].to(dev))[..., 0].cpu()
        for r, ((p, t), e) in enumerate(zip(chunk, enc)):
            self.cache[(p.problem_id, t)] = _step_scores(
                t, len(p.prompt), p.step_sep, e["offset_mapping"], token_logp[r])


def _step_scores(text: str, prompt_len: int, sep: str, offsets, token_logp) -> list[float]:
    """Per step: exp(mean log-prob) of the tokens that start inside the step or its
    separator (up to where the next step starts)."""
    spans = step_spans(text, sep)
    bounds = [(a, spans[k + 1][0] if k + 1 < len(spans) else len(text))
              for k, (a, _) in enumerate(spans)]
    out = []
    for a, b in bounds:
        lo, hi = prompt_len + a, prompt_len + b
        vals = [float(token_logp[j - 1]) for j, (s, e) in enumerate(offsets)
                if e > s and lo <= s < hi and j > 0]
        if not vals:             # truncated away, or a step no token starts in
            break
        out.append(float(torch.tensor(vals).mean().exp()))
    return out


class MixPRM:
    """Inside and outside guidance combined per step: w · inside + (1 − w) · outside."""

    def __init__(self, inside, outside, weight: float):
        self.inside, self.outside, self.weight = inside, outside, weight

    def __call__(self, problem: Problem, text: str) -> list[float]:
        return self.many([(problem, text)])[0]

    def many(self, items: list[tuple[Problem, str]]) -> list[list[float]]:
        inner = self.inside.many(items)
        many = getattr(self.outside, "many", None)
        outer = many(items) if many else [self.outside(p, t) for p, t in items]
        w = self.weight
        return [[w * a + (1 - w) * b for a, b in zip(i, o)] for i, o in zip(inner, outer)]
