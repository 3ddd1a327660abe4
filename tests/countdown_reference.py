"""An independent Countdown checker for the tests: written from the rules, not from the
verifier — lines split by hand, numbers scanned character by character (no regex), each step
replayed in exact rational arithmetic (`Fraction`), multisets compared as sorted lists."""

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
    inner = line[i + 2:-1]
    left = []
    for word in inner.split(" "):          # single spaces: an empty word is a format error
        n, k = _number(word, 0)
        if n is None or k != len(word):
            return None
        left.append(n)
    return a, op, b, c, left


def reference(numbers, target: int, text: str) -> bool:
    lines = [ln.strip("\r") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    state = [Fraction(n) for n in numbers]
    if not lines:
        return False
    for line in lines:
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
    return len(state) == 1 and state[0] == target


def parse_prompt(prompt: str) -> tuple[tuple[int, ...], int]:
    """A made prompt back to (numbers, target), from its first line (a revision prompt goes
    on with the failed attempt and the feedback)."""
    m = re.fullmatch(r"([0-9]+(?: [0-9]+)*)>([0-9]+)", prompt.split("\n", 1)[0])
    if not m:
        raise ValueError(f"not a Countdown prompt: {prompt!r}")
    return tuple(int(x) for x in m.group(1).split()), int(m.group(2))
