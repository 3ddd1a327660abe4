"""A smoke setting in which the tiny policy solves problems from the first iteration, so the
end-to-end, crash-resume and gate tests run on real outcomes: non-empty D_expert, BC steps,
correct-vs-wrong pairs, promotion decisions on discordant problems.

Countdown with 2 numbers 1–9 (targets 1–20) and a fixture policy built once per test run
(shared by the xdist workers through a file lock): the smoke config's tiny Llama, BC'd for a
few hundred steps on legal plays *and* oracle solutions of the train split, so about a
quarter of its samples are correct — far from all, so search, filter and learning have work
to do. Tests add `solver_overrides` to the smoke config (`policy.path` points at it).

A second policy, `traces`, is BC'd on search traces instead (attempts, checks, dead ends and
backtracking written out; envs/countdown_trace.py): it searches in its own output, and some
of its searches succeed after a backtrack (`trace_solver_overrides`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV = ["env.n_numbers=2", "env.number_max=9", "env.target_min=1", "env.target_max=20"]
STEPS, LR, BATCH = 300, 1e-2, 32
TRACE_STEPS, TRACE_LR = 400, 3e-3   # measured: ~28% of samples correct, ~7% after a backtrack


def shared_dir() -> Path:
    """One directory per test run (all its processes carry the same session mark)."""
    mark = os.environ["REASONLOOP_TEST_SESSION"]
    return Path(tempfile.gettempdir()) / f"reasonloop-solver-{mark}"


TRACE_TOKENS = 96          # room for a few dead ends of a 2-number trace


def build(out: Path, kind: str = "plays") -> Path:
    import random

    import torch

    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown, solve
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    from tests.conftest import SMOKE
    torch.set_num_threads(1)
    cfg = load_config(SMOKE, ENV)
    env = Countdown(cfg.env)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, cfg.policy.hidden_size, cfg.policy.n_layers,
                             cfg.policy.n_heads, seed=0)
    solved = [{"prompt": p.prompt,
               "completion": "\n".join(solve(tuple(p.meta["numbers"]), p.meta["target"])) + "\n"}
              for p in env.problems() if p.split == "train"]
    examples = env.warmup_examples(500, seed=0) + solved * max(1, 500 // len(solved))
    steps, lr = STEPS, LR
    if kind == "traces":       # twice as wide: copying states and checks needs it
        model = build_tiny_llama(tok, 2 * cfg.policy.hidden_size, cfg.policy.n_layers,
                                 cfg.policy.n_heads, seed=0)
        examples = env.warmup_examples(2000, seed=0, kind="traces", backtracks=1)
        steps, lr = TRACE_STEPS, TRACE_LR
    random.Random(0).shuffle(examples)
    train_sft(model, tok, examples, out / "ckpt", steps=steps, batch_size=BATCH, lr=lr,
              bf16=False, seed=0, desc=f"solver fixture ({kind})")
    return save_policy(model, tok, out / "policy", {"stage": f"test-solver-{kind}"})


def policy_dir(kind: str = "plays") -> Path:
    """Build once per test run, whichever process asks first; the others wait and reuse."""
    from filelock import FileLock
    d = shared_dir() / kind
    d.mkdir(parents=True, exist_ok=True)
    with FileLock(str(d / "build.lock")):
        if not (d / "policy" / "reasonloop.json").exists():
            build(d, kind)
    return d / "policy"


def overrides(kind: str = "plays") -> list[str]:
    extra = [f"policy.max_new_tokens={TRACE_TOKENS}", "policy.init_data=traces"] \
        if kind == "traces" else []
    return [*ENV, *extra, f"policy.path={policy_dir(kind)}"]
