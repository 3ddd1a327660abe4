"""Multi-process training: the BC stage under `accelerate launch` with the shipped multi-GPU
config, here 2 CPU processes (gloo DDP). Data-parallel BC with the global batch split over
the ranks must land where one process with the whole batch lands."""

import polars as pl
import pytest
import torch

from reasonloop.config import load_config
from reasonloop.envs.countdown import Countdown
from reasonloop.policy.init import load_policy
from reasonloop.stages.start import start_run
from reasonloop.stages.train import train
from reasonloop.workspace import Iteration
from tests.conftest import SMOKE


def _stage(root, tiny_model_dir, launcher: str) -> tuple[dict, dict]:
    cfg = load_config(SMOKE, [f"run.root={root}", f"learn.launcher={launcher}",
                              "learn.num_processes=2", "learn.steps=6", "learn.batch_size=8",
                              "learn.bf16=false", "learn.threads=1", "run.dvc_push=false"])
    start_run(cfg, "r")
    it = Iteration(cfg, "r", 1)
    it.d_expert.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(Countdown(cfg.env).warmup_examples(48, seed=3)).write_parquet(it.d_expert)
    stats = train(it, str(tiny_model_dir), "bc")
    return stats, load_policy(stats["path"])[0].state_dict()


@pytest.mark.slow
def test_bc_under_accelerate_launch_matches_one_process(tmp_path, tiny_model_dir):
    launched, w2 = _stage(tmp_path / "ddp", tiny_model_dir, "accelerate")
    alone, w1 = _stage(tmp_path / "one", tiny_model_dir, "inprocess")
    assert launched["world_size"] == 2 and alone["world_size"] == 1
    assert launched["steps"] == alone["steps"] == 6
    start = load_policy(tiny_model_dir)[0].state_dict()
    moved = max((w2[k] - start[k]).abs().max().item() for k in start)
    apart = max((w2[k] - w1[k]).abs().max().item() for k in start)
    assert moved > 1e-3                                    # it trained ...
    assert apart < moved / 20, (apart, moved)              # ... as one process would have
    assert not list((tmp_path / "ddp").rglob("*.launch.json"))   # job file cleaned up
    assert torch.isfinite(torch.tensor(launched["loss_last"]))
