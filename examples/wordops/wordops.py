"""WordOps: turn a word into a target word with three operations — the smallest complete
reasonloop task that is not arithmetic.

    prompt      "dcab>abdc\\n"             start word > target word
    completion  "rev=bacd\\nrot=acdb\\n"    one operation per line: op=the word it gives

    rev  reverses the word        (dcab → bacd)
    rot  moves the first letter to the end   (bacd → acdb)
    swp  swaps the first two letters         (acdb → cadb)

A completion is correct when every line applies its operation to the word before it, it
ends on the target, and it uses at most `max_steps` lines. The checker parses each line and
compares strings; nothing is evaluated. Step labels are exact (a step is good when it is
legal and brings the word closer to the target: a breadth-first search over the few
arrangements of one word), so the oracle PRM, beam search and MCTS work here as on Countdown.

Use it with `env.name: examples/wordops/wordops.py:WordOps` (see config.yaml here), or
`pip install -e examples/wordops` and `env.name: wordops` (an entry point).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import deque
from functools import lru_cache
from itertools import permutations

from pydantic import BaseModel, ConfigDict, Field

from reasonloop.envs.base import Problem, Verdict, split_steps

OPS = {
    "rev": lambda w: w[::-1],
    "rot": lambda w: w[1:] + w[:1],
    "swp": lambda w: w[1::-1] + w[2:],
}
UNDO = {"rev": OPS["rev"], "rot": lambda w: w[-1:] + w[:-1], "swp": OPS["swp"]}
STEP = re.compile(r"(?P<op>[a-z]{3})=(?P<word>[a-z]+)")


@lru_cache(maxsize=4096)
def distances(target: str) -> dict[str, int]:
    """Fewest operations from every arrangement of `target`'s letters to `target`."""
    dist, todo = {target: 0}, deque([target])
    while todo:
        w = todo.popleft()
        for undo in UNDO.values():
            if (v := undo(w)) not in dist:
                dist[v] = dist[w] + 1
                todo.append(v)
    return dist


class WordOps:
    """Problems: every start word of `length` distinct letters from the first `letters` of
    the alphabet, with every target 1..`max_depth` operations away. Test holds out whole
    start words (`test_fraction` of them); val is drawn from the other words."""

    name = "wordops"
    step_sep = "\n"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        length: int = Field(4, ge=3, le=6)
        letters: int = Field(6, ge=3, le=26)
        max_depth: int = Field(4, ge=1, le=8)     # the farthest target a problem asks for
        max_steps: int = Field(6, ge=1)           # lines a correct answer may use
        test_fraction: float = Field(0.1, gt=0, lt=1)
        n_val: int = Field(300, ge=1)
        n_test: int = Field(500, ge=1)
        seed: int = 0

    def __init__(self, options: Options | None = None):
        self.o = options or self.Options()
        if self.o.letters < self.o.length:
            raise ValueError("letters must be >= length")
        self.alphabet = "abcdefghijklmnopqrstuvwxyz"[: self.o.letters]

    def _held_out(self, word: str) -> bool:
        h = int(hashlib.sha1(f"{self.o.seed}:{word}".encode()).hexdigest()[:8], 16)
        return h / 16**8 < self.o.test_fraction

    def problems(self) -> list[Problem]:
        rng = random.Random(self.o.seed)
        seen, held = [], []
        for word in map("".join, permutations(self.alphabet, self.o.length)):
            for target, d in sorted(distances(word).items()):
                if 0 < d <= self.o.max_depth:
                    (held if self._held_out(word) else seen).append((word, target))
        rng.shuffle(seen)
        rng.shuffle(held)
        n_val = self.o.n_val
        return ([self.problem(w, t, "train") for w, t in seen[n_val:]]
                + [self.problem(w, t, "val") for w, t in seen[:n_val]]
                + [self.problem(w, t, "test") for w, t in held[: self.o.n_test]])

    def problem(self, start: str, target: str, split: str = "given") -> Problem:
        return Problem(f"wo-{start}-{target}", split, f"{start}>{target}\n",
                       {"start": start, "target": target})

    def problem_from(self, row: dict) -> Problem:
        """`{"start": "dcab", "target": "abdc"}` → a problem (for `reasonloop verify`)."""
        start, target = row.get("start"), row.get("target")
        if not (isinstance(start, str) and isinstance(target, str)
                and sorted(start) == sorted(target) and start.isalpha() and start.islower()):
            raise ValueError("a wordops problem is {\"start\": word, \"target\": the same "
                             "letters rearranged}, lower-case")
        return self.problem(start, target)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        word, target = problem.meta["start"], problem.meta["target"]
        steps = split_steps(completion, self.step_sep)
        dist = distances(target)
        rewards, legal = [], bool(steps)
        for step in steps:
            m = STEP.fullmatch(step.strip())
            ok = legal and m is not None and m["op"] in OPS and OPS[m["op"]](word) == m["word"]
            if ok:
                closer = dist[m["word"]] < dist[word]
                word = m["word"]
            legal = legal and ok
            rewards.append(1.0 if ok and closer else 0.0)
        correct = legal and word == target and len(steps) <= self.o.max_steps
        return Verdict(correct=correct, steps=steps, step_rewards=rewards,
                       answer=word if legal else None, legal=legal)

    def feedback(self, problem: Problem, completion: str) -> str | None:
        """The first wrong line, for revision search."""
        word = problem.meta["start"]
        for i, step in enumerate(split_steps(completion, self.step_sep), 1):
            m = STEP.fullmatch(step.strip())
            if m is None or m["op"] not in OPS:
                return f"line {i} is not op=word with op one of rev, rot, swp"
            if OPS[m["op"]](word) != m["word"]:
                return f"line {i}: {m['op']} of {word} is {OPS[m['op']](word)}, not {m['word']}"
            word = m["word"]
        v = self.verify(problem, completion)
        return None if v.correct else f"ended at {word}, not {problem.meta['target']}"

    def relabel(self, problem: Problem, completion: str, verdict: Verdict,
                exclude: frozenset[str] = frozenset()) -> tuple[Problem, str] | None:
        """Hindsight: a legal miss that took a shortest way to the word it reached solves
        that problem — when it is a train problem (not held out, not in `exclude`). Only
        shortest ways: a roundabout one teaches nothing about which operation comes first."""
        start, reached = problem.meta["start"], verdict.answer
        if (verdict.correct or not verdict.legal or reached is None or reached == start
                or self._held_out(start)
                or not len(verdict.steps) == distances(reached)[start] <= self.o.max_depth):
            return None
        p = self.problem(start, reached, "train")
        return None if p.problem_id in exclude else (p, completion)

    def warmup_examples(self, n: int, seed: int) -> list[dict]:
        """Policy-init data: random legal operations toward an unrelated target — the format
        and what each operation does, not how to reach a target."""
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            start = "".join(rng.sample(self.alphabet, self.o.length))
            target = "".join(rng.sample(start, len(start)))
            word, lines = start, []
            for _ in range(rng.randint(1, self.o.max_depth)):
                op = rng.choice(sorted(OPS))
                word = OPS[op](word)
                lines.append(f"{op}={word}")
            out.append({"prompt": f"{start}>{target}\n", "completion": "\n".join(lines) + "\n"})
        return out
