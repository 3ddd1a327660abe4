"""A lean KV-cached sampler for *tiny* Llama policies on CPU.

Why: for a ~1M-parameter model the per-step overhead of general engines (HF generate's
mask/cache machinery, vLLM's scheduler) dominates; a plain decoding loop over the same
weights runs several times faster. Prompts are bucketed by token length so no padding or
masks are needed. Exactness is a test: greedy output matches HF generate token for token.
Only LlamaForCausalLM is supported; anything else should use the hf or vllm engine.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from reasonloop import stopping
from reasonloop.policy.engines.base import Sample, SamplingParams, end_ids, stop_ids, to_sample


def _rms(x, w, eps):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def _rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LeanEngine:
    def __init__(self, model, tokenizer, batch_size: int = 1024, max_len: int | None = None,
                 dtype: torch.dtype = torch.float32, drop_finished: float | None = 0.25):
        """`drop_finished`: once this share of a batch has finished, those rows leave it
        (None: never — a batch then decodes to its longest sample)."""
        if model.config.model_type != "llama":
            raise ValueError("the lean engine only runs Llama models; use engine: hf")
        c = model.config
        self.tok, self.batch_size, self.drop_finished = tokenizer, batch_size, drop_finished
        self.ends = end_ids(tokenizer, model)
        self.n_heads, self.n_kv = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps = c.rms_norm_eps
        self.max_len = max_len or c.max_position_embeddings
        m = model.model
        # bf16 matmuls ran ~2.4× faster than fp32 on a CPU with AVX512_BF16, ~20× slower on
        # an AVX2-only one: load_engine picks by the machine (reasonloop/compute.py)
        self.dtype = dtype
        p = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
        self.embed = p["model.embed_tokens.weight"]
        self.norm = p["model.norm.weight"]
        self.head = p.get("lm_head.weight", self.embed)
        self.layers = []
        for i in range(c.num_hidden_layers):
            def g(n, i=i):
                return p[f"model.layers.{i}.{n}"]
            qkv = torch.cat([g("self_attn.q_proj.weight"), g("self_attn.k_proj.weight"),
                             g("self_attn.v_proj.weight")]).t().contiguous()
            gu = torch.cat([g("mlp.gate_proj.weight"), g("mlp.up_proj.weight")]).t().contiguous()
            self.layers.append((g("input_layernorm.weight"), qkv,
                                g("self_attn.o_proj.weight").t().contiguous(),
                                g("post_attention_layernorm.weight"), gu,
                                g("mlp.down_proj.weight").t().contiguous()))
        # RoPE tables from the model's own rotary module: same numbers as HF by construction.
        pos = torch.arange(self.max_len)[None]
        with torch.no_grad():
            cos, sin = m.rotary_emb(self.embed[None, :1], pos)
        self.cos, self.sin = cos[0].to(dtype), sin[0].to(dtype)   # [L, D]
        self.scale = self.head_dim ** -0.5

    def _forward(self, ids, start, cache):
        """ids [B, T] at positions start..start+T-1; cache: list of (k, v) [B, Hkv, L, D]."""
        B, T = ids.shape
        H, Hk, D = self.n_heads, self.n_kv, self.head_dim
        x = self.embed[ids]
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        for li, (ln1, qkv, o, ln2, gu, down) in enumerate(self.layers):
            h = _rms(x, ln1, self.eps) @ qkv
            q, k, v = h.split([H * D, Hk * D, Hk * D], dim=-1)
            q = q.view(B, T, H, D).transpose(1, 2)
            k = k.view(B, T, Hk, D).transpose(1, 2)
            v = v.view(B, T, Hk, D).transpose(1, 2)
            q, k = q * cos + _rot(q) * sin, k * cos + _rot(k) * sin
            kc, vc = cache[li]
            kc[:, :, start:start + T], vc[:, :, start:start + T] = k, v
            a = self._attend(q, kc, vc, start + T)
            x = x + a.transpose(1, 2).reshape(B, T, H * D) @ o
            g, u = (_rms(x, ln2, self.eps) @ gu).chunk(2, dim=-1)
            x = x + (F.silu(g) * u) @ down
        return (_rms(x[:, -1], self.norm, self.eps) @ self.head.t()).float()

    def _attend(self, q, k, v, length: int):
        if self.n_kv != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        if q.shape[2] > 1:    # prefill: causal over the prompt
            return F.scaled_dot_product_attention(q, k[:, :, :length], v[:, :, :length],
                                                  is_causal=True)
        # Decode, one query: attend over the whole (contiguous, zero-initialised) cache and
        # mask the future — slicing the cache would copy it every step; this beat the CPU
        # flash kernel ~10× at these shapes.
        s = (q @ k.transpose(-1, -2)).float() * self.scale
        s[..., length:] = float("-inf")
        return torch.softmax(s, dim=-1).to(v.dtype) @ v

    @torch.inference_mode()
    def _batch(self, ids: torch.Tensor, params: SamplingParams, gen: torch.Generator):
        B, T = ids.shape
        steps = min(params.max_new_tokens, self.max_len - T)
        shape = (B, self.n_kv, T + steps, self.head_dim)
        cache = [(torch.zeros(shape, dtype=self.dtype), torch.zeros(shape, dtype=self.dtype))
                 for _ in self.layers]
        eos = self.tok.eos_token_id
        stops = torch.tensor([*self.ends, *stop_ids(self.tok, params)])
        out = torch.full((B, steps), eos, dtype=torch.long)
        rows = torch.arange(B)            # the rows of `out` still in the batch
        done = torch.zeros(B, dtype=torch.bool)
        logits = self._forward(ids, 0, cache)
        for t in range(steps):
            stopping.check()          # a stop signal ends a shard's thread within a step
            nxt = _pick(logits, params, gen)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            out[rows, t] = nxt
            done |= torch.isin(nxt, stops)
            if bool(done.all()) or t == steps - 1:
                break
            if self.drop_finished is not None and \
                    int(done.sum()) >= self.drop_finished * len(rows):
                # Enough of the batch has finished: drop those rows. A batch otherwise
                # decodes to its longest sample, ~40% of the steps wasted at Countdown's
                # lengths (most samples 27-32 tokens, a few run to the budget).
                keep = (~done).nonzero().squeeze(1)
                rows, nxt, done = rows[keep], nxt[keep], done[keep]
                cache = [(k[keep], v[keep]) for k, v in cache]
            logits = self._forward(nxt[:, None], T + t, cache)
        return out

    def sample(self, prompts: list[str], n: int, params: SamplingParams,
               progress: bool = False) -> list[list[Sample]]:
        gen = torch.Generator().manual_seed(params.seed)
        enc = self.tok(prompts)["input_ids"]
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, ids in enumerate(enc):
            buckets[len(ids)].append(i)
        results: list[list[Sample] | None] = [None] * len(prompts)
        per = max(1, self.batch_size // n)
        bar = tqdm(total=len(prompts), desc="generate (lean)", disable=not progress,
                   leave=False)
        for length in sorted(buckets):
            idx = buckets[length]
            for s in range(0, len(idx), per):
                chunk = idx[s:s + per]
                ids = torch.tensor([enc[i] for i in chunk]).repeat_interleave(n, dim=0)
                out = self._batch(ids, params, gen).tolist()
                for j, pi in enumerate(chunk):
                    results[pi] = [to_sample(self.tok, seq, params, self.ends)
                                   for seq in out[j * n:(j + 1) * n]]
                bar.update(len(chunk))
        bar.close()
        return results  # type: ignore[return-value]


def _pick(logits, params: SamplingParams, gen):
    if params.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < params.top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
