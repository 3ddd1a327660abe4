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

SPLITS = ("train", "val", "test")


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
    error: str | None = None    # set by the flywheel when the env's verify raised on the text


class Env(Protocol):
    """The public contract of a task (an *env*); a plugin is any object with these.

    Required:
      name: str                 stored with every problem in DuckDB
      step_sep: str             what ends a step ("\n": a line; "\n\n": a paragraph)
      problems() -> list[Problem]
                                every problem, each with a split: train | val | test
                                (test: held out — the flywheel never trains on it);
                                ids unique and stable across runs (they key the store)
      verify(problem, completion) -> Verdict
                                the ORM: parse the text, never evaluate it. It may raise on
                                text it cannot handle: that trajectory counts as incorrect,
                                the error is kept in DuckDB and the run goes on

    Optional (the flywheel uses each where present):
      Verdict.step_rewards      oracle step labels (PRM targets, `reward.prm: oracle`);
                                [] where there is no oracle (use mc, learned or self PRMs)
      feedback(problem, completion) -> str | None
                                what is wrong, for revision search (`search.method: revise`)
      relabel(problem, completion, verdict, exclude) -> (Problem, str) | None
                                hindsight: a miss as a correct solution of another train
                                problem (`filter.hindsight`)
      correct(problem, completion) -> str | None
                                an oracle's repair of a wrong completion: BC on failed
                                problems (`filter.corrections`), Step-DPO pairs
                                (`learn.dpo.correction_pairs_per_problem`); kept only
                                where it verifies
      augment(prompt, completion, rng) -> (prompt, completion)
                                a variant of a BC example that is as true (`learn.augment`)
      warmup_examples(n, seed) -> [{"prompt", "completion"}]
                                policy-init data, for a policy built from scratch
      chars: str                characters a from-scratch (char-level) tokenizer must add
      problem_from(row: dict) -> Problem
                                a problem from a JSON object (`reasonloop verify --problem`)
      Options                   a pydantic model class: `env.options` is validated by it and
                                handed to the constructor (`Env(options)`; else `Env()`)
    """
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
        yield f"{p}:{n}", json_object(line, f"{p}:{n}")


def json_object(text: str, where: str) -> dict:
    """One JSON object a user wrote, or one line saying what is wrong with it and where."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object")
    return row
