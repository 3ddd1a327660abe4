"""Outcome reward (the ORM): the env's exact verifier. Parsed, never evaluated; text that
does not parse is simply a wrong answer (reward 0)."""

from __future__ import annotations

from reasonloop.envs.base import Env, Problem


def score(env: Env, problem: Problem, text: str) -> dict:
    """Verifier verdict as columns: outcome reward, oracle step rewards (PRM), answer."""
    v = env.verify(problem, text)
    return {"steps": v.steps, "step_rewards": v.step_rewards,
            "outcome_reward": 1.0 if v.correct else 0.0, "correct": v.correct,
            "answer": v.answer, "legal": v.legal}


def score_rows(env: Env, problems: dict[str, Problem], rows: list[dict]) -> list[dict]:
    return [{**r, **score(env, problems[r["problem_id"]], r["text"])} for r in rows]
