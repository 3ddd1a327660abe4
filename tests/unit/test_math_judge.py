"""math-verify under a real timeout on every thread: Prefect runs the verify stage, and TRL the
GRPO reward, off the main thread, where math-verify's SIGALRM timeouts are off. An answer that
computes for hours there must cost at most the limit and count as wrong."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from reasonloop.envs import math_judge
from reasonloop.envs.base import Problem
from reasonloop.envs.math import MathEnv, gold_answer

HANGS = "So the answer is \\boxed{10^{10^{10}}}"      # sympy builds a 10-billion-digit int

CASES = [("$42$", "so \\boxed{42}", True), ("$42$", "\\boxed{41}", False),
         ("$\\frac{1}{2}$", "\\boxed{0.5}", True), ("$3$", "no answer here", False),
         (gold_answer("6 * 7 = 42\n#### 42"), "thus $\\boxed{42}$", True)]


def in_thread(fn, *args):
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(fn, *args).result()


def test_threaded_judgement_agrees_with_the_main_thread():
    for gold, text, want in CASES:
        assert math_judge.judge_anywhere(gold, text) == in_thread(
            math_judge.judge_anywhere, gold, text)
        assert math_judge.judge_anywhere(gold, text)[0] is want


def test_a_hanging_answer_in_a_worker_thread_costs_the_limit_and_is_wrong():
    before = math_judge._helper.timeouts
    t = time.monotonic()
    assert in_thread(math_judge.judge_anywhere, "$5$", HANGS, 2.0) == (False, None)
    assert time.monotonic() - t < 20            # without the helper: hours
    assert math_judge._helper.timeouts == before + 1
    # the helper is restarted for the next answer
    assert in_thread(math_judge.judge_anywhere, "$42$", "\\boxed{42}")[0] is True


def test_env_verify_in_a_worker_thread_survives_the_hang():
    env = MathEnv.__new__(MathEnv)
    p = Problem("math-x", "test", "Q", {"answer": "#### 5"}, step_sep="\n\n")
    v = in_thread(env.verify, p, HANGS)
    assert not v.correct
    assert in_thread(env.verify, p, "2+3\n\n\\boxed{5}").correct
