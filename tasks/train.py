"""Policy initialization (once) and Step 4 — learn (BC, DPO or GRPO with TRL; checkpointed)."""

import torch
from prefect import task

from reasonloop import compute, stages
from reasonloop.policy.init import init_policy
from tasks.common import CACHED, RETRIED, stage_key


@task(name="init-policy", cache_key_fn=stage_key("init"), **CACHED, **RETRIED)
def init(cfg, run_id: str) -> str:
    torch.set_num_threads(compute.resolve(cfg).train_threads)
    env = stages.env_and_problems(cfg)[0]
    out = stages.paths(cfg).init_policy(run_id)
    if (out / "reasonloop.json").exists():
        return str(out)
    return str(init_policy(cfg, env, out))


@task(name="train", cache_key_fn=stage_key("train"), **CACHED, **RETRIED)
def train(cfg, run_id: str, iteration: int, start_from: str, phase: str) -> dict:
    return stages.train(cfg, run_id, iteration, start_from, phase)
