"""What a problem domain (an *env*) owns: its problems, its verifier (the ORM) and, where it
can, oracle step labels (PRM targets). Pure functions, testable with no model."""

from __future__ import annotations

import json
import re
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
    step_sep: str = "\n"  # what ends a step: a line (Countdown), a blank line (math)


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
    step_sep: str         # what ends a step (its problems carry it too)

    def problems(self) -> list[Problem]: ...

    def verify(self, problem: Problem, completion: str) -> Verdict: ...


def _sep_pattern(sep: str) -> re.Pattern:
    """`sep` as a pattern; a blank-line separator also takes lines of spaces and any extra
    newlines (models are not tidy about it)."""
    if "\n" not in sep:
        return re.compile(re.escape(sep))
    parts = [r"\r?\n" if ch == "\n" else re.escape(ch) for ch in sep]   # CRLF is a newline too
    return re.compile(r"[ \t]*".join(parts) + (r"\s*" if sep.count("\n") > 1 else ""))


def step_spans(completion: str, sep: str = "\n") -> list[tuple[int, int]]:
    """(start, end) of each step in the text: the pieces between separators, without edge
    newlines, blank ones skipped."""
    spans, pos = [], 0
    for m in [*_sep_pattern(sep).finditer(completion), None]:
        end = m.start() if m else len(completion)
        piece = completion[pos:end]
        if piece.strip():
            a = pos + len(piece) - len(piece.lstrip("\r\n"))
            spans.append((a, a + len(piece.strip("\r\n"))))
        pos = m.end() if m else pos
    return spans


def split_steps(completion: str, sep: str = "\n") -> list[str]:
    """A completion's steps (what verifiers label and PRMs score): its non-blank lines for
    Countdown, its blank-line-separated paragraphs for math."""
    return [completion[a:b] for a, b in step_spans(completion, sep)]


def step_prefixes(completion: str, sep: str = "\n") -> list[str]:
    """Steps 1..k of a completion, each prefix ending in `sep` (what a PRM scores)."""
    steps = split_steps(completion, sep)
    return ["".join(s + sep for s in steps[:k]) for k in range(1, len(steps) + 1)]


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
