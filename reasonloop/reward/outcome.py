"""Outcome reward (the ORM): the env's exact verifier. Parsed, never evaluated; text that
does not parse is simply a wrong answer (reward 0)."""

from __future__ import annotations

from reasonloop.envs.base import Env, Problem
from reasonloop.reward.shaping import shaped, terms


def score(env: Env, problem: Problem, text: str) -> dict:
    """Verifier verdict as columns: outcome reward, oracle step rewards (PRM), answer."""
    v = env.verify(problem, text)
    return {"steps": v.steps, "step_rewards": v.step_rewards,
            "outcome_reward": 1.0 if v.correct else 0.0, "correct": v.correct,
            "answer": v.answer, "legal": v.legal, "verify_error": v.error}


def score_rows(env: Env, problems: dict[str, Problem], rows: list[dict],
               shaping: dict[str, float] | None = None,
               max_new_tokens: int = 48) -> list[dict]:
    """Verdict columns, plus the shaping terms and the shaped reward when `shaping` (the
    term weights) is given — each term is stored on its own."""
    out = []
    for r in rows:
        s = {**r, **score(env, problems[r["problem_id"]], r["text"])}
        if shaping is not None:
            t = terms(s, r["n_tokens"], max_new_tokens)
            s.update({f"r_{k}": v for k, v in t.items()},
                     shaped_reward=shaped(s["outcome_reward"], t, shaping))
        out.append(s)
    return out
