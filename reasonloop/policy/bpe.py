"""A ~10M-parameter Llama with a real byte-level BPE tokenizer, built here from text the
project generates (GSM8K-style word problems, `envs/word_problems.py`) — the stand-in for a
Hub model on a machine that cannot download one. It is a plain HF directory: everything that
loads `policy.path` (HF engine, vLLM, TRL, MLflow) treats it like Qwen.

    python -m reasonloop.policy.bpe models/bpe-10m [--warmup-steps 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonloop.envs.math import PROMPT
from reasonloop.envs.word_problems import generate
from reasonloop.learn.sft import train_sft
from reasonloop.policy.init import save_policy

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]


def build_bpe_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", padding_side="left",
                                   clean_up_tokenization_spaces=False)


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


def build(out: Path, n_problems: int = 4000, warmup_steps: int = 200, batch_size: int = 16,
          seed: int = 0, **model_kw) -> Path:
    """Tokenizer + model, BC-warmed on worked solutions (format and arithmetic, not the
    sample file's problems: a different seed), saved as an HF directory."""
    rows = generate(n_problems, seed=seed + 1000)
    examples = [{"prompt": PROMPT.format(question=r["question"]), "completion": r["solution"]}
                for r in rows]
    tok = build_bpe_tokenizer([e["prompt"] + e["completion"] for e in examples])
    model = build_model(tok, seed=seed, **model_kw)
    out = Path(out)
    if warmup_steps:
        train_sft(model, tok, examples, out, steps=warmup_steps, batch_size=batch_size,
                  lr=1e-3, bf16=False, seed=seed, desc="BPE model warm-up")
    n = sum(p.numel() for p in model.parameters())
    return save_policy(model, tok, out, {"stage": "bpe-init", "params": n, "vocab": len(tok),
                                         "warmup_steps": warmup_steps})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--warmup-steps", type=int, default=200)
    a = ap.parse_args()
    print(build(a.out, warmup_steps=a.warmup_steps))
