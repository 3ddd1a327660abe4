"""Policy initialization (the paper's first pillar): build a tiny Llama from scratch and
behaviour-clone it on random *legal* plays (it knows the format and the arithmetic but not
how to win) or on search traces (it also knows how to try, check and backtrack). Real models
skip this: `policy.path` points at any local HF causal LM dir."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from reasonloop.errors import InputError
from reasonloop.learn.common import cleanup
from reasonloop.learn.sft import train_sft
from reasonloop.policy.tokenizer import CHARS, build_char_tokenizer


def build_tiny_llama(tokenizer, hidden: int, layers: int, heads: int, seed: int,
                     max_len: int = 128) -> LlamaForCausalLM:
    """Untied embeddings: vLLM's CPU weight sync only stays exact with them (learn/vllm_sync.py)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_len, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attention_bias=False, mlp_bias=False)
    cfg._attn_implementation = tiny_attn(max_len)
    return LlamaForCausalLM(cfg)


# For tiny CPU policies eager attention trained ~40% faster than SDPA (masking overhead
# dominates at 4 heads × 50 tokens); real models keep transformers' default.
TINY_ATTN = "eager"


def tiny_attn(context: int) -> str:
    """Eager attention for short sequences; SDPA once traces are long: at 64 × 450 tokens a
    BC step took 3.4 s eager against 2.1 s SDPA (its L×L score tensors are not kept)."""
    return TINY_ATTN if context <= 256 else "sdpa"


def load_policy(path: str | Path, dtype=torch.float32, attn_implementation: str | None = None):
    """Any local HF causal LM dir → (model, tokenizer). Clear error if it is not one."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()   # a bar per tiny checkpoint load is noise
    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError(f"not a model directory (no config.json): {p}")
    try:
        tok = AutoTokenizer.from_pretrained(p)
        kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(p, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model from {p}: {str(e).splitlines()[0]}") from None
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise InputError(f"tokenizer and model do not match in {p}: {len(tok)} tokens, but "
                         f"the embedding has {model.get_input_embeddings().num_embeddings} rows")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


def continued(path: str | Path, context: int):
    """A saved policy to BC further, in training mode, its positions stretched to `context`
    (rotary positions: longer sequences need no new weights, only training on them)."""
    model, tok = load_policy(path, attn_implementation=tiny_attn(context))
    if getattr(model.config, "max_position_embeddings", context) < context:
        model.config.max_position_embeddings = context
    return model.train(), tok


def save_policy(model, tokenizer, path: Path, meta: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if meta is not None:
        (path / "reasonloop.json").write_text(json.dumps(meta, indent=2, default=str))
    return path


def warmup(cfg, env, n: int, seed: int) -> list[dict]:
    """The env's policy-initialization examples of the configured kind."""
    if not callable(getattr(env, "warmup_examples", None)):
        raise InputError(f"env {env.name!r} has no warmup_examples(n, seed): set policy.path")
    if cfg.policy.init_data == "plays":
        return env.warmup_examples(n, seed=seed)
    kind = cfg.policy.init_data
    if kind not in getattr(env, "warmup_kinds", ()):
        raise InputError(f"env {env.name!r} has no {kind!r} warm-up data (policy.init_data)")
    if kind in ("traces", "goal_traces"):
        return env.warmup_examples(n, seed=seed, kind=kind, backtracks=cfg.policy.trace_backtracks)
    if kind == "dfs_traces" and cfg.policy.trace_retries:
        return env.warmup_examples(n, seed=seed, kind=kind, retries=cfg.policy.trace_retries)
    return env.warmup_examples(n, seed=seed, kind=kind)


def spelled(examples: list[dict], tok, env_name: str) -> None:
    """Every character of the warm-up data is in the char tokenizer (else it would learn
    `<unk>`): a plugin env lists what it adds in `chars`."""
    vocab = tok.get_vocab()
    for ex in examples[:1000]:
        if not isinstance(ex, dict) or not {"prompt", "completion"} <= set(ex):
            raise InputError(f"env {env_name!r}: warmup_examples must return dicts with "
                             f"'prompt' and 'completion' (got {ex!r:.80})")
        missing = sorted(set(ex["prompt"] + ex["completion"]) - set(vocab))
        if missing:
            raise InputError(f"env {env_name!r}: warm-up text uses {''.join(missing)!r}, not "
                             "in the char tokenizer: list them in the env's `chars`")


def init_policy(cfg, env, out_dir: Path) -> Path:
    """Build + BC warm-up, or hand back a given model dir untouched."""

    if cfg.policy.path is not None:
        load_policy(cfg.policy.path)  # validates early, with one clear line
        return Path(cfg.policy.path)
    if cfg.policy.init_from is not None:
        model, tok = continued(cfg.policy.init_from, cfg.policy.context)
    else:
        tok = build_char_tokenizer(CHARS + sorted(set(getattr(env, "chars", "")) - set(CHARS)))
        model = build_tiny_llama(tok, cfg.policy.hidden_size, cfg.policy.n_layers,
                                 cfg.policy.n_heads, cfg.run.seed, max_len=cfg.policy.context)
    examples = warmup(cfg, env, cfg.policy.init_examples, seed=cfg.run.seed + 17)
    spelled(examples, tok, env.name)
    train_sft(model, tok, examples, out_dir, steps=cfg.policy.init_steps,
              batch_size=cfg.policy.init_batch_size, lr=cfg.policy.init_lr,
              bf16=cfg.learn.bf16, seed=cfg.run.seed,
              save_every=cfg.learn.save_every,              # a killed init resumes
              torch_compile=cfg.learn.torch_compile,
              max_new_tokens=cfg.policy.max_new_tokens,
              desc=f"policy init (BC on {cfg.policy.init_data})")
    n_params = sum(p.numel() for p in model.parameters())
    save_policy(model, tok, out_dir, {"stage": "init", "params": n_params,
                                      "config": cfg.model_dump(mode="json"),
                                      "init_from": cfg.policy.init_from})
    cleanup(out_dir)
    return out_dir
