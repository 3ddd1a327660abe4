"""Which verifiers a search consults: the PRM (`reward.prm`) and a learned ORM, if any.

    make_prm(cfg, kind, engine, orm)   oracle | mc | learned | self | mix

- oracle:  the env's exact step labels (Countdown: the target is still reachable);
- mc:      Monte-Carlo labels from rollouts of the policy (Math-Shepherd: a step is good if
           any rollout from it succeeds);
- learned: the PRM fitted on D_search (stages/fit_verifiers.py) at or before an iteration,
           `reward.prm_model`, or the registry's champion — falling back to its label source
           until one is fitted;
- self:    guidance from inside, the policy's own confidence in each step (reward/inside.py);
- mix:     `reward.self_weight` · self + the rest · `reward.mix_with` (an outside PRM).
"""

from __future__ import annotations

from functools import lru_cache

from reasonloop.config import Config
from reasonloop.policy.engines import SamplingParams
from reasonloop.reward.inside import MixPRM, SelfPRM
from reasonloop.reward.learned import LearnedORM, LearnedPRM
from reasonloop.reward.mc import MCPRM
from reasonloop.reward.process import oracle_prm
from reasonloop.store import registry
from reasonloop.workspace import env, open_registry, paths


def mc_params(cfg: Config) -> SamplingParams:
    """Sampling for Monte-Carlo label rollouts: the policy at T=1."""
    return SamplingParams(temperature=1.0, seed=cfg.run.seed,
                          max_new_tokens=cfg.policy.max_new_tokens)


def label_source(cfg: Config, kind: str) -> str:
    """What a learned verifier of `kind` is trained on (a tag, a column, its meta)."""
    return cfg.reward.prm_labels if kind == "prm" else "outcome"


def make_prm(cfg: Config, kind: str, engine=None, orm=None, run_id: str | None = None,
             iteration: int | None = None):
    """A PRM: `prm(problem, text) -> [score per step]` (batched as `.many` where it pays)."""
    if kind == "oracle":
        return oracle_prm(env(cfg))
    if kind == "mc":
        if engine is None:
            raise ValueError("Monte-Carlo PRM labels need the policy's engine for rollouts")
        return MCPRM(engine, mc_params(cfg), cfg.reward.mc_rollouts, orm)
    if kind == "learned":      # none fitted yet: its label source stands in
        return learned_verifier(cfg, "prm", run_id, iteration) or \
            make_prm(cfg, cfg.reward.prm_labels, engine, orm)
    if kind in ("self", "mix"):
        if getattr(engine, "model_path", None) is None:
            raise ValueError("a self PRM needs the policy's engine (its model directory)")
        inside = _inside(str(engine.model_path))
        if kind == "self":
            return inside
        outside = make_prm(cfg, cfg.reward.mix_with, engine, orm, run_id, iteration)
        return MixPRM(inside, outside, cfg.reward.self_weight)
    raise ValueError(f"unknown PRM {kind!r}: oracle, mc, learned, self or mix")


@lru_cache(maxsize=2)
def _inside(path: str) -> SelfPRM:
    return SelfPRM(path)


@lru_cache(maxsize=4)
def _load(kind: str, path: str):
    return (LearnedPRM if kind == "prm" else LearnedORM)(path)


def fitted_path(cfg: Config, kind: str, run_id: str | None, iteration: int | None):
    """The learned verifier to use: `reward.<kind>_model` if set, else the run's latest fit
    at or before `iteration`, else (outside a run) the registry's `<name>-<kind>@champion`."""
    ref = getattr(cfg.reward, f"{kind}_model")
    if ref is not None:
        return registry.resolve(ref)
    P = paths(cfg)
    if run_id is not None:
        fits = sorted(f.parent for f in P.models.glob(f"{run_id}/{kind}-iter*/reasonloop.json")
                      if iteration is None or int(f.parent.name.rsplit("iter", 1)[1]) <= iteration)
        return str(fits[-1]) if fits else None
    if not P.mlflow_db.exists() and registry.USER_TRACKING_URI is None:
        return None                   # no registry here (yet): nothing registered
    open_registry(cfg)
    if registry.version_by_alias(f"{cfg.run.name}-{kind}", registry.CHAMPION) is None:
        return None
    return registry.resolve(f"{cfg.run.name}-{kind}@{registry.CHAMPION}")


def learned_verifier(cfg: Config, kind: str, run_id: str | None = None,
                     iteration: int | None = None):
    """A loaded LearnedPRM / LearnedORM, or None when there is none to use."""
    path = fitted_path(cfg, kind, run_id, iteration)
    return _load(kind, str(path)) if path is not None else None
