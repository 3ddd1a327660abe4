"""Policy initialization, once per run: a tiny Llama BC'd on legal plays (or a given model)."""

from __future__ import annotations

from reasonloop.config import Config
from reasonloop.policy.init import init_policy
from reasonloop.workspace import env, paths, set_threads


def init(cfg: Config, run_id: str) -> str:
    """The run's starting policy dir; built once (a rerun finds it saved)."""
    out = paths(cfg).init_policy(run_id)
    if (out / "reasonloop.json").exists():
        return str(out)
    set_threads(cfg, "train")
    return str(init_policy(cfg, env(cfg), out))
