"""Model text is data, never code: the step parsers and verifiers take 10,000+ generated
strings — garbage, near-misses of the step format, LaTeX-ish answers — without an exception,
with verdicts an independent checker agrees with, and without `eval`/`exec`/`compile` ever
being called (calls are recorded, so a library that swallows the error cannot hide one). Plus
a scan of the source for every way to reach them: bare names, `builtins.eval`, `getattr(...,
"eval")`, sympy's `sympify`/`parse_expr` (which evaluate Python), imports of those."""

import ast
import builtins
import contextlib
import os
import re
import sys
from fractions import Fraction
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonloop.envs.base import Problem, split_steps
from reasonloop.envs.countdown import check
from tests.countdown_reference import reference

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# `make test-fast` samples a tenth of the strings; `make test` (and CI) all of them.
SHARE = 10 if os.environ.get("REASONLOOP_TEST_FAST") else 1


# What may reach sympy's parse_expr (which runs Python): one number literal (latex2sympy
# builds numbers with sympy.Number(text)) or one bare name (math-verify's unit handling
# sympifies names such as 'yotta'). Neither can call anything or reach an attribute.
NUMBER_LITERAL = re.compile(r"[0-9][0-9,]*(\.[0-9]*)?|\.[0-9]+|[A-Za-z][A-Za-z0-9]*")

# sympy generates its monomial helpers from the number of variables (no text reaches them).
LIBRARY_CODEGEN = {"sympy.polys.monomials"}


def _importing() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if f.f_globals.get("__name__", "").startswith("importlib"):
            return True
        f = f.f_back
    return False


@contextlib.contextmanager
def no_eval():
    """Around the call under test only (Hypothesis itself compiles code): every call to
    eval/exec/compile, and every string handed to sympy's parse_expr, is recorded *and*
    raises, and the block fails if any happened — even when the library caught the
    exception. Allowed: a lazy import running a library module's own code, sympy's codegen
    by arity, and parse_expr of a bare number literal or name."""
    import latex2sympy2_extended.latex2sympy2 as l2s
    import math_verify.parser as mvp
    import sympy.parsing.sympy_parser as sp
    calls, literal = [], []
    real_parse = sp.parse_expr

    def parse(text, *a, **k):
        if not (isinstance(text, str) and NUMBER_LITERAL.fullmatch(text.strip())):
            calls.append(f"parse_expr({text!r})")
            raise AssertionError(f"model text reached parse_expr: {text!r}")
        literal.append(text)
        try:
            return real_parse(text, *a, **k)
        finally:
            literal.pop()

    def forbidden(name, real):
        def call(*a, **k):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if literal or _importing() or caller in LIBRARY_CODEGEN:
                return real(*a, **k)
            calls.append(name)
            raise AssertionError(f"model text reached {name}")
        return call

    with mock.patch.multiple(builtins, eval=forbidden("eval", eval),
                             exec=forbidden("exec", exec),
                             compile=forbidden("compile", compile)), \
            mock.patch.object(sp, "parse_expr", parse), \
            mock.patch.object(mvp, "parse_expr", parse), \
            mock.patch.object(l2s, "parse_expr", parse):
        yield
    assert not calls, calls


ints = st.integers(-5, 200)
step = st.builds("{}{}{}={} [{}]".format, ints, st.sampled_from("+-*/x%^ "), ints, ints,
                 st.lists(ints, max_size=4).map(lambda xs: " ".join(map(str, xs))))
near_miss = st.lists(step, min_size=0, max_size=5).map("\n".join)
garbage = st.text(max_size=120)
mixed = st.builds(lambda a, b, i: a[:i] + b + a[i:], near_miss, garbage, st.integers(0, 80))


@given(st.one_of(near_miss, garbage, mixed), st.lists(st.integers(1, 30), min_size=2,
                                                      max_size=4), st.integers(0, 300))
@settings(FUZZ, max_examples=10_000 // SHARE)
def test_countdown_parser_and_verifier(text, nums, target):
    with no_eval():
        v = check(nums, target, text)
    assert len(v.step_rewards) == len(v.steps) == len(split_steps(text))
    assert all(r in (0.0, 1.0) for r in v.step_rewards)
    assert v.correct == reference(nums, target, text)


latexish = st.one_of(
    st.text(alphabet="0123456789+-*/^{}()[]\\$.,= abcxyzfrac sqrt boxed pi", max_size=60),
    st.builds("The answer is $\\boxed{{{}}}$".format, st.text(max_size=30)),
    st.builds("{}\n\n$${}$$".format, st.text(max_size=40), st.text(max_size=20)))


@given(latexish, st.sampled_from(["4", "\\frac{1}{2}", "3\\sqrt{2}", "x+1", "0.5"]))
@settings(FUZZ, max_examples=3_000 // SHARE)
def test_math_parser_and_verifier(text, gold):
    from reasonloop.envs.math import MathEnv
    env = MathEnv.__new__(MathEnv)          # verify needs no problems file
    with no_eval():
        v = env.verify(Problem("p", "test", "q", {"answer": gold}), text)
    assert isinstance(v.correct, bool) and v.steps == split_steps(text, "\n\n")
    assert not v.correct or v.answer is not None


def _latex(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"\\frac{{{q.numerator}}}{{{q.denominator}}}"


fractions = st.builds(Fraction, st.integers(-50, 50), st.integers(1, 12))
prose = st.text(alphabet="abcdefghij ,.\n", max_size=40)


@given(prose, fractions, fractions, st.booleans())
@settings(FUZZ, max_examples=600 // SHARE)
def test_math_verdict_is_the_value_of_the_last_boxed_answer(words, gold, said, decimal):
    """Correct iff the boxed value equals the gold one, compared here in exact fractions —
    written as an integer, a \\frac, or (when it has one) a finite decimal."""
    from reasonloop.envs.math import MathEnv
    env = MathEnv.__new__(MathEnv)
    shown = _latex(said)
    if decimal and said.denominator in (1, 2, 4, 5, 8, 10):
        shown = str(float(said))
    with no_eval():
        v = env.verify(Problem("p", "test", "q", {"answer": _latex(gold)}),
                       f"{words}\n\nSo the answer is $\\boxed{{{shown}}}$.")
    assert v.correct == (said == gold), (shown, _latex(gold))


FORBIDDEN = {"eval", "exec", "compile", "__import__", "sympify", "parse_expr", "parse_latex",
             "eval_expr"}
SAFE_METHOD = {"compile": {"re"}, "eval": None}   # re.compile; model.eval() / cfg.eval


def forbidden_uses(source: str) -> list[tuple[int, str]]:
    """Every way the source could reach an evaluator: a name, an attribute of builtins (or
    a sympy parser function on any object), getattr/subscript with the name as a string,
    an import of one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Name) and node.id in FORBIDDEN | {"__builtins__"}
                and isinstance(node.ctx, ast.Load)):          # not a field called `eval`
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if base in ("builtins", "__builtins__", "sympy") or node.attr not in SAFE_METHOD:
                found.append((node.lineno, f"{base}.{node.attr}"))
            elif SAFE_METHOD[node.attr] and base not in SAFE_METHOD[node.attr]:
                found.append((node.lineno, f"{base}.{node.attr}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "vars") and any(
                  isinstance(a, ast.Constant) and a.value in FORBIDDEN for a in node.args)):
            found.append((node.lineno, "getattr(..., name)"))
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
              and node.slice.value in FORBIDDEN):
            found.append((node.lineno, f"[{node.slice.value!r}]"))     # d["exec"]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name.split(".")[-1] in FORBIDDEN or alias.name == "builtins":
                    found.append((node.lineno, f"import {alias.name}"))
    return found


@pytest.mark.parametrize("code", [
    "eval(x)", "f = eval", "exec(x)", "compile(x, 'f', 'eval')", "__import__('os')",
    "import builtins\nbuiltins.eval(x)", "getattr(builtins, 'eval')(x)",
    "__builtins__['exec'](x)", "vars(builtins)['eval'](x)", "sympy.sympify(x)",
    "from sympy import sympify",
    "from sympy.parsing.sympy_parser import parse_expr", "sp.parse_expr(x)",
    "from sympy.parsing.latex import parse_latex", "ast.compile(x)",
])
def test_the_scan_finds_each_form(code):
    assert forbidden_uses(code), code


@pytest.mark.parametrize("code", ["model.eval()", "cfg.eval.k", "re.compile('x')",
                                  "from reasonloop.eval import report", "d = {'kind': 'eval'}",
                                  "class C:\n    eval: int = 1"])
def test_the_scan_lets_ordinary_code_pass(code):
    assert not forbidden_uses(code), code


def test_no_evaluator_is_reachable_from_the_product():
    found = [f"{f.relative_to(ROOT)}:{line} {what}"
             for d in ("reasonloop", "flows", "tasks") for f in sorted((ROOT / d).rglob("*.py"))
             for line, what in forbidden_uses(f.read_text())]
    assert not found, found
