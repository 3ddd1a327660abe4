"""BC tokenizes each distinct example once itself (`learn/sft.tokenize`) instead of letting TRL
tokenize every repeated row: the rows it trains on must be the ones TRL's own SFT preparation
makes — same ids, same loss mask, same cut — for the char tokenizer and a real BPE one."""

from __future__ import annotations

import pytest
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from reasonloop.learn.sft import cut, tokenize, train_sft
from reasonloop.policy.bpe import build_bpe_tokenizer, build_model
from reasonloop.policy.init import build_tiny_llama
from reasonloop.policy.tokenizer import build_char_tokenizer

EXAMPLES = [
    {"prompt": "5 19 3>34\n", "completion": "5*19=95 [3 95]\n3*95=285 [285]\n"},
    {"prompt": "15 16 13>45\n", "completion": "15-13=2 [16 2]\n16+2=18 [18]\n"},
    {"prompt": "Q: Tom has 3 apples and buys 4.\nA:", "completion": " 3+4=7. The answer is 7"},
    {"prompt": "Q: 12 eggs, 5 eaten.\nA: ", "completion": "12-5=7\n#### 7"},
    {"prompt": "1 2 3>6\n", "completion": ""},                       # EOS is all it learns
    {"prompt": "a long prompt that fills the window " * 4, "completion": "cut away"},
]


def trl_rows(tok, model, max_length):
    args = SFTConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none",
                     completion_only_loss=True, max_length=max_length, packing=False)
    ds = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]}
                            for e in EXAMPLES])
    t = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    return [(r["input_ids"], r["labels"]) for r in t.train_dataset]


@pytest.mark.parametrize("kind", ["char", "bpe"])
@pytest.mark.parametrize("max_length", [24, 256])
def test_rows_match_trl_preparation(kind, max_length):
    if kind == "char":
        tok = build_char_tokenizer()
        model = build_tiny_llama(tok, 32, 1, 2, 0)
    else:
        tok = build_bpe_tokenizer([e["prompt"] + e["completion"] for e in EXAMPLES] * 20,
                                  vocab_size=300)
        model = build_model(tok, hidden=32, layers=1, heads=2)
    ours = cut(tokenize(tok, EXAMPLES + EXAMPLES[:2]), max_length)  # repeats: once
    assert len(ours) == len(trl_rows(tok, model, max_length)) <= len(EXAMPLES)
    mine = [(r["input_ids"], r["labels"]) for r in ours.values()]
    assert mine == trl_rows(tok, model, max_length)
    if max_length == 24:              # the long prompt fills the window: nothing to learn
        assert (EXAMPLES[-1]["prompt"], EXAMPLES[-1]["completion"]) not in ours
    assert all(r["input_ids"][-1] == tok.eos_token_id for r in ours.values()
               if len(r["input_ids"]) < max_length)


def test_bc_learns_long_completions_whole(tmp_path):
    """The length comes from the budget, not a fixed 256: a 300-token completion within a
    320-token budget keeps its end (answer and EOS); past the budget it is cut and counted."""
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 32, 1, 2, 0, max_len=512)
    long = {"prompt": "9 9>81\n", "completion": "9*9=81 [81]\n" * 25}      # 300 chars
    ex = EXAMPLES[:2] + [long]
    stats = train_sft(model, tok, ex, tmp_path, steps=1, batch_size=3, lr=1e-3, bf16=False,
                      seed=0, max_new_tokens=320)
    n_prompt = max(len(tok(e["prompt"])["input_ids"]) for e in ex)       # the longest
    assert stats["max_length"] == n_prompt + 320 + 1 and stats["cut_examples"] == 0
    row = cut(tokenize(tok, ex), stats["max_length"])[(long["prompt"], long["completion"])]
    assert row["input_ids"][-1] == tok.eos_token_id and len(row["input_ids"]) > 256
    stats = train_sft(model, tok, ex, tmp_path, steps=1, batch_size=3, lr=1e-3, bf16=False,
                      seed=0, max_new_tokens=100)
    assert stats["cut_examples"] == 1 and stats["max_length"] == n_prompt + 101
    # no budget: nothing is cut; never past the model's positions
    assert train_sft(model, tok, ex, tmp_path, steps=1, batch_size=3, lr=1e-3, bf16=False,
                     seed=0)["cut_examples"] == 0
    small = build_tiny_llama(tok, 32, 1, 2, 0, max_len=128)
    assert train_sft(small, tok, ex, tmp_path, steps=1, batch_size=3, lr=1e-3, bf16=False,
                     seed=0, max_new_tokens=320)["max_length"] == 128


def test_compiled_bc_trains_the_policy_itself_like_eager(tmp_path):
    """`learn.torch_compile`: the trainer compiles a wrapper of the module; the policy object that
    is saved afterwards must be the one that learned, with plain parameter names, and the
    compiled steps must compute what eager ones do (fp32: the same losses, same weights)."""
    import torch

    from reasonloop.policy.init import load_policy, save_policy
    tok = build_char_tokenizer()
    ex = EXAMPLES[:2] * 8
    runs = {}
    for compiled in (False, True):
        model = build_tiny_llama(tok, 32, 1, 2, 0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        stats = train_sft(model, tok, ex, tmp_path / str(compiled), steps=4, batch_size=4,
                          lr=1e-2, bf16=False, seed=0, torch_compile=compiled)
        after = model.state_dict()
        assert not any("_orig_mod" in k for k in after) and after.keys() == before.keys()
        assert any(not torch.equal(before[k], after[k]) for k in after)      # it learned
        saved, _ = load_policy(save_policy(model, tok, tmp_path / f"p{compiled}", {}))
        assert all(torch.equal(v, saved.state_dict()[k]) for k, v in after.items())
        runs[compiled] = (stats["loss_last"], after)
    (eager_loss, eager_w), (comp_loss, comp_w) = runs[False], runs[True]
    assert comp_loss == pytest.approx(eager_loss, rel=1e-3)
    assert all(torch.allclose(eager_w[k], comp_w[k], atol=1e-4) for k in eager_w)
