"""Search traces for Countdown: the policy-initialization data that teaches a search *in the
policy's own output* (Stream of Search, Gandhi et al. 2024; the roadmap's human-like
reasoning behaviours). A symbolic searcher writes what it does as text the verifier reads
(`countdown_rules.walk`): attempts, its own check of each result against the target, dead
ends, backtracking to a state it names, and the solution.

    13 14 2>40             the prompt
    13*14=182 [2 182]      an attempt (a dead end: 40 is out of reach from [2 182])
    2+182=184 [184]        every line of a dead end is legal; it plays to a wrong result
    184 not 40             the check: a miss
    back [13 14 2]         back to a state that appeared earlier
    13*2=26 [14 26]        the next attempt
    14+26=40 [40]
    40 ok                  the check: solved

`backtracks` is the knob: each trace explores k dead ends, k drawn uniformly from
0..backtracks (0: optimal, direct searches; mixing optimal and sub-optimal as SoS did). A
dead end leaves the solution path at a random depth and returns to where it left.
"""

from __future__ import annotations

import random
from collections import Counter

from reasonloop.envs.base import split_steps
from reasonloop.envs.countdown_rules import (
    STEP_RE,
    apply,
    check,
    check_form,
    check_line,
    format_step,
    moves,
    play,
    reachable,
    solve,
    walk,
)


def _show(state) -> str:
    return " ".join(map(str, state))


def _dead_end(state: tuple[int, ...], target: int, avoid: set, rng) -> list[str] | None:
    """A branch off `state` that plays to a wrong leaf: a first step to numbers not in
    `avoid` (the solution's next state, branches tried before), then random steps that keep
    some non-target leaf in reach; its lines and the check."""
    firsts = [m for m in moves(state) if m[4] not in avoid and reachable(m[4]) - {target}]
    if not firsts:
        return None
    lines, (a, op, b, c, first) = [], rng.choice(firsts)
    avoid.add(first)
    while True:
        state = play(state, a, b, c)
        lines.append(format_step(a, op, b, c, state))
        if len(state) == 1:
            return lines + [f"{state[0]} not {target}"]
        a, op, b, c, _ = rng.choice([m for m in moves(state) if reachable(m[4]) - {target}])


def search_trace(numbers, target: int, rng: random.Random, backtracks: int) -> list[str]:
    """The lines of one trace that ends solved (the problem must be solvable)."""
    state = tuple(numbers)
    if target not in reachable(tuple(sorted(state))):
        raise ValueError(f"{list(numbers)} cannot reach {target}")
    path, _ = _path(state, rng, lambda m: target in reachable(m[4]))
    return _trace(numbers, target, path, rng, backtracks)


def goal_trace(numbers, rng: random.Random, backtracks: int) -> tuple[int, list[str]]:
    """Hindsight for traces: a uniformly random play is the solution path and the value it
    reaches the target, with dead ends off it as in `search_trace` — unlimited true traces
    with no solver. Its last attempt aims exactly as a goal play does, and its dead ends
    end on a number that is not the target, so the last step's result must be worked out,
    not copied from the prompt. (target, lines)."""
    path, target = _path(tuple(numbers), rng, lambda m: True)
    return target, _trace(numbers, target, path, rng, backtracks)


def _path(state: tuple[int, ...], rng, keep) -> tuple[list[tuple], int]:
    """A play to the end, each step drawn uniformly from the moves `keep` allows: its steps
    (a, op, b, c) and the value it reaches."""
    path = []
    while len(state) > 1:
        a, op, b, c, _ = rng.choice([m for m in moves(state) if keep(m)])
        path.append((a, op, b, c))
        state = play(state, a, b, c)
    return path, state[0]


def _trace(numbers, target: int, path, rng, backtracks: int) -> list[str]:
    """The solution `path` (steps a, op, b, c) written out, with k ∈ 0..backtracks dead ends
    leaving it at random depths, each closed by its check and a `back` to where it left."""
    state = tuple(numbers)
    at_depth = Counter(rng.randrange(len(path)) for _ in range(rng.randint(0, backtracks)))
    lines = []
    for depth, (a, op, b, c) in enumerate(path):
        nxt = play(state, a, b, c)
        tried = {tuple(sorted(nxt))}
        for _ in range(at_depth[depth]):
            branch = _dead_end(state, target, tried, rng)
            if branch:
                lines += branch + [f"back [{_show(state)}]"]
        state = nxt
        lines.append(format_step(a, op, b, c, state))
    return lines + [f"{target} ok"]


def ordered_moves(state: tuple[int, ...]):
    """The legal steps from a state in the order a systematic search writes them: pairs in the
    order their numbers stand (first with second, first with third, ...), the larger number
    first, then + * − ÷; a step that repeats an earlier one (equal numbers) is skipped."""
    seen = set()
    for i in range(len(state)):
        for j in range(i + 1, len(state)):
            a, b = max(state[i], state[j]), min(state[i], state[j])
            for op in "+*-/":
                if (c := apply(a, op, b)) is not None and (a, op, b) not in seen:
                    seen.add((a, op, b))
                    yield a, op, b, c, play(state, a, b, c)


def dfs_trace(numbers, target: int, form: str = "diff", retries: float = 0.0,
              rng: random.Random | None = None) -> list[str]:
    """A systematic depth-first search written out (the `dfs_traces` init data): the first
    steps in `ordered_moves` order; from two numbers, the one last step whose result is
    closest to the target, then its check; after a miss, `back` to the state the branch
    left. Deterministic when `retries` is 0, so every branch tried and its order follow from
    the prompt: the policy learns a procedure whose only target-dependent choice is the
    closest last step, not a guess of which first step wins. Checks spell the difference
    (`57-51=6 no`; `form`: see `check_line`): with `57 not 51` or `57 vs 51 no` the policy
    called near misses ok. The problem must be solvable.

    `retries`: the chance that a branch holding the solution first writes its closest
    *miss*, checks it, goes `back` to its two numbers and then writes the solution. Without
    it the check's verdict is predictable from the choice of last step alone (the closest
    leaf is the target iff the branch solves), so a policy can learn "I aimed, so ok" and
    not read the result it wrote; a retry also shows how to recover from a wrong last step."""
    if target not in reachable(tuple(sorted(numbers))):
        raise ValueError(f"{list(numbers)} cannot reach {target}")
    if retries and rng is None:
        raise ValueError("retries need an rng")
    lines: list[str] = []
    _dfs(tuple(numbers), target, lines, form, retries, rng)
    return lines


def _dfs(state: tuple[int, ...], target: int, lines: list[str], form: str,
         retries: float, rng) -> bool:
    if len(state) == 2:
        leaves = sorted(ordered_moves(state), key=lambda m: abs(m[3] - target))
        a, op, b, c, nxt = leaves[0]
        misses = [m for m in leaves if m[3] != target]
        if c == target and misses and retries and rng.random() < retries:
            x, xop, y, z, znxt = misses[0]
            lines += [format_step(x, xop, y, z, znxt), check_line(z, target, form),
                      f"back [{_show(state)}]"]
        lines += [format_step(a, op, b, c, nxt), check_line(c, target, form)]
        return c == target
    for a, op, b, c, nxt in ordered_moves(state):
        lines.append(format_step(a, op, b, c, nxt))
        if _dfs(nxt, target, lines, form, retries, rng):
            return True
        lines.append(f"back [{_show(state)}]")
    return False


def departure(numbers, target: int, completion: str, form: str = "diff") -> str | None:
    """Where a wrong output of a policy taught `dfs_trace` first leaves the reference search,
    in words; None when the output is correct (even if it searched otherwise). What to fix
    next follows from it: arithmetic (a `wrong` step or check: a line the verifier rejects)
    or the procedure (`another` step: legal, but not the one the search writes there)."""
    if check(numbers, target, completion).correct:
        return None
    got = split_steps(completion)
    ref = dfs_trace(numbers, target, form) if target in reachable(
        tuple(sorted(numbers))) else []
    i = next((k for k, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
    if i >= len(got):
        return "stopped"
    walked = list(walk(numbers, target, got[:i + 1]))
    before = walked[i - 1][1] if i else Counter(numbers)
    kind, _, error = walked[i]
    if kind == "check":
        return "wrong check" if error else "another check"
    if kind == "back":
        return "wrong back" if error else "another back"
    if STEP_RE.match(got[i]) is None:
        return "malformed line"
    level = "last step" if sum(before.values()) == 2 else "earlier step"
    return f"wrong {level}" if error else f"another {level}"


def correction(numbers, target: int, completion: str, form: str = "diff") -> list[str] | None:
    """The oracle's repair of a wrong output, to learn from the policy's failures (STaR's
    rationalization with the env's own searcher as the hint; the corrected step of Step-DPO).
    A search trace (it writes a check or a `back`) is repaired by the reference search: a
    policy taught `dfs_trace` writes its lines until it leaves it, so the two share that
    prefix. A direct answer keeps its legal steps while the target stays reachable and the
    solver finishes from there. None: the output is correct or the problem has no solution."""
    if target not in reachable(tuple(sorted(numbers))) or check(numbers, target,
                                                                completion).correct:
        return None
    steps = split_steps(completion)
    if any(check_form(x) or x.startswith("back [") for x in steps):
        return dfs_trace(numbers, target, form)
    kept, state = [], tuple(numbers)
    for kind, after, error in walk(numbers, target, steps):
        left = tuple(sorted(after.elements()))
        if kind != "step" or error is not None or target not in reachable(left):
            break
        kept.append(steps[len(kept)])
        state = left
    return kept + (solve(state, target) or [])


def count_backtracks(completion: str) -> int:
    return sum(line.startswith("back [") for line in split_steps(completion))


def relabel_text(numbers, target: int, completion: str) -> tuple[int, str] | None:
    """Hindsight on a text whose steps are all legal (a false check or `back` may follow):
    its prefix up to the last leaf it reached is a correct trace for that leaf's value, once
    the checks name the new target — e.g. "3*5=15 [15]\n15 ok" for target 12 is a true
    trace for 15.
    The prefix is cut at the *first* leaf with that value, so no check before it says
    "not the target". (new target, new text), or None when no leaf was reached legally."""
    steps = split_steps(completion)
    leaves: list[tuple[int, int]] = []              # (line index, value)
    for i, (kind, state, error) in enumerate(walk(numbers, target, steps)):
        if error is not None and kind == "step":   # a wrong step: nothing here is a solution
            return None
        if error is not None:                      # a false check or back: cut before it
            break
        if kind == "step" and sum(state.values()) == 1:
            leaves.append((i, next(iter(state))))
    if not leaves:
        return None
    new = leaves[-1][1]
    cut = next(i for i, v in leaves if v == new)
    out = [_retarget(line, target, new) for line in steps[:cut + 1]]
    if cut + 1 < len(steps) and (found := check_form(steps[cut + 1])):
        out.append(check_line(new, new, found[0]))
    return new, "\n".join(out) + "\n"


def _retarget(line: str, old: int, new: int) -> str:
    """A check before the cut (a true one), naming the new target in the form it was
    written in; a difference's leaf is the operand that is not the old target."""
    if (found := check_form(line)) is None:
        return line
    form, nums = found
    leaf = sum(nums) - old if form == "diff" else nums[0]
    return check_line(leaf, new, form)
