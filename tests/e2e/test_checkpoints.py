"""A learner killed after a checkpoint resumes from it, and ends where an uninterrupted run
ends (same data order, RNG and optimizer state restored from the checkpoint)."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, _clean_env

JOB = ROOT / "tests" / "e2e" / "learner_job.py"


def _run(module, model, out, crash=None):
    env = {**_clean_env(), **({"REASONLOOP_CRASH_AT": crash} if crash else {})}
    return subprocess.run([sys.executable, str(JOB), module, str(model), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("module", ["sft", "dpo"])
def test_killed_learner_resumes_from_its_checkpoint(tiny_model_dir, tmp_path, module):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir()
    crashed.mkdir()
    assert _run(module, tiny_model_dir, straight).returncode == 0
    died = _run(module, tiny_model_dir, crashed, crash="train-step:3")
    assert died.returncode == -9, died.stderr[-2000:]     # SIGKILL
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
