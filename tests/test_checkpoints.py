"""A learner killed after a checkpoint resumes from it, and ends where an uninterrupted run
ends (same data order, RNG and optimizer state restored from the checkpoint)."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, _clean_env

SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from pathlib import Path
from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown
from reasonloop.learn.{module} import {fn}
from reasonloop.policy.init import load_policy
torch.set_num_threads(1)
model, tok = load_policy({model!r})
{call}
torch.save({{k: v for k, v in model.state_dict().items()}}, Path({out!r}) / "final.pt")
"""

CALLS = {
    "sft": ("train_sft", "ex = Countdown(EnvConfig()).warmup_examples(64, seed=1)\n"
            "train_sft(model, tok, ex, Path({out!r}), steps=8, batch_size=8, lr=1e-3, bf16=False,"
            " seed=0, save_every=3)"),
    "dpo": ("train_dpo", "from reasonloop.config import LearnConfig\n"
            "pairs = [{{'prompt': f'{{i}}>', 'chosen': f'{{i}}+1\\\\n', 'rejected': f'{{i}}*2\\\\n'}}"
            " for i in range(40)]\n"
            "train_dpo(model, tok, pairs, Path({out!r}), dcfg=LearnConfig(dpo={{'steps': 8,"
            " 'batch_size': 4, 'lr': 1e-3}}).dpo, bf16=False, seed=0, save_every=3)"),
}


def _run(module, model, out, crash=None):
    fn, call = CALLS[module]
    code = SCRIPT.format(root=str(ROOT), module=module, fn=fn, model=str(model), out=str(out),
                         call=call.format(out=str(out)))
    env = {**_clean_env(), **({"REASONLOOP_CRASH_AT": crash} if crash else {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.parametrize("module", ["sft", "dpo"])
def test_killed_learner_resumes_from_its_checkpoint(tiny_model_dir, tmp_path, module):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir()
    crashed.mkdir()
    assert _run(module, tiny_model_dir, straight).returncode == 0
    died = _run(module, tiny_model_dir, crashed, crash="train-step:3")
    assert died.returncode == 3, died.stderr[-2000:]
    assert not (crashed / "final.pt").exists()
    assert [p.name for p in (crashed / "_trainer").glob("checkpoint-*")] == ["checkpoint-3"]
    again = _run(module, tiny_model_dir, crashed)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stdout and "checkpoint-3" in again.stdout
    a = torch.load(straight / "final.pt")
    b = torch.load(crashed / "final.pt")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    from reasonloop.policy.init import load_policy
    init = load_policy(tiny_model_dir)[0].state_dict()
    assert any(not torch.allclose(init[k], a[k]) for k in a)      # it did learn something
