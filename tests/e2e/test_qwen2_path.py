"""The real path with a Qwen2-shaped model (tests/conftest.py `qwen2_model`): every branch a
Qwen2.5-Instruct model takes — chat prompts, no BOS, tied embeddings, two end tokens — through
the engines, the learners, math-verify and the registry, on CPU."""

import json
from pathlib import Path

import pytest

from reasonloop.config import EnvConfig, load_config
from reasonloop.policy.engines import SamplingParams, load_engine
from reasonloop.policy.engines.base import end_ids, to_sample
from tests.conftest import ROOT

SAMPLE = ROOT / "configs" / "problems" / "arith50.jsonl"


def test_the_model_has_qwen2s_shape(qwen2_model):
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(qwen2_model)
    cfg = model.config
    assert cfg.model_type == "qwen2" and cfg.tie_word_embeddings
    assert cfg.num_key_value_heads < cfg.num_attention_heads
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.o_proj.bias is None
    # tying is checked on the config only: in a CI worker that had run other test files,
    # even a freshly built Qwen2ForCausalLM came out untied (cause not found; DEVELOPERS.md)
    assert tok.bos_token is None and tok.eos_token == "<|im_end|>"
    assert end_ids(tok, model) == set(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))


def test_a_sample_ends_at_either_end_token(qwen2_model):
    """Qwen2.5-Instruct may end with <|endoftext|> though its tokenizer's EOS is <|im_end|>."""
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(qwen2_model)
    ids = tok("x = 4\n\n\\boxed{4}")["input_ids"]
    tail = tok(" garbage")["input_ids"]
    for end in ("<|im_end|>", "<|endoftext|>"):
        s = to_sample(tok, [*ids, tok.convert_tokens_to_ids(end), *tail], SamplingParams(),
                      end_ids(tok, model))
        assert s.text == "x = 4\n\n\\boxed{4}" and s.n_tokens == len(ids) + 1
    eng = load_engine("hf", qwen2_model)
    out = eng.sample(["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"], 8,
                     SamplingParams(temperature=1.0, max_new_tokens=40, seed=3))[0]
    assert all("<|im_end|>" not in s.text and "<|endoftext|>" not in s.text for s in out)


def test_math_verify_on_chat_formatted_problems(qwen2_model):
    from reasonloop.envs.math import MathEnv
    from reasonloop.policy.init import load_policy
    _, tok = load_policy(qwen2_model)
    env = MathEnv(EnvConfig(name="math", problems_file=SAMPLE), tok)
    p = env.problems()[0]
    assert p.prompt.startswith("<|im_start|>user\n") and p.prompt.endswith("assistant\n")
    gold = env.rows[0]["answer"].split("####")[-1].strip()
    assert env.verify(p, f"Adding up.\n\nSo the answer is \\boxed{{{gold}}}").correct
    assert not env.verify(p, f"\\boxed{{{int(gold) + 1}}}").correct


def test_dpo_on_the_chat_model_keeps_every_answer_whole(qwen2_model, tmp_path):
    """DPO on chat prompts: lengths from the budget, nothing cut, the policy moves."""
    import torch

    from reasonloop.config import LearnConfig
    from reasonloop.envs.math import MathEnv
    from reasonloop.learn.dpo import train_dpo
    from reasonloop.policy.init import load_policy
    torch.set_num_threads(1)
    model, tok = load_policy(qwen2_model)
    env = MathEnv(EnvConfig(name="math", problems_file=SAMPLE), tok)
    pairs = []
    for p, row in zip(env.problems()[:8], env.rows):
        gold = int(row["answer"].split("####")[-1].strip())
        pairs.append({"prompt": p.prompt, "chosen": f"It is {gold}.\n\n\\boxed{{{gold}}}",
                      "rejected": f"It is {gold + 1}.\n\n\\boxed{{{gold + 1}}}"})
    before = model.lm_head.weight.detach().clone()
    d = LearnConfig(dpo={"steps": 2, "batch_size": 4, "lr": 1e-3}).dpo
    stats = train_dpo(model, tok, pairs, tmp_path / "dpo", dcfg=d, bf16=False, seed=0,
                      save_every=100, max_new_tokens=64)
    assert stats["steps"] == 2 and stats["cut_examples"] == 0
    assert stats["max_length"] >= max(len(tok(p["prompt"])["input_ids"]) for p in pairs) + 64
    assert not torch.equal(before, model.lm_head.weight)


def _flywheel(qwen2_model, root: Path, engine: str, extra: list[str]):
    from flows.flywheel import flywheel
    cfg = load_config(ROOT / "configs" / "arith-bpe.yaml", [
        f"policy.engine={engine}", f"run.root={root}", f"policy.path={qwen2_model}",
        f"env.problems_file={SAMPLE}", "search.problems_per_iteration=8", "search.n=2",
        "learn.steps=3", "learn.batch_size=4", "policy.max_new_tokens=64", *extra])
    return cfg, flywheel(cfg, "qwen")


@pytest.mark.slow
def test_bc_then_grpo_through_the_flow_and_the_registry(qwen2_model, tmp_path):
    from reasonloop.policy.init import load_policy
    from reasonloop.store import db, registry
    # 4 samples of 8 problems: at the fixture's ~20% a sample, 16 samples came out all wrong
    # in one CI run (~3% of runs); 32 leave ~0.1%
    cfg, history = _flywheel(qwen2_model, tmp_path / "ws", "hf", [
        "run.iterations=2", "search.n=4", "learn.phases=[bc,grpo]", "learn.grpo.steps=1",
        "learn.grpo.prompts_per_step=2", "learn.grpo.num_generations=2",
        "learn.grpo.micro_batch=2"])
    assert [h.get("phase") for h in history[1:]] == ["bc", "grpo"]
    store = tmp_path / "ws" / "reasonloop.duckdb"
    rows = db.query(store, "SELECT method, text FROM trajectories")
    assert set(rows["method"]) >= {"best_of_n", "grpo"}
    assert not any("<|im_end|>" in t or "<|endoftext|>" in t for t in rows["text"])
    bc = db.query(store, "SELECT max_length, cut_examples, n_expert, train_tokens "
                         "FROM iterations WHERE iteration = 1")
    assert bc["n_expert"][0] > 0 and bc["train_tokens"][0] > 0      # BC learnt from D_expert
    first = json.loads((tmp_path / "ws" / "models" / "qwen" / "iter01" / "reasonloop.json")
                       .read_text())["train"]["loss_first"]
    assert first < 3.0, first     # its own samples, tokenized as it wrote them (1.6; 5.5 when
                                  # the built tokenizer and the loaded one split digits apart)
    assert bc["max_length"][0] > 64 + 20 and bc["cut_examples"][0] == 0   # chat prompt + 64
    registry.setup(tmp_path / "ws" / "mlflow.db", tmp_path / "ws" / "mlartifacts")
    got = registry.resolve(f"{cfg.run.name}/{history[2]['version']}")
    model, tok = load_policy(got)                 # the registered GRPO policy: still Qwen2
    assert model.config.model_type == "qwen2" and model.config.tie_word_embeddings
    assert tok.chat_template and end_ids(tok, model) == end_ids(*reversed(load_policy(
        qwen2_model)))


@pytest.mark.slow
def test_vllm_engine_samples_it_and_is_closed_before_training(qwen2_model, tmp_path,
                                                               monkeypatch):
    pytest.importorskip("vllm")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")     # GiB
    from reasonloop.store import db
    _, history = _flywheel(qwen2_model, tmp_path / "ws", "vllm", ["run.iterations=1"])
    assert [h["iteration"] for h in history] == [0, 1]
    train = json.loads((tmp_path / "ws" / "models" / "qwen" / "iter01" /
                        "reasonloop.json").read_text())["train"]
    assert train["engines_closed"] == 1           # search's engine, handed over to BC
    rows = db.query(tmp_path / "ws" / "reasonloop.duckdb",
                    "SELECT text FROM trajectories WHERE method = 'best_of_n'")
    assert rows.height == 8 * 2
    assert not any("<|im_end|>" in t or "<|endoftext|>" in t for t in rows["text"])
