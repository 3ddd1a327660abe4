"""An independent Countdown checker for the tests: written from the rules, not from the
verifier — lines split by hand, numbers scanned character by character (no regex), each step
replayed in exact rational arithmetic (`Fraction`), multisets compared as sorted lists.

Search traces add two line kinds: `V ok` / `V not T` / `V vs T ok` / `V vs T no` / `A-B=D
ok|no` (V is the one number left; ok iff V is the target, T must be the target; A and B
are V and the target, A-B=D) and `back [n ...]` (numbers
left at an earlier point, the start included; the replay goes on from there). Judged by
where the text ends."""

import re
from fractions import Fraction

DIGITS = "0123456789"
MAX_DIGITS = 64           # the spec: a number is 0 or 1-64 ASCII digits without a leading 0


def _number(s: str, i: int) -> tuple[int | None, int]:
    j = i
    while j < len(s) and s[j] in DIGITS:
        j += 1
    word = s[i:j]
    if not word or len(word) > MAX_DIGITS or (len(word) > 1 and word[0] == "0"):
        return None, i
    return int(word), j


def _numbers(inner: str) -> list[int] | None:
    out = []
    for word in inner.split(" "):          # single spaces: an empty word is a format error
        n, k = _number(word, 0)
        if n is None or k != len(word):
            return None
        out.append(n)
    return out


def _parse_diff(line: str):
    """`A-B=D ok|no` → (A, B, D, ok); else None."""
    a, i = _number(line, 0)
    if a is None or line[i:i + 1] != "-":
        return None
    b, j = _number(line, i + 1)
    if b is None or line[j:j + 1] != "=":
        return None
    d, k = _number(line, j + 1)
    if d is None or line[k:] not in (" ok", " no"):
        return None
    return a, b, d, line[k:] == " ok"


def _parse_check(line: str):
    """`V ok` → (V, None, True); `V not T` → (V, T, False); `V vs T ok|no` → (V, T, True|False);
    else None."""
    v, i = _number(line, 0)
    if v is None:
        return None
    if line[i:] == " ok":
        return v, None, True
    for word in (" not ", " vs "):
        if line[i:].startswith(word):
            t, j = _number(line, i + len(word))
            if t is None:
                return None
            if word == " not ":
                return (v, t, False) if j == len(line) else None
            verdict = line[j:]
            return (v, t, verdict == " ok") if verdict in (" ok", " no") else None
    return None


def _parse_step(line: str):
    """`a<op>b=c [n1 n2 ...]` → (a, op, b, c, [n...]) or None, scanning characters."""
    a, i = _number(line, 0)
    if a is None or i >= len(line) or line[i] not in "+-*/":
        return None
    op = line[i]
    b, i = _number(line, i + 1)
    if b is None or line[i:i + 1] != "=":
        return None
    c, i = _number(line, i + 1)
    if c is None or line[i:i + 2] != " [" or not line.endswith("]"):
        return None
    left = _numbers(line[i + 2:-1])
    return None if left is None else (a, op, b, c, left)


def reference(numbers, target: int, text: str) -> bool:
    lines = [ln.strip("\r") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    state = [Fraction(n) for n in numbers]
    seen = [sorted(state)]
    stepped = False
    for line in lines:
        if line.startswith("back [") and line.endswith("]"):
            back = _numbers(line[6:-1])
            if back is None or sorted(Fraction(n) for n in back) not in seen:
                return False
            state = [Fraction(n) for n in back]
            continue
        diff = _parse_diff(line)
        if diff is not None:
            a, b, d, ok = diff
            if len(state) != 1 or sorted([Fraction(a), Fraction(b)]) != sorted(
                    [state[0], Fraction(target)]) or a - b != d or ok != (state[0] == target):
                return False
            continue
        checked = _parse_check(line)
        if checked is not None:
            v, said, ok = checked
            if state != [v] or (ok != (v == target)) or (said is not None and said != target):
                return False
            continue
        step = _parse_step(line)
        if step is None:
            return False
        a, op, b, c, left = step
        try:
            state.remove(Fraction(a))
            state.remove(Fraction(b))
        except ValueError:
            return False
        if op == "/" and b == 0:
            return False
        x, y = Fraction(a), Fraction(b)
        value = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if b else None}[op]
        if value is None or value < 0 or value.denominator != 1 or value != c:
            return False
        state.append(value)
        if sorted(state) != sorted(Fraction(n) for n in left):
            return False
        seen.append(sorted(state))
        stepped = True
    return stepped and len(state) == 1 and state[0] == target


def parse_prompt(prompt: str) -> tuple[tuple[int, ...], int]:
    """A made prompt back to (numbers, target), from its first line (a revision prompt goes
    on with the failed attempt and the feedback)."""
    m = re.fullmatch(r"([0-9]+(?: [0-9]+)*)>([0-9]+)", prompt.split("\n", 1)[0])
    if not m:
        raise ValueError(f"not a Countdown prompt: {prompt!r}")
    return tuple(int(x) for x in m.group(1).split()), int(m.group(2))


def trace_lines(ex) -> tuple[tuple[int, ...], int, list[str]]:
    """A made example (prompt, completion) → (numbers, target, the completion's lines)."""
    nums, t = parse_prompt(ex["prompt"])
    return nums, t, ex["completion"].rstrip("\n").split("\n")


def replay(nums, lines):
    """By hand, for the trace generator's tests: after every line, its kind, the multiset
    and (steps) the multiset before it / (`back`) the states seen before it."""
    state, seen, out = sorted(nums), [sorted(nums)], []
    for line in lines:
        if line.startswith("back ["):
            state = sorted(int(x) for x in line[6:-1].split())
            out.append(("back", state, list(seen)))
        elif "[" in line:                  # a step (a check spelled `a-b=d ok` has no [..])
            lhs, rhs = line.split("=")
            a, op, b = re.fullmatch(r"(\d+)([-+*/])(\d+)", lhs).groups()
            before, state = list(state), list(state)
            for x in (int(a), int(b)):
                state.remove(x)             # raises if the step uses a number not there
            state = sorted(int(x) for x in rhs.split("[")[1][:-1].split())
            out.append(("step", state, before))
            seen.append(state)
        else:
            out.append(("check", state, None))
    return out
