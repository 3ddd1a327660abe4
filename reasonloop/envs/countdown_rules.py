"""The rules of Countdown as text: legal moves, the reachable-set oracle, and the verifier's
line-by-line walk over a completion (steps, and the checks and backtracking of search
traces). The env (`countdown.py`) and the trace searcher (`countdown_trace.py`) build on it.
Model text is *parsed* with one regex per line, never evaluated."""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import lru_cache

from reasonloop.envs.base import Verdict, split_steps

OPS = "+-*/"
# A number in a step: ASCII digits only (`\d` would take "３" or "٣"), no leading zeros (one
# spelling per value, so D_expert holds one format), at most 64 digits — above anything the
# rules can reach from 6 numbers ≤ MAX_NUMBER (10**36), so every solution can be written.
NUM = r"(?:0|[1-9][0-9]{0,63})"
STEP_RE = re.compile(rf"^({NUM})([-+*/])({NUM})=({NUM}) \[({NUM}(?: {NUM})*)\]$")
# A check in a search trace: `57 not 51` / `51 ok`, or the comparing form `57 vs 51 no` /
# `51 vs 51 ok`, which writes both numbers side by side before its verdict (`check_line`).
CHECK_RE = re.compile(rf"^({NUM}) (?:ok|not ({NUM})|vs ({NUM}) (ok|no))$")
# ... or spelled as the difference of leaf and target, larger first: `57-51=6 no`, `51-51=0 ok`
# (no `[...]`, so never a step): the verdict follows from a digit just written.
DIFF_RE = re.compile(rf"^({NUM})-({NUM})=({NUM}) (ok|no)$")
BACK_RE = re.compile(rf"^back \[({NUM}(?: {NUM})*)\]$")
PROMPT_RE = re.compile(rf"^{NUM}(?: {NUM})*>{NUM}\n")


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


def reorder(prompt: str, rng: random.Random) -> str:
    """The same problem with its numbers shuffled (a BC augmentation; the order may come out
    the same): a solution's steps name values and the verifier keeps a multiset, so every
    solution still holds. Text that is not a Countdown prompt comes back as it is."""
    if PROMPT_RE.match(prompt) is None:
        return prompt
    nums = prompt[: prompt.index(">")].split(" ")
    rng.shuffle(nums)
    return " ".join(nums) + prompt[prompt.index(">"):]


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

        57 not 51       a check: the one number left is not the target (57 ok: it is;
                        or 57 vs 51 no / 51 vs 51 ok)
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
            elif (m := DIFF_RE.match(line)) is not None:
                kind, error = "check", _diff_error(state, target, m, i)
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


def check_line(value: int, target: int, form: str = "plain") -> str:
    """The check of a leaf as a trace writes it: plain (`57 not 51`), compare (`57 vs 51
    no`: the target beside the value before the verdict) or diff (`57-51=6 no`: equality
    as the subtraction the policy already does in its steps; the form that removed false
    `ok`s on near misses)."""
    verdict = "ok" if value == target else "no"
    if form == "diff":
        return f"{max(value, target)}-{min(value, target)}={abs(value - target)} {verdict}"
    if form == "compare":
        return f"{value} vs {target} {verdict}"
    return f"{value} ok" if value == target else f"{value} not {target}"


def check_form(line: str) -> tuple[str, tuple[int, ...]] | None:
    """(form, numbers) of a check line — (plain|compare, (value,)) or (diff, (a, b)) —
    or None for any other line."""
    if (m := CHECK_RE.match(line)) is not None:
        return ("compare" if m.group(3) else "plain"), (int(m.group(1)),)
    if (m := DIFF_RE.match(line)) is not None:
        return "diff", (int(m.group(1)), int(m.group(2)))
    return None


def _diff_error(state: Counter, target: int, m: re.Match, i: int) -> str | None:
    a, b, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if sum(state.values()) != 1:
        return f"step {i}: a check needs one number left [{_show(state)}]"
    leaf = next(iter(state))
    if sorted((a, b)) != sorted((leaf, target)):
        return f"step {i}: a check subtracts {leaf} and the target {target}"
    if a - b != d:
        return f"step {i}: {a}-{b} is {a - b} not {d}"
    if m.group(4) == "ok" and leaf != target:
        return f"step {i}: {leaf} is not the target {target}"
    if m.group(4) == "no" and leaf == target:
        return f"step {i}: the target is {target}"
    return None


def _check_error(state: Counter, target: int, m: re.Match, i: int) -> str | None:
    value = int(m.group(1))
    named = m.group(2) or m.group(3)                 # the target the check names, if any
    says_ok = m.group(2) is None and m.group(4) != "no"
    if sum(state.values()) != 1 or next(iter(state)) != value:
        return f"step {i}: {value} is not the one number left [{_show(state)}]"
    if says_ok and value != target:
        return f"step {i}: {value} is not the target {target}"
    if named is not None and (int(named) != target or (value == target and not says_ok)):
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


def play(state: tuple[int, ...], a: int, b: int, c: int) -> tuple[int, ...]:
    """The numbers left after a step, as written: untouched ones in order, the new value last."""
    rest = list(state)
    rest.remove(a)
    rest.remove(b)
    return (*rest, c)


def random_trajectory(numbers, rng: random.Random) -> list[str]:
    """A uniformly random *legal* play to the end: BC warm-up data (format, not skill)."""
    state = tuple(numbers)
    lines = []
    while len(state) > 1:
        opts = list(moves(state))
        a, op, b, c, nxt = rng.choice(opts)
        state = play(state, a, b, c)
        lines.append(format_step(a, op, b, c, state))
    return lines
