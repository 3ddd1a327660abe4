"""Learning beyond BC: DPO pairs, DPO and GRPO updates, the phase schedule."""

import os

import polars as pl
import pytest
import torch

from reasonloop import filter as filt
from reasonloop.config import EnvConfig, LearnConfig
from reasonloop.envs.countdown import Countdown
from reasonloop.learn.schedule import phase


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def _countdown_search():
    """A real Countdown train problem with correct, wrong-at-step-2 and wrong-at-step-1
    samples, verified by the env (the same columns verify writes to D_search)."""
    env = Countdown(EnvConfig(n_train=500))
    p = next(p for p in env.problems() if p.split == "train")
    a, b, c = p.meta["numbers"]
    t = p.meta["target"]
    from reasonloop.envs.countdown import solve
    good = "\n".join(solve((a, b, c), t)) + "\n"
    first = good.split("\n")[0] + "\n"
    mid = int(first.split("[")[1].split()[-1].rstrip("]")) if "[" in first else None
    rest = [int(x) for x in first.split("[")[1].rstrip("]\n").split()]
    x, y = rest
    wrong_step2 = first + f"{x}+{y}={x + y + 1} [{x + y + 1}]\n"    # bad arithmetic at step 2
    wrong_step1 = f"{a}+{b}={a + b + 1} [{c} {a + b + 1}]\n"         # bad at step 1
    texts = [good, wrong_step2, wrong_step1]
    rows = []
    for text in texts:
        v = env.verify(p, text)
        rows.append({"problem_id": p.problem_id, "text": text, "correct": v.correct,
                     "legal": v.legal, "step_rewards": v.step_rewards})
    assert mid is not None and [r["correct"] for r in rows] == [True, False, False]
    return env, p, pl.DataFrame(rows)


def test_dpo_pairs_well_formed():
    env, p, d = _countdown_search()
    pairs = filt.dpo_pairs(d, {p.problem_id: p.prompt}, 4, 0, step_pairs_per_problem=4)
    outcome = pairs.filter(pl.col("kind") == "outcome")
    step = pairs.filter(pl.col("kind") == "step")
    assert outcome.height == 2 and step.height == 1
    for r in outcome.iter_rows(named=True):          # same prompt; chosen right, rejected not
        assert r["prompt"] == p.prompt
        assert env.verify(p, r["chosen"]).correct and not env.verify(p, r["rejected"]).correct
    s = step.row(0, named=True)
    prefix = s["prompt"][len(p.prompt):]
    assert s["prompt"].startswith(p.prompt) and prefix.count("\n") == 1   # one shared step
    assert env.verify(p, prefix + s["chosen"]).correct
    wrong = env.verify(p, prefix + s["rejected"])
    assert not wrong.correct and wrong.step_rewards[0] > 0.5 and wrong.step_rewards[1] < 0.5
    assert s["chosen"].split("\n")[0] != s["rejected"].split("\n")[0]   # they part right there


def test_dpo_steps_change_params_and_lower_loss(tiny_model_dir, tmp_path):
    from reasonloop.learn.dpo import train_dpo
    from reasonloop.policy.init import load_policy
    torch.set_num_threads(1)
    model, tok = load_policy(tiny_model_dir)
    before = _params(model)
    pairs = [{"prompt": f"{i} {i + 1}>{2 * i + 1}\n", "chosen": f"{i}+{i + 1}={2 * i + 1}\n",
              "rejected": f"{i}*{i + 1}={i * (i + 1)}\n"} for i in range(1, 33)]
    cfg = LearnConfig(dpo={"steps": 12, "batch_size": 8, "lr": 3e-3, "beta": 0.5}).dpo
    stats = train_dpo(model, tok, pairs, tmp_path / "dpo", dcfg=cfg, bf16=False, seed=0,
                      save_every=100)
    assert not torch.equal(before, _params(model))
    assert stats["loss_last"] < stats["loss_first"]
    assert stats["reward_accuracy"] > 0.5 and stats["n_pairs"] == 32


def test_grpo_steps_raise_mean_reward_on_a_toy_reward(tiny_model_dir, tmp_path):
    """Toy reward: shaping with a length penalty only (outcome is ~0 for this tiny policy), so
    the reward rises only if GRPO learns to stop earlier; every sample is kept as a row."""
    from reasonloop.learn.grpo import sampled_rows, train_grpo
    from reasonloop.policy.init import load_policy
    torch.set_num_threads(1)
    model, tok = load_policy(tiny_model_dir)
    before = _params(model)
    env = Countdown(EnvConfig(n_train=500))
    problems = [p for p in env.problems() if p.split == "train"][:64]
    g = LearnConfig(grpo={"steps": 16, "prompts_per_step": 4, "num_generations": 8,
                          "lr": 1e-2}).grpo
    out = tmp_path / "grpo"
    stats = train_grpo(model, tok, env, problems, out, gcfg=g, steps=g.steps,
                       shaping={"length": -1.0}, max_new_tokens=40, bf16=False, seed=0,
                       save_every=100)
    assert stats["trainer"] == "GRPOTrainer"
    assert not torch.equal(before, _params(model))
    rows = sampled_rows(out / "_trainer" / "rows")
    assert rows.height == 16 * 4 * 8 and rows["sample_idx"].n_unique() == rows.height
    assert set(rows["method"]) == {"grpo"}
    per_step = rows.with_columns((pl.col("sample_idx") // 32).alias("step")).group_by(
        "step").agg(pl.col("n_tokens").mean()).sort("step")["n_tokens"].to_list()
    assert sum(per_step[-4:]) / 4 < sum(per_step[:4]) / 4      # shorter → higher reward
    assert stats["reward_last"] > stats["reward_first"]


def test_schedule_switches_at_plateau():
    L = LearnConfig(schedule=["bc", "dpo", "grpo"], plateau=0.02)
    h = [{"phase": "init", "val_pass@1": 0.0}]
    assert phase(L, h, 1) == "bc"
    h.append({"phase": "bc", "val_pass@1": 0.10})
    assert phase(L, h, 2) == "bc"                      # gained 10 points: keep going
    h.append({"phase": "bc", "val_pass@1": 0.11})
    assert phase(L, h, 3) == "dpo"                     # gained 1 < 2: plateau
    h.append({"phase": "dpo", "val_pass@1": 0.20})
    assert phase(L, h, 4) == "dpo"
    h.append({"phase": "dpo", "val_pass@1": 0.19})
    assert phase(L, h, 5) == "grpo"
    h.append({"phase": "grpo", "val_pass@1": 0.19})
    assert phase(L, h, 6) == "grpo"                    # the last phase stays
    assert phase(LearnConfig(schedule=["bc"]), h[:3], 3) == "bc"


def test_schedule_patience_outlasts_one_noisy_dip():
    L = LearnConfig(schedule=["bc", "dpo", "grpo"], plateau=0.01, patience=2)
    h = [{"phase": "init", "val_pass@1": 0.20}, {"phase": "bc", "val_pass@1": 0.26},
         {"phase": "bc", "val_pass@1": 0.25}]
    assert phase(L.model_copy(update={"patience": 1}), h, 3) == "dpo"   # one dip ends it
    assert phase(L, h, 3) == "bc"                      # patience 2: one dip does not
    h.append({"phase": "bc", "val_pass@1": 0.30})
    assert phase(L, h, 4) == "bc"                      # a new best inside the window
    h.append({"phase": "bc", "val_pass@1": 0.29})
    assert phase(L, h, 5) == "bc"                      # 0.30 is still 5 over 0.25
    h.append({"phase": "bc", "val_pass@1": 0.305})
    assert phase(L, h, 6) == "dpo"                     # 2 iterations, < 1 point over 0.30
    h.append({"phase": "dpo", "val_pass@1": 0.10})
    assert phase(L, h, 7) == "dpo"                     # a new phase gets `patience` tries
    h.append({"phase": "dpo", "val_pass@1": 0.12})
    assert phase(L, h, 8) == "grpo"


def test_schedule_max_iterations_and_fixed_phases():
    L = LearnConfig(schedule=["bc", "grpo"], max_iterations=2, plateau=-1.0)
    h = [{"phase": "init", "val_pass@1": 0.0}, {"phase": "bc", "val_pass@1": 0.1}]
    assert phase(L, h, 2) == "bc"
    h.append({"phase": "bc", "val_pass@1": 0.3})
    assert phase(L, h, 3) == "grpo"                    # two BC iterations: move on
    fixed = LearnConfig(phases=["bc", "grpo", "dpo"])
    assert [phase(fixed, [], i) for i in (1, 2, 3, 4)] == ["bc", "grpo", "dpo", "dpo"]
    with pytest.raises(ValueError):
        LearnConfig(schedule=["bc", "bc"])


@pytest.mark.usefixtures("all_cpus")
def test_grpo_with_colocated_vllm_on_cpu(vllm_model_dir, tmp_path):
    """The vLLM generation path of GRPO (the vllm extra; skipped where it is not installed)."""
    pytest.importorskip("vllm")
    from reasonloop.learn.grpo import train_grpo
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(vllm_model_dir)
    env = Countdown(EnvConfig(n_train=500))
    problems = [p for p in env.problems() if p.split == "train"][:8]
    g = LearnConfig(grpo={"steps": 2, "prompts_per_step": 2, "num_generations": 4}).grpo
    before = dict(os.environ)
    stats = train_grpo(model, tok, env, problems, tmp_path / "g", gcfg=g, steps=2, shaping={},
                       max_new_tokens=24, bf16=False, seed=0, save_every=100, use_vllm=True)
    assert stats["n_sampled"] == 2 * 2 * 4
    assert dict(os.environ) == before      # no RANK/MASTER_PORT left to start torch.distributed


def test_rloo_option_trains_and_keeps_its_samples(tiny_model_dir, tmp_path):
    from reasonloop.learn.grpo import sampled_rows, train_grpo
    from reasonloop.policy.init import load_policy
    torch.set_num_threads(1)
    model, tok = load_policy(tiny_model_dir)
    before = _params(model)
    env = Countdown(EnvConfig(n_train=500))
    problems = [p for p in env.problems() if p.split == "train"][:16]
    g = LearnConfig(grpo={"algorithm": "rloo", "steps": 3, "prompts_per_step": 2,
                          "num_generations": 4, "lr": 1e-2}).grpo
    stats = train_grpo(model, tok, env, problems, tmp_path / "r", gcfg=g, steps=3,
                       shaping={"length": -1.0}, max_new_tokens=24, bf16=False, seed=0,
                       save_every=100)
    assert stats["trainer"] == "RLOOTrainer"          # the object that ran, not the label
    assert not torch.equal(before, _params(model))
    rows = sampled_rows(tmp_path / "r" / "_trainer" / "rows")
    assert rows.height == 3 * 2 * 4 and set(rows["method"]) == {"rloo"}
