"""A ~10M-parameter Llama with a real byte-level BPE tokenizer, built here from text the
project generates (GSM8K-style word problems, `envs/word_problems.py`) — the stand-in for a
Hub model on a machine that cannot download one. It is a plain HF directory: everything that
loads `policy.path` (HF engine, vLLM, TRL, MLflow) treats it like Qwen.

`arch="qwen2"` builds the other shape real runs use, Qwen2.5-Instruct's: `Qwen2Config` (q/k/v
biases, grouped KV heads, tied embeddings), a ChatML chat template, no BOS, and two end
tokens (<|im_end|> ends a turn; the generation config also stops at <|endoftext|>) — every
branch a Qwen model takes runs in CI on this.

    python -m reasonloop.policy.bpe models/bpe-10m [--warmup-steps 200] [--arch qwen2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from reasonloop.envs.math import math_prompt
from reasonloop.envs.word_problems import generate
from reasonloop.learn.sft import train_sft
from reasonloop.policy.init import save_policy

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _bpe(texts: list[str], vocab_size: int, special: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=special[-1] if "<unk>" in special else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def build_bpe_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    from tokenizers import processors
    tok = _bpe(texts, vocab_size, SPECIAL)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", padding_side="left",
                                   clean_up_tokenization_spaces=False)


def build_chat_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Qwen2.5-Instruct's conventions: no BOS, EOS <|im_end|>, pad <|endoftext|>, ChatML."""
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(texts, vocab_size, QWEN_SPECIAL),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>"],
                                  padding_side="left", clean_up_tokenization_spaces=False)
    tok.chat_template = CHATML
    return tok


def build_model(tok, hidden: int = 320, layers: int = 8, heads: int = 4, seed: int = 0,
                max_len: int = 512) -> LlamaForCausalLM:
    """head_dim 80: vLLM's CPU attention takes 32, 64, 80, 96, 112, 128, ... only."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_len, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))


def build_qwen2(tok, hidden: int = 64, layers: int = 2, heads: int = 2, kv_heads: int = 1,
                seed: int = 0, max_len: int = 512, tied: bool = True) -> Qwen2ForCausalLM:
    """head_dim = hidden / heads must be one vLLM's CPU attention takes (32, 64, 80, ...).
    `tied=False` only for GRPO with colocated vLLM on CPU (learn/vllm_sync.py)."""
    torch.manual_seed(seed)
    end, pad = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_len, tie_word_embeddings=tied, bos_token_id=None,
        eos_token_id=end, pad_token_id=pad))
    model.generation_config = GenerationConfig(eos_token_id=[end, pad], pad_token_id=pad,
                                               bos_token_id=None)
    return model


def _as_loaded(tok, model, out: Path):
    """The tokenizer as every later load will see it. transformers 5 picks the tokenizer class
    from config.json's model_type, and Qwen2Tokenizer puts Qwen's own pre-tokenizer (digits
    one by one) over tokenizer.json's: warmed up on the built tokenizer, a model would write
    token sequences its loaded tokenizer never produces (BC on its own samples, re-tokenized,
    started at loss 5.5 instead of 0.3)."""
    from transformers import AutoTokenizer
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    tok.save_pretrained(out)
    loaded = AutoTokenizer.from_pretrained(out)
    loaded.padding_side = "left"
    return loaded


def build(out: Path, n_problems: int = 4000, warmup_steps: int = 200, batch_size: int = 16,
          seed: int = 0, arch: str = "llama", lr: float = 1e-3,
          problems_seed: int | None = None, **model_kw) -> Path:
    """Tokenizer + model, BC-warmed on worked solutions (format and arithmetic, not the
    sample file's problems: a different seed — unless `problems_seed` names theirs, for a
    test policy that must solve some), saved as an HF directory."""
    rows = generate(n_problems, seed=seed + 1000 if problems_seed is None else problems_seed)
    texts = [r["question"] + "\n" + r["solution"] for r in rows]
    tok = build_chat_tokenizer(texts) if arch == "qwen2" else build_bpe_tokenizer(texts)
    examples = [{"prompt": math_prompt(r["question"], tok), "completion": r["solution"]}
                for r in rows]
    model = (build_qwen2 if arch == "qwen2" else build_model)(tok, seed=seed, **model_kw)
    out = Path(out)
    tok = _as_loaded(tok, model, out)
    if warmup_steps:
        train_sft(model, tok, examples, out, steps=warmup_steps, batch_size=batch_size,
                  lr=lr, bf16=False, seed=seed, desc=f"BPE {arch} warm-up")
    n = sum(p.numel() for p in model.parameters())
    return save_policy(model, tok, out, {"stage": "bpe-init", "arch": arch, "params": n,
                                         "vocab": len(tok), "warmup_steps": warmup_steps})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--arch", choices=["llama", "qwen2"], default="llama")
    a = ap.parse_args()
    print(build(a.out, warmup_steps=a.warmup_steps, arch=a.arch))
