"""The Countdown verifier against an independent reference checker (tests/
countdown_reference.py: a second implementation of the rules, from the spec), both ways.
The verifier and the reference must agree on every text — random step soups built from the
problem's own numbers (so the accept branch is reached often), oracle solutions and their
harmless rewrites, and adversarial near-misses (Unicode digits, leading zeros, off-by-one
results, wrong lists, CRLF, stray spaces) — and every problem the product can make or a file
can supply must have its oracle solution accepted."""

import json
import os
import random

import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import (
    MAX_FILE_NUMBERS,
    MAX_NUMBER,
    MAX_TARGET,
    Countdown,
    check,
    load_problems,
    random_trajectory,
    reachable,
    solve,
)
from tests.countdown_reference import DIGITS, MAX_DIGITS, reference

SHARE = 10 if os.environ.get("REASONLOOP_TEST_FAST") else 1

# ---- texts built from the problem's own numbers ------------------------------------------

UNICODE_DIGITS = ["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"]


def _soup(nums, rng) -> str:
    """Steps over the current numbers with a random op, mostly-right results and lists."""
    state, lines = list(nums), []
    for _ in range(rng.randint(1, len(nums))):
        if len(state) < 2:
            a = b = rng.choice(state or [1])
        else:
            a, b = rng.sample(state, 2)
        op = rng.choice("+-*/")
        exact = {"+": a + b, "-": a - b, "*": a * b,
                 "/": a // b if b and a % b == 0 else (a // b if b else 0)}[op]
        c = exact if rng.random() < 0.8 else max(0, exact + rng.choice([-1, 1, 2]))
        rest = list(state)
        for x in (a, b):
            if x in rest:
                rest.remove(x)
        rest.append(c)
        if rng.random() < 0.1 and rest:
            rest.pop(rng.randrange(len(rest)))
        rng.shuffle(rest)
        lines.append(f"{a}{op}{b}={c} [{' '.join(map(str, rest))}]")
        state = rest
    return "\n".join(lines)


def _mutate(text: str, rng) -> str:
    """One adversarial edit of a (often correct) text."""
    kind = rng.randrange(10)
    if kind == 0:      # a Unicode digit for an ASCII one
        table = rng.choice(UNICODE_DIGITS)
        pos = [i for i, ch in enumerate(text) if ch in DIGITS]
        if pos:
            i = rng.choice(pos)
            return text[:i] + table[int(text[i])] + text[i + 1:]
    if kind == 1:      # a leading zero
        pos = [i for i, ch in enumerate(text) if ch in DIGITS and (i == 0 or text[i - 1] in
                                                                  " +-*/=[\n")]
        if pos:
            i = rng.choice(pos)
            return text[:i] + "0" + text[i:]
    if kind == 2:
        return text.replace("\n", "\r\n") + rng.choice(["", "\r\n", "\n\n"])
    if kind == 3:      # a stray space
        i = rng.randrange(len(text) + 1)
        return text[:i] + " " + text[i:]
    if kind == 4:      # a result off by one
        lines = text.split("\n")
        j = rng.randrange(len(lines))
        if "=" in lines[j]:
            lhs, rhs = lines[j].split("=", 1)
            val, _, rest = rhs.partition(" ")
            if val.isdigit():
                lines[j] = f"{lhs}={int(val) + rng.choice([-1, 1])} {rest}"
        return "\n".join(lines)
    if kind == 5:      # the list of numbers left, permuted (harmless)
        out = []
        for ln in text.split("\n"):
            if "[" in ln and ln.endswith("]"):
                head, inner = ln[:-1].split("[", 1)
                words = inner.split(" ")
                rng.shuffle(words)
                ln = head + "[" + " ".join(words) + "]"
            out.append(ln)
        return "\n".join(out)
    if kind == 6:      # a step dropped or repeated
        lines = text.split("\n")
        j = rng.randrange(len(lines))
        return "\n".join(lines[:j] + lines[j + 1:] if rng.random() < 0.5 else
                         lines[:j + 1] + lines[j:])
    if kind == 7:      # operands swapped (wrong for − and ÷ unless equal)
        lines = text.split("\n")
        j = rng.randrange(len(lines))
        for op in "+-*/":
            if op in lines[j].split("=")[0][1:]:
                lhs, rhs = lines[j].split("=", 1)
                a, b = lhs[0] + lhs[1:].split(op, 1)[0], lhs[1:].split(op, 1)[1]
                lines[j] = f"{b}{op}{a}={rhs}"
                break
        return "\n".join(lines)
    if kind == 8:      # blank lines and trailing newlines (harmless)
        return "\n\n".join(text.split("\n")) + "\n"
    return text


def _problems(rng, n):
    """Random problems over the ranges a problems file accepts, small and large numbers."""
    for _ in range(n):
        k = rng.choice([2, 2, 3, 3, 4])
        hi = rng.choice([10, 30, 100, MAX_NUMBER])
        nums = tuple(rng.randint(1, hi) for _ in range(k))
        target = rng.choice(sorted(reachable(tuple(sorted(nums)))))
        yield nums, target


def test_verifier_agrees_with_the_reference_both_ways():
    rng = random.Random(0)
    agree = accepted = 0
    for nums, target in _problems(rng, 4000 // SHARE):
        oracle = "\n".join(solve(nums, target))
        texts = [oracle, _soup(nums, rng), "\n".join(random_trajectory(nums, rng))]
        texts += [_mutate(rng.choice(texts), rng) for _ in range(4)]
        for text in texts:
            want = reference(nums, target, text)
            got = check(nums, target, text)
            assert got.correct == want, (nums, target, text)
            if got.correct:    # the verifier's other fields agree with an accepted solution
                assert got.legal and got.answer == str(target)
                assert got.step_rewards == [1.0] * len(got.steps)
            agree += 1
            accepted += want
    # both branches are really exercised: many acceptances, many more rejections
    assert accepted > agree // 10 and agree - accepted > agree // 3, (accepted, agree)


@pytest.mark.parametrize("text", [
    "３+５=８ [８]", "٣+٥=٨ [٨]", "𝟑+𝟓=𝟖 [𝟖]",     # Unicode digits: off-format, not a solution
    "03+5=8 [8]", "3+05=8 [8]", "3+5=08 [8]", "3+5=8 [08]", "03+005=0008 [08]",
    "3+5=8  [8]", " 3+5=8 [8]", "3+5=8 [8] ", "3 + 5=8 [8]", "3+5=8[8]", "3+5=8 [8",
    "+3+5=8 [8]", "3+5=8 [8 ]", "3+5=8 [ 8]", "3+-5=-2 [-2]",
])
def test_off_format_text_is_never_correct(text):
    assert not reference([3, 5], 8, text)
    assert not check([3, 5], 8, text).correct


@pytest.mark.parametrize("text", ["3+5=8 [8]", "3+5=8 [8]\n", "3+5=8 [8]\r\n", "\r\n3+5=8 [8]",
                                  "5+3=8 [8]\n\n", "3+5=8 [8]\r"])
def test_line_endings_do_not_turn_a_right_answer_wrong(text):
    assert reference([3, 5], 8, text)
    assert check([3, 5], 8, text).correct


def test_zero_is_a_number_but_not_a_prefix():
    assert check([3, 3], 0, "3-3=0 [0]").correct
    assert check([3, 3, 7], 0, "3-3=0 [7 0]\n0*7=0 [0]").correct
    assert not check([3, 3, 7], 0, "3-3=00 [7 0]\n0*7=0 [0]").correct


def test_every_generated_problem_has_its_oracle_solution_accepted():
    """The default setting's whole problem space, the 4-number standard setting, and the
    largest numbers the generator allows."""
    for cfg in (EnvConfig(n_train=20000),
                EnvConfig(n_numbers=4, number_max=99, target_min=10, target_max=100,
                          n_train=3000 // SHARE, n_val=50, n_test=50),
                EnvConfig(n_numbers=3, number_min=MAX_NUMBER - 50, number_max=MAX_NUMBER,
                          target_min=MAX_TARGET - 10**6, target_max=MAX_TARGET,
                          n_train=100, n_val=5, n_test=5)):
        problems = Countdown(cfg).problems()
        assert problems
        for p in problems:
            nums, t = tuple(p.meta["numbers"]), p.meta["target"]
            oracle = "\n".join(solve(nums, t))
            assert check(nums, t, oracle).correct and reference(nums, t, oracle), p


def test_every_file_problem_has_its_oracle_solution_accepted(tmp_path):
    """Over the ranges a problems file accepts (up to MAX_FILE_NUMBERS numbers ≤ MAX_NUMBER,
    targets ≤ MAX_TARGET), including the edges: what validates must be writable and
    accepted, and its prompt must name the numbers."""
    rng = random.Random(1)
    rows = [{"numbers": [MAX_NUMBER, 1], "target": MAX_NUMBER + 1},
            {"numbers": [1000, 1000, 7], "target": 1000007},
            {"numbers": [MAX_NUMBER] * 3, "target": MAX_TARGET},
            {"numbers": [MAX_NUMBER, MAX_NUMBER], "target": 0}]
    for nums, _ in _problems(rng, 300 // SHARE):
        targets = [t for t in reachable(tuple(sorted(nums))) if t <= MAX_TARGET]
        if targets:
            rows.append({"numbers": list(nums), "target": rng.choice(targets)})
    rows.append({"numbers": [9, 8, 7, 6, 5], "target": 7})          # MAX_FILE_NUMBERS numbers
    assert len(rows[-1]["numbers"]) == MAX_FILE_NUMBERS
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows if r["target"] <= MAX_TARGET
                           and r["target"] in reachable(tuple(sorted(r["numbers"])))))
    env = Countdown(EnvConfig())
    problems = load_problems(f)
    assert len(problems) >= 200 // SHARE
    for p in problems:
        nums, t = tuple(p.meta["numbers"]), p.meta["target"]
        assert p.prompt == " ".join(map(str, nums)) + f">{t}\n"
        oracle = "\n".join(solve(nums, t))
        v = env.verify(p, oracle)
        assert v.correct and reference(nums, t, oracle), p
        # the oracle PRM labels every step of a writable solution as on the way
        assert v.step_rewards == [1.0] * len(v.steps)


def test_the_digit_cap_is_above_everything_the_rules_can_reach():
    """6 numbers (the config's most) of the largest size multiply to the largest value."""
    assert len(str(MAX_NUMBER ** 6)) <= MAX_DIGITS
    assert EnvConfig.model_fields["number_max"].metadata[-1].le == MAX_NUMBER
    assert EnvConfig.model_fields["n_numbers"].metadata[-1].le == 6
    big = MAX_NUMBER ** 2
    assert check([MAX_NUMBER, MAX_NUMBER], big, f"{MAX_NUMBER}*{MAX_NUMBER}={big} [{big}]").correct
