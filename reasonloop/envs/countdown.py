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
from itertools import combinations_with_replacement
from math import comb

from reasonloop.envs.base import Problem, Verdict, read_jsonl
from reasonloop.envs.countdown_rules import (
    BACK_RE,
    CHECK_RE,
    STEP_RE,
    check,
    check_form,
    diagnose,
    format_prompt,
    format_step,
    moves,
    random_trajectory,
    reachable,
    reorder,
    solve,
    walk,
)
from reasonloop.envs.countdown_trace import (
    correction,
    dfs_trace,
    goal_trace,
    relabel_text,
    search_trace,
)
from reasonloop.errors import InputError

# the rules, re-exported: most callers know Countdown by this module
__all__ = ["BACK_RE", "CHECK_RE", "STEP_RE", "Countdown", "check", "diagnose", "format_prompt",
           "format_step", "load_problems", "moves", "random_trajectory", "reachable", "solve",
           "walk"]

MAX_FILE_NUMBERS = 5       # the oracle's reachable-set search stays fast up to 5 numbers
ENUMERATE_LIMIT = 50_000   # multisets; above this, problems are drawn at random
MAX_NUMBER = 10**6         # the largest number a problem may start with (file or generator)
MAX_TARGET = 10**7


def load_problems(path, split: str = "file") -> list[Problem]:
    """Countdown problems from a user's JSONL: one {"numbers": [..], "target": N} per line.
    Validated whole before anything runs; the first bad line is named with its number.
    Problems must be solvable (checked by the oracle), so accuracy has a ceiling of 100%."""
    out, seen = [], set()
    for where, row in read_jsonl(path):
        prob = problem_of(row, split, where)
        if prob.problem_id not in seen:
            seen.add(prob.problem_id)
            out.append(prob)
    if not out:
        raise InputError(f"{path}: no problems")
    return out


def problem_of(row: dict, split: str = "given", where: str | None = None) -> Problem:
    """`{"numbers": [..], "target": N}` → a problem, checked: the oracle must solve it.
    Errors name `where` (a file line) when given."""
    at = f"{where}: " if where else ""
    if not isinstance(row, dict) or set(row) - {"numbers", "target"}:
        raise InputError(f"{at}expected an object with 'numbers' and 'target' only")
    nums, target = row.get("numbers"), row.get("target")
    if (not isinstance(nums, list) or not 2 <= len(nums) <= MAX_FILE_NUMBERS
            or not all(type(x) is int and 1 <= x <= MAX_NUMBER for x in nums)):
        raise InputError(f"{at}'numbers' must be a list of 2 to {MAX_FILE_NUMBERS} "
                         f"integers in 1..1000000 (got {nums!r})")
    if type(target) is not int or not 0 <= target <= MAX_TARGET:
        raise InputError(f"{at}'target' must be an integer in 0..10000000 "
                         f"(got {target!r})")
    if target not in reachable(tuple(sorted(nums))):
        raise InputError(f"{at}{nums} cannot reach {target} (not solvable)")
    return Countdown._problem((tuple(nums), target), split)


def _example(nums, target: int, lines: list[str]) -> dict:
    """One warm-up example: the problem's prompt, the play's lines as the completion."""
    return {"prompt": format_prompt(nums, target), "completion": "\n".join(lines) + "\n"}


_SPACES: dict[str, list] = {}     # the last config's problem space (deterministic from it)


class Countdown:
    """Deterministic problem sets from a seed; train/val share targets, test holds some out."""

    name = "countdown"
    step_sep = "\n"              # one equation per line
    warmup_kinds = ("plays", "goal_plays", "traces", "goal_traces", "dfs_traces")

    def __init__(self, cfg):
        self.cfg = cfg
        rng = random.Random(cfg.seed)
        targets = list(range(cfg.target_min, cfg.target_max + 1))
        n_test = max(1, round(len(targets) * cfg.test_target_fraction))
        self.test_targets = frozenset(rng.sample(targets, n_test))
        self.train_targets = frozenset(t for t in targets if t not in self.test_targets)
        self._val: frozenset[str] | None = None      # val problem ids, once needed

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
        key = c.model_dump_json()       # drawing the space is ~70 s on 4 × 1–99: once a process
        space = _SPACES.get(key)
        if space is None:
            space = self._space(random.Random(c.seed + 1))
            _SPACES.clear()
            _SPACES[key] = space
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

    def problem_from(self, row: dict) -> Problem:
        return problem_of(row)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return check(tuple(problem.meta["numbers"]), problem.meta["target"], completion)

    def warmup_examples(self, n: int, seed: int, kind: str = "plays",
                        backtracks: int = 1, retries: float = 0.0) -> list[dict]:
        """Policy-initialization data. `plays`: random legal plays with an unrelated
        (solvable) target — format and arithmetic, not how to win. `goal_plays`: the same
        plays, each shown with the value it reached as its target (hindsight at init: a
        random play is a true solution of that problem), kept only where that value is a
        training target and the problem is not a val one — format, arithmetic *and* aiming,
        with no solver. `traces`: search traces on training targets (countdown_trace) —
        attempts, checks, dead ends, backtracking. `goal_traces`: traces whose solution path
        is a goal play (hindsight for traces). `dfs_traces`: a systematic search, with a
        `retries` share of its solving branches first missing (countdown_trace.dfs_trace).
        No kind holds a val problem."""
        rng = random.Random(seed)
        if kind in ("goal_plays", "goal_traces"):
            held, out = self._val_ids(), []
            while len(out) < n:
                if (ex := self._goal_play(rng, held, kind, backtracks)) is not None:
                    out.append(ex)
            return out
        held, out = self._val_ids(), []
        while len(out) < n:       # one draw, then its play or trace; never a val problem
            if (drawn := self._draw(rng, self.train_targets)) is None:
                continue
            nums, t = drawn
            if self._problem(drawn, "train").problem_id in held:
                continue
            if kind == "dfs_traces":
                lines = dfs_trace(nums, t, retries=retries, rng=rng)
                if self._checks_test_target(lines):
                    continue
            elif kind == "traces":
                lines = search_trace(nums, t, rng, backtracks)
            else:
                lines = random_trajectory(nums, rng)
            out.append(_example(nums, t, lines))
        return out

    def _goal_play(self, rng, held: frozenset[str], kind: str = "goal_plays",
                   backtracks: int = 1) -> dict | None:
        """A random legal play on random numbers, shown with the value it reached as target
        (as a trace with dead ends for `goal_traces`); None when that value is not a
        training target, the problem is a val one, or a dead end ends on a test target."""
        c = self.cfg
        nums = tuple(rng.randint(c.number_min, c.number_max) for _ in range(c.n_numbers))
        if kind == "goal_traces":
            t, lines = goal_trace(nums, rng, backtracks)
            if self._checks_test_target(lines):
                return None
        else:
            lines = random_trajectory(nums, rng)
            t = int(STEP_RE.match(lines[-1]).group(4))     # the value the play reached
        if t not in self.train_targets or self._problem((nums, t), "train").problem_id in held:
            return None
        return _example(nums, t, lines)

    def _checks_test_target(self, lines: list[str]) -> bool:
        """A check on a test target's value ("15 not 40" with 15 held out) would teach that a
        held-out target is never ok: init data leaves such traces out."""
        return any((found := check_form(x)) and set(found[1]) & self.test_targets
                   for x in lines)

    def _val_ids(self) -> frozenset[str]:
        """The val problems' ids: init data must not hold them (test has unseen targets)."""
        if self._val is None:
            self._val = frozenset(p.problem_id for p in self.problems() if p.split == "val")
        return self._val

    def augment(self, prompt: str, completion: str, rng: random.Random) -> tuple[str, str]:
        """A variant of a BC example for `learn.augment`: its numbers shuffled."""
        return reorder(prompt, rng), completion

    def feedback(self, problem: Problem, completion: str) -> str | None:
        return diagnose(tuple(problem.meta["numbers"]), problem.meta["target"], completion)

    def correct(self, problem: Problem, completion: str) -> str | None:
        """The oracle's repair of a wrong completion (`countdown_trace.correction`), for
        `filter.corrections` and `learn.dpo.correction_pairs_per_problem`. None where the
        repair would check a held-out target (init data leaves those out too)."""
        lines = correction(tuple(problem.meta["numbers"]), problem.meta["target"], completion)
        if not lines or self._checks_test_target(lines):
            return None
        return "\n".join(lines) + "\n"

    def relabel(self, problem: Problem, completion: str, verdict: Verdict,
                exclude: frozenset[str] = frozenset()) -> tuple[Problem, str] | None:
        """Hindsight: a miss is a correct solution of the problem with the value it reached
        (its legal prefix up to its last leaf; a trace's checks retargeted) — if that value
        is a *training* target (test targets stay unseen) and the new problem is not in
        `exclude` (val/test problems must not leak into training). (problem, completion)."""
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
