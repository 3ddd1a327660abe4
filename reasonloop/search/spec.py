"""A run's `SearchSpec`: the verifiers a search consults and the `search.*` knobs."""

from __future__ import annotations

from reasonloop.config import Config
from reasonloop.reward.prm import learned_verifier, make_prm
from reasonloop.search.base import SearchSpec
from reasonloop.workspace import env


def search_spec(cfg: Config, engine=None, progress: bool = False, trace: list | None = None,
                run_id: str | None = None, iteration: int | None = None) -> SearchSpec:
    """The PRM from `reward.prm` (the env's oracle step labels, Monte-Carlo labels from
    rollouts of `engine`, or the learned PRM fitted at or before `iteration` of `run_id`),
    the ORM = the env's exact verifier, a learned ORM's score when one exists."""
    e, s = env(cfg), cfg.search

    def orm(p, text):
        return e.verify(p, text).correct
    return SearchSpec(prm=make_prm(cfg, cfg.reward.prm, engine, orm, run_id, iteration),
                      orm=orm, orm_score=learned_verifier(cfg, "orm", run_id, iteration),
                      feedback=getattr(e, "feedback", None), width=s.beam_width,
                      expand=s.mcts_expand, c_puct=s.mcts_c_puct, value=s.mcts_value,
                      token_budget=s.mcts_token_budget, rounds=s.revise_rounds,
                      progress=progress, trace=trace)
