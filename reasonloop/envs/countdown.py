"""Countdown (Stream of Search rules): combine a multiset of numbers with + × − ÷ to hit a target.

Each step takes two numbers a, b and replaces them by a+b, a*b, a-b (a ≥ b) or a/b (exact);
intermediates stay non-negative integers; solved when the last number left equals the target.
Every step line names the step *and the numbers left*, so any prefix is a state — which is what
makes the oracle PRM label ("is the target still reachable from here?") exact.

    prompt      "12 5 3>51\n"
    completion  "12*5=60 [3 60]\n60-3=57 [57]\n"   (a miss: legal, but 57 != 51)

A search trace (countdown_trace.py) also writes checks and backtracking, verified the same way:
"...60-3=57 [57]\n57 not 51\nback [12 5 3]\n12+5=17 [3 17]\n17*3=51 [51]\n51 ok\n".

Model text is *parsed* with one regex per line, never evaluated.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import lru_cache
from itertools import combinations_with_replacement
from math import comb

from reasonloop.envs.base import Problem, Verdict, read_jsonl, split_steps
from reasonloop.errors import InputError

OPS = "+-*/"
MAX_FILE_NUMBERS = 5       # the oracle's reachable-set search stays fast up to 5 numbers
ENUMERATE_LIMIT = 50_000   # multisets; above this, problems are drawn at random
MAX_NUMBER = 10**6         # the largest number a problem may start with (file or generator)
MAX_TARGET = 10**7
# A number in a step: ASCII digits only (`\d` would take "３" or "٣"), no leading zeros (one
# spelling per value, so D_expert holds one format), at most 64 digits — above anything the
# rules can reach from 6 numbers ≤ MAX_NUMBER (10**36), so every solution can be written.
NUM = r"(?:0|[1-9][0-9]{0,63})"
STEP_RE = re.compile(rf"^({NUM})([-+*/])({NUM})=({NUM}) \[({NUM}(?: {NUM})*)\]$")
CHECK_RE = re.compile(rf"^({NUM}) (?:ok|not ({NUM}))$")       # search traces (walk)
BACK_RE = re.compile(rf"^back \[({NUM}(?: {NUM})*)\]$")


def apply(a: int, op: str, b: int) -> int | None:
    """The result of one step, or None when the rules forbid it."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a >= b else None
    if op == "/":
        return a // b if b != 0 and a % b == 0 else None
    return None


def moves(state: tuple[int, ...]):
    """Every legal step from a state: (a, op, b, result, next_state). a ≥ b for − and ÷."""
    n = len(state)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = state[i], state[j]
            rest = [state[k] for k in range(n) if k not in (i, j)]
            for op in OPS:
                if op in "+*" and i > j:      # commutative: one order is enough
                    continue
                c = apply(a, op, b)
                if c is None:
                    continue
                yield a, op, b, c, tuple(sorted(rest + [c]))


@lru_cache(maxsize=500_000)
def reachable(state: tuple[int, ...]) -> frozenset[int]:
    """All values the oracle can finish with from a (sorted) state, using every number."""
    if len(state) == 1:
        return frozenset(state)
    out: set[int] = set()
    for *_, nxt in moves(state):
        out |= reachable(nxt)
    return frozenset(out)


def solve(numbers: tuple[int, ...], target: int) -> list[str] | None:
    """One solution as step lines (oracle DFS), or None if there is none."""
    state = tuple(sorted(numbers))
    if target not in reachable(state):
        return None
    lines = []
    while len(state) > 1:
        for a, op, b, c, nxt in moves(state):
            if target in reachable(nxt):
                lines.append(format_step(a, op, b, c, nxt))
                state = nxt
                break
    return lines


def format_prompt(numbers, target: int) -> str:
    return " ".join(map(str, numbers)) + f">{target}\n"


def format_step(a, op, b, c, remaining) -> str:
    return f"{a}{op}{b}={c} [{' '.join(map(str, remaining))}]"


def take_step(state: Counter, line: str, i: int) -> tuple[Counter, str | None]:
    """Apply one step line to a state: (the next state, None), or (the same state, what is
    wrong with the step in words). The verifier and the revision feedback share this."""
    m = STEP_RE.match(line)
    if m is None:
        return state, f"step {i} is not of the form a+b=c [numbers left]"
    a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    for x in (a, b):
        if state[x] < (2 if a == b else 1):
            return state, f"step {i} uses {x} which is not available"
    value = apply(a, op, b)
    if value is None:
        return state, f"step {i}: {a}{op}{b} is not allowed"
    if value != c:
        return state, f"step {i}: {a}{op}{b} is {value} not {c}"
    nxt = state.copy()
    nxt[a] -= 1
    nxt[b] -= 1
    nxt[c] += 1
    nxt = +nxt
    if Counter(int(x) for x in m.group(5).split()) != nxt:
        return state, f"step {i}: numbers left are [{_show(nxt)}]"
    return nxt, None


def _show(state: Counter) -> str:
    return " ".join(map(str, sorted(state.elements())))


def _key(state: Counter) -> tuple[int, ...]:
    return tuple(sorted(state.elements()))


def walk(numbers, target: int, steps: list[str]):
    """Replay a completion line by line: yields (kind, state, error) per line, where kind is
    step | check | back. Search traces add two kinds of line to the step lines:

        57 not 51       a check: the one number left is not the target (57 ok: it is)
        back [12 5 3]   backtracking: the numbers left at an earlier point of this text

    A check that lies or a `back` to numbers that never appeared is an error; after the
    first error the state stays put (every later line is judged wrong)."""
    state = Counter(numbers)
    seen = {_key(state)}
    error = None
    for i, line in enumerate(steps, 1):
        kind = "step"
        if error is None:
            if (m := CHECK_RE.match(line)) is not None:
                kind, error = "check", _check_error(state, target, m, i)
            elif (m := BACK_RE.match(line)) is not None:
                kind = "back"
                back = Counter(int(x) for x in m.group(1).split())
                if _key(back) in seen:
                    state = back
                else:
                    error = f"step {i}: [{_show(back)}] did not appear before"
            else:
                state, error = take_step(state, line, i)
                seen.add(_key(state))
        yield kind, state, error


def _check_error(state: Counter, target: int, m: re.Match, i: int) -> str | None:
    value, said = int(m.group(1)), m.group(2)
    if sum(state.values()) != 1 or next(iter(state)) != value:
        return f"step {i}: {value} is not the one number left [{_show(state)}]"
    if said is None and value != target:
        return f"step {i}: {value} is not the target {target}"
    if said is not None and (value == target or int(said) != target):
        return f"step {i}: the target is {target}"
    return None


def check(numbers, target: int, completion: str) -> Verdict:
    """The verifier (ORM) and oracle step labels (PRM) in one pass over the lines.

    A line is rewarded 1.0 iff it is legal *and* the target is still reachable from the
    numbers it leaves (a dead-end branch of a search trace scores 0, the `back` out of it 1
    again); after the first illegal line every label is 0. A trace is judged by where it
    ends: correct iff every line is legal and the last numbers left are [target].
    """
    steps = split_steps(completion)
    rewards: list[float] = []
    state, error, moved = Counter(numbers), None, False
    for kind, state, error in walk(numbers, target, steps):
        moved |= kind == "step" and error is None
        rewards.append(1.0 if error is None and target in reachable(_key(state)) else 0.0)
    legal = error is None
    finished = legal and sum(state.values()) == 1 and moved
    answer = str(next(iter(state))) if finished else None
    correct = finished and answer == str(target)
    return Verdict(correct=correct, steps=steps, step_rewards=rewards, answer=answer,
                   legal=legal and finished)


def diagnose(numbers, target: int, completion: str) -> str | None:
    """Verifier feedback in words for sequential revision: what is wrong with the first bad
    line, or why the end is wrong; None when the completion is correct. Only characters a
    char-level policy knows (no '!=' or unicode), so the policy can read it in a prompt."""
    steps = split_steps(completion)
    if not steps:
        return "no steps"
    state = Counter(numbers)
    for _, after, error in walk(numbers, target, steps):
        if error is not None:
            return error
        state = after
    if sum(state.values()) > 1:
        return f"not finished: numbers left are [{_show(state)}]"
    result = next(iter(state))
    return None if result == target else f"result {result} but target {target}"


def random_trajectory(numbers, rng: random.Random) -> list[str]:
    """A uniformly random *legal* play to the end: BC warm-up data (format, not skill)."""
    state = tuple(numbers)
    lines = []
    while len(state) > 1:
        opts = list(moves(state))
        a, op, b, c, nxt = rng.choice(opts)
        rest = list(state)
        rest.remove(a)
        rest.remove(b)
        state = tuple(rest) + (c,)   # keep the untouched numbers in order, new value last
        lines.append(format_step(a, op, b, c, state))
    return lines


def load_problems(path, split: str = "file") -> list[Problem]:
    """Countdown problems from a user's JSONL: one {"numbers": [..], "target": N} per line.
    Validated whole before anything runs; the first bad line is named with its number.
    Problems must be solvable (checked by the oracle), so accuracy has a ceiling of 100%."""
    out, seen = [], set()
    for where, row in read_jsonl(path):
        if set(row) - {"numbers", "target"}:
            raise InputError(f"{where}: expected an object with 'numbers' and 'target' only")
        nums, target = row.get("numbers"), row.get("target")
        if (not isinstance(nums, list) or not 2 <= len(nums) <= MAX_FILE_NUMBERS
                or not all(type(x) is int and 1 <= x <= MAX_NUMBER for x in nums)):
            raise InputError(f"{where}: 'numbers' must be a list of 2 to {MAX_FILE_NUMBERS} "
                             f"integers in 1..1000000 (got {nums!r})")
        if type(target) is not int or not 0 <= target <= MAX_TARGET:
            raise InputError(f"{where}: 'target' must be an integer in 0..10000000 "
                             f"(got {target!r})")
        if target not in reachable(tuple(sorted(nums))):
            raise InputError(f"{where}: {nums} cannot reach {target} (not solvable)")
        prob = Countdown._problem((tuple(nums), target), split)
        if prob.problem_id not in seen:
            seen.add(prob.problem_id)
            out.append(prob)
    if not out:
        raise InputError(f"{path}: no problems")
    return out


class Countdown:
    """Deterministic problem sets from a seed; train/val share targets, test holds some out."""

    name = "countdown"
    step_sep = "\n"              # one equation per line
    warmup_kinds = ("plays", "traces")

    def __init__(self, cfg):
        self.cfg = cfg
        rng = random.Random(cfg.seed)
        targets = list(range(cfg.target_min, cfg.target_max + 1))
        n_test = max(1, round(len(targets) * cfg.test_target_fraction))
        self.test_targets = frozenset(rng.sample(targets, n_test))
        self.train_targets = frozenset(t for t in targets if t not in self.test_targets)

    def _draw(self, rng, targets: frozenset[int]) -> tuple[tuple[int, ...], int] | None:
        c = self.cfg
        nums = tuple(rng.randint(c.number_min, c.number_max) for _ in range(c.n_numbers))
        options = sorted(reachable(tuple(sorted(nums))) & targets)
        return (nums, rng.choice(options)) if options else None

    def _space(self, rng) -> list[tuple[tuple[int, ...], int]]:
        """Every (numbers, target) problem when the space is small (3 numbers 1–20: ~13k),
        else a large random draw — either way deterministic from the seed."""
        c = self.cfg
        span = c.number_max - c.number_min + 1
        want = c.n_train + c.n_val + c.n_test
        targets = self.train_targets | self.test_targets     # once: it can be 10**7 large
        if comb(span + c.n_numbers - 1, c.n_numbers) <= ENUMERATE_LIMIT:
            out = []
            for ms in combinations_with_replacement(range(c.number_min, c.number_max + 1),
                                                    c.n_numbers):
                for t in sorted(reachable(ms) & targets):
                    nums = list(ms)
                    rng.shuffle(nums)
                    out.append((tuple(nums), t))
            rng.shuffle(out)
            return out
        out, seen = [], set()
        for _ in range(50 * want):
            drawn = self._draw(rng, targets)
            if drawn and (key := (tuple(sorted(drawn[0])), drawn[1])) not in seen:
                seen.add(key)
                out.append(drawn)
                if len(out) >= 3 * want:
                    break
        return out

    def problems(self) -> list[Problem]:
        """test: held-out targets; val: seen targets, disjoint problems; train: the rest."""
        c = self.cfg
        space = self._space(random.Random(c.seed + 1))
        test = [x for x in space if x[1] in self.test_targets][: c.n_test]
        seen = [x for x in space if x[1] in self.train_targets]
        val, train = seen[: c.n_val], seen[c.n_val: c.n_val + c.n_train]
        return ([self._problem(x, "train") for x in train] + [self._problem(x, "val") for x in val]
                + [self._problem(x, "test") for x in test])

    @staticmethod
    def _problem(x, split: str) -> Problem:
        """The id names the multiset (sorted) and target, so the same problem has one id
        whatever order its numbers are shown in."""
        nums, t = x
        return Problem(f"cd-{'-'.join(map(str, sorted(nums)))}-{t}", split,
                       format_prompt(nums, t), {"numbers": list(nums), "target": t})

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return check(tuple(problem.meta["numbers"]), problem.meta["target"], completion)

    def warmup_examples(self, n: int, seed: int, kind: str = "plays",
                        backtracks: int = 1) -> list[dict]:
        """Policy-initialization data. `plays`: random legal plays with an unrelated
        (solvable) target — format and arithmetic, not how to win. `traces`: search traces
        on training targets (countdown_trace) — attempts, checks, dead ends, backtracking."""
        rng = random.Random(seed)
        drawn = []
        while len(drawn) < n:
            if (x := self._draw(rng, self.train_targets)) is not None:
                drawn.append(x)
        if kind == "traces":
            from reasonloop.envs.countdown_trace import trace_examples
            return trace_examples(drawn, rng, backtracks)
        return [{"prompt": format_prompt(nums, t),
                 "completion": "\n".join(random_trajectory(nums, rng)) + "\n"}
                for nums, t in drawn]

    def feedback(self, problem: Problem, completion: str) -> str | None:
        return diagnose(tuple(problem.meta["numbers"]), problem.meta["target"], completion)

    def relabel(self, problem: Problem, completion: str, verdict: Verdict,
                exclude: frozenset[str] = frozenset()) -> tuple[Problem, str] | None:
        """Hindsight: a miss is a correct solution of the problem with the value it reached
        (its legal prefix up to its last leaf; a trace's checks retargeted) — if that value
        is a *training* target (test targets stay unseen) and the new problem is not in
        `exclude` (val/test problems must not leak into training). (problem, completion)."""
        from reasonloop.envs.countdown_trace import relabel_text
        if verdict.correct:
            return None
        nums = tuple(problem.meta["numbers"])
        found = relabel_text(nums, problem.meta["target"], completion)
        if found is None or found[0] not in self.train_targets:
            return None
        t, text = found
        p = self._problem((nums, t), "train")
        if p.problem_id in exclude:
            return None
        p.meta["hindsight_of"] = problem.problem_id
        return p, text
