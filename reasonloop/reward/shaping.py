"""Reward shaping for the RL phase: dense terms next to the verifier's outcome, each stored
as its own DuckDB column so a user can see by SQL where reward comes from — and catch a policy
that farms the shaping terms without solving (the `reward_hacking` view).

    shaped = outcome + w_format·format + w_valid·valid_steps + w_length·length

- format: 1 if the completion ends in a parseable final answer (the env's verdict), else 0;
- valid_steps: share of steps the PRM labels good (partial credit; 0 with no step labels);
- length: generated tokens / max_new_tokens (a penalty with a negative weight).
"""

from __future__ import annotations

TERMS = ("format", "valid_steps", "length")


def terms(verdict: dict, n_tokens: int, max_new_tokens: int) -> dict[str, float]:
    steps = verdict["step_rewards"]
    return {"format": 1.0 if verdict["answer"] is not None else 0.0,
            "valid_steps": sum(r > 0 for r in steps) / len(steps) if steps else 0.0,
            "length": min(1.0, n_tokens / max(1, max_new_tokens))}


def shaped(outcome: float, t: dict[str, float], weights: dict[str, float]) -> float:
    return outcome + sum(weights.get(k, 0.0) * t[k] for k in TERMS)
