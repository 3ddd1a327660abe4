"""What a problem domain (an *env*) owns: its problems, its verifier (the ORM) and, where it
can, oracle step labels (PRM targets). Pure functions, testable with no model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Problem:
    problem_id: str
    split: str            # train | val | test
    prompt: str           # what the policy sees
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Verdict:
    """The verifier's reading of one completion."""
    correct: bool
    steps: list[str]
    step_rewards: list[float]   # oracle PRM labels, one per step (empty if no oracle)
    answer: str | None          # the final answer (for majority vote), None if unparseable
    legal: bool                 # every step well-formed and allowed


class Env(Protocol):
    name: str

    def problems(self) -> list[Problem]: ...

    def verify(self, problem: Problem, completion: str) -> Verdict: ...
