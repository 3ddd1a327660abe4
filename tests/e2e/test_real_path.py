"""The real path on this machine: GSM8K/MATH-style JSONL checked by math-verify, a locally
built ~10M BPE Llama as `policy.path`, one flywheel iteration with the HF engine."""

import json
from pathlib import Path

import math_verify  # noqa: E402,F401  (a core dependency: a broken install fails here)
import pytest

from reasonloop.config import EnvConfig, load_config
from reasonloop.envs.base import Problem
from tests.conftest import ROOT

SAMPLE = ROOT / "configs" / "problems" / "arith50.jsonl"


def test_shipped_sample_is_reproducible_and_its_solutions_verify():
    from reasonloop.envs.math import MathEnv
    from reasonloop.envs.word_problems import generate
    rows = generate(50, seed=8)
    assert [json.loads(x) for x in SAMPLE.read_text().splitlines()] == \
        [{"question": r["question"], "answer": r["answer"]} for r in rows]
    env = MathEnv(EnvConfig(name="math", problems_file=SAMPLE))
    by_q = {p.prompt: p for p in env.problems()}
    for r in rows:
        p = next(p for q, p in by_q.items() if r["question"] in q)
        v = env.verify(p, r["solution"])
        assert v.correct and len(v.steps) == r["answer"].count("\n\n") + 2
        assert not env.verify(p, r["solution"].replace(f"{{{r['final']}}}",
                                                       f"{{{r['final'] + 1}}}")).correct


def test_field_names_gsm8k_and_math_answers(tmp_path):
    from reasonloop.envs.math import MathEnv
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps({"problem": "Half of one?", "solution": "It is \\boxed{\\frac{1}{2}}"})
                 + "\n" + json.dumps({"q": "Two and two?", "a": "2 + 2 = 4\n#### 4"}) + "\n")
    with pytest.raises(Exception, match=":2: missing 'question' or 'problem'"):
        MathEnv(EnvConfig(name="math", problems_file=f))
    f.write_text(json.dumps({"q": "Two and two?", "a": "2 + 2 = 4\n#### 4"}) + "\n")
    env = MathEnv(EnvConfig(name="math", problems_file=f, question_field="q", answer_field="a"))
    p = env.problems()[0]
    assert env.verify(p, "2 + 2 = 4\n\n\\boxed{4}").correct
    assert not env.verify(p, "\\boxed{5}").correct
    half = Problem("h", "test", "q", {"answer": "It is \\boxed{\\frac{1}{2}}"})
    assert env.verify(half, "so \\boxed{0.5}").correct


def test_chat_template_builds_the_prompt(tmp_path, bpe_model):
    from transformers import AutoTokenizer

    from reasonloop.envs.math import MathEnv
    tok = AutoTokenizer.from_pretrained(bpe_model)
    plain = MathEnv(EnvConfig(name="math", problems_file=SAMPLE), tok).problems()[0].prompt
    assert plain.startswith("Question: ")                 # no template: the plain prompt
    tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>"
                         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    chat = MathEnv(EnvConfig(name="math", problems_file=SAMPLE), tok).problems()[0].prompt
    assert chat.startswith("<|user|>") and chat.endswith("<|assistant|>")
    assert "\\boxed" in chat


def test_bpe_model_is_a_real_hf_model(bpe_model):
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(bpe_model)
    n = sum(p.numel() for p in model.parameters())
    assert 8e6 < n < 13e6
    assert json.loads((bpe_model / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    ids = tok("Ava has 12 apples.")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "Ava has 12 apples."
    assert len(ids) < len("Ava has 12 apples.")           # merges, not characters


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf"])     # vLLM through the flow: test_qwen2_path.py
def test_one_flywheel_iteration_on_math(bpe_model, tmp_path, engine, monkeypatch):
    from flows.flywheel import flywheel
    from reasonloop.policy.init import load_policy
    from reasonloop.store import db, registry
    if engine == "vllm":
        pytest.importorskip("vllm")
        monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")     # GiB
    cfg = load_config(ROOT / "configs" / "arith-bpe.yaml", [f"policy.engine={engine}",
        f"run.root={tmp_path / 'ws'}", f"policy.path={bpe_model}", f"env.problems_file={SAMPLE}",
        "run.iterations=1", "search.problems_per_iteration=12", "search.n=2", "learn.steps=4",
        "policy.max_new_tokens=64", "search.shards=2"])   # vLLM: 2 shards share the engine
    history = flywheel(cfg, "m")
    assert [h["iteration"] for h in history] == [0, 1]
    from reasonloop.envs.base import split_steps
    from reasonloop.envs.math import STEP_SEP
    rows = db.query(tmp_path / "ws" / "reasonloop.duckdb", "SELECT traj_id, text, steps, "
                    "step_rewards FROM trajectories WHERE method = 'best_of_n'")
    assert rows.height == rows["traj_id"].n_unique() == 12 * 2
    steps = rows["steps"].to_list()
    assert all(s == split_steps(t, STEP_SEP) for t, s in zip(rows["text"], steps))
    assert any(len(s) > 1 for s in steps)           # multi-paragraph answers, stored
    registry.setup(tmp_path / "ws" / "mlflow.db", tmp_path / "ws" / "mlartifacts")
    got = registry.resolve(f"{cfg.run.name}/{history[1]['version']}")
    model, tok = load_policy(got)                           # the registered copy loads
    assert len(tok) == len(load_policy(bpe_model)[1])
    trained = tmp_path / "ws" / "models" / "m" / "iter01"  # evaluated in `engine` from here
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (Path(got) / f).read_bytes() == (trained / f).read_bytes()   # unchanged


@pytest.mark.parametrize("recipe", ["gsm8k-qwen2.5-0.5b.yaml", "math-qwen2.5-1.5b.yaml",
                                    "arith-bpe.yaml"])
def test_recipes_validate(recipe):
    cfg = load_config(ROOT / "configs" / recipe)
    assert cfg.env.name == "math" and cfg.policy.path is not None
    text = (ROOT / "configs" / recipe).read_text()
    assert "GB" in text or "CPU" in text                 # the memory it needs, in a comment
