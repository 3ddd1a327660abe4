"""What a problem domain (an *env*) owns: its problems, its verifier (the ORM) and, where it
can, oracle step labels (PRM targets). Pure functions, testable with no model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reasonloop.errors import InputError


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


def split_steps(completion: str) -> list[str]:
    """A completion's steps: its non-blank lines (what verifiers label and PRMs score)."""
    return [ln for ln in completion.split("\n") if ln.strip()]


def step_prefixes(completion: str) -> list[str]:
    """Steps 1..k of a completion, each prefix ending in a newline (what a PRM scores)."""
    steps = split_steps(completion)
    return ["".join(s + "\n" for s in steps[:k]) for k in range(1, len(steps) + 1)]


def read_jsonl(path) -> Iterator[tuple[str, dict]]:
    """(where, object) per non-blank line of a user's JSONL file — `where` is `file:line` for
    error messages; a missing file or a line that is not a JSON object fails in one line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"problems file not found: {p}")
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{p}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{p}:{n}: expected a JSON object")
        yield f"{p}:{n}", row
