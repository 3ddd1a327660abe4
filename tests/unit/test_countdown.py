import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonloop.config import EnvConfig
from reasonloop.envs import countdown
from reasonloop.envs.countdown import (
    Countdown,
    check,
    format_prompt,
    random_trajectory,
    reachable,
    solve,
)
from tests.countdown_reference import parse_prompt, reference

numbers = st.lists(st.integers(1, 30), min_size=2, max_size=4)


def test_generator_is_deterministic_and_only_solvable():
    cfg = EnvConfig(n_train=500, n_val=50, n_test=50)
    a = Countdown(cfg).problems()
    countdown._SPACES.clear()                       # draw again, not from the process cache
    b = Countdown(cfg).problems()
    assert [p.problem_id for p in a] == [p.problem_id for p in b]
    for p in a:
        nums, t = p.meta["numbers"], p.meta["target"]
        assert len(nums) == 3 and all(1 <= n <= 20 for n in nums) and 10 <= t <= 100
        lines = solve(tuple(nums), t)
        assert lines is not None and check(nums, t, "\n".join(lines)).correct


def test_splits_test_targets_held_out_val_disjoint():
    env = Countdown(EnvConfig(n_train=2000, n_val=100, n_test=100))
    ps = env.problems()
    by = {s: [p for p in ps if p.split == s] for s in ("train", "val", "test")}
    assert len(by["val"]) == 100 and len(by["test"]) == 100
    train_targets = {p.meta["target"] for p in by["train"]}
    assert all(p.meta["target"] in env.test_targets for p in by["test"])
    assert not train_targets & {p.meta["target"] for p in by["test"]}
    assert {p.meta["target"] for p in by["val"]} <= env.train_targets
    assert not {p.problem_id for p in by["val"]} & {p.problem_id for p in by["train"]}
    assert Countdown(EnvConfig(seed=1)).test_targets != env.test_targets


def test_problem_space_is_drawn_once_per_config(monkeypatch):
    """Policy init asks for the val ids after the flow loaded the problems: on 4 × 1–99 a
    second draw cost ~70 s. Same config → one draw; another config → its own."""
    calls = []
    real = Countdown._space
    monkeypatch.setattr(Countdown, "_space", lambda self, rng: calls.append(1) or real(self, rng))
    countdown._SPACES.clear()
    cfg = EnvConfig(n_train=300, n_val=30, n_test=30)
    first = [p.problem_id for p in Countdown(cfg).problems()]
    assert [p.problem_id for p in Countdown(cfg).problems()] == first and len(calls) == 1
    other = [p.problem_id for p in Countdown(EnvConfig(seed=3, n_train=300)).problems()]
    assert len(calls) == 2 and other != first


def test_different_seed_different_problems():
    a = Countdown(EnvConfig(seed=0, n_train=100)).problems()
    b = Countdown(EnvConfig(seed=1, n_train=100)).problems()
    assert [p.problem_id for p in a] != [p.problem_id for p in b]


@given(numbers, st.integers(0, 10_000))
@settings(max_examples=200, deadline=None)
def test_random_legal_play_verifies_legal_and_reaches_its_value(nums, seed):
    lines = random_trajectory(nums, random.Random(seed))
    v = check(nums, 10**9, "\n".join(lines))
    assert v.legal and not v.correct and len(v.steps) == len(nums) - 1
    reached = int(v.answer)
    assert reached in reachable(tuple(sorted(nums)))
    assert check(nums, reached, "\n".join(lines) + "\n").correct
    assert check(nums, reached, "\n".join(lines)).step_rewards == [1.0] * len(lines)


@given(numbers, st.integers(0, 10_000), st.data())
@settings(max_examples=200, deadline=None)
def test_corrupting_a_result_makes_it_illegal(nums, seed, data):
    lines = random_trajectory(nums, random.Random(seed))
    i = data.draw(st.integers(0, len(lines) - 1))
    lhs, rhs = lines[i].split("=")
    val, rest = rhs.split(" ", 1)
    lines[i] = f"{lhs}={int(val) + data.draw(st.integers(1, 50))} {rest}"
    v = check(nums, 10, "\n".join(lines))
    assert not v.legal and not v.correct
    assert v.step_rewards[i:] == [0.0] * (len(lines) - i)


@given(st.text(alphabet="0123456789+-*/=[] \nx()", max_size=80), numbers, st.integers(1, 100))
@settings(max_examples=300, deadline=None)
def test_parser_never_crashes_and_garbage_is_not_correct(text, nums, target):
    v = check(nums, target, text)
    assert len(v.step_rewards) == len(v.steps)
    assert v.correct == reference(nums, target, text)


def test_step_labels_follow_reachability():
    # 3 5 7 > 22: 3*5=15 [7 15] keeps 22 reachable (15+7); 3+5=8 [7 8] does not (8*7=56...)
    good = check([3, 5, 7], 22, "3*5=15 [7 15]\n15+7=22 [22]\n")
    assert good.correct and good.step_rewards == [1.0, 1.0]
    bad = check([3, 5, 7], 22, "3+5=8 [7 8]\n8+7=15 [15]\n")
    assert not bad.correct and bad.legal and bad.step_rewards == [0.0, 0.0]
    assert 22 not in reachable((7, 8))


def test_rules_no_negative_no_fraction_no_reuse():
    assert not check([3, 5], 2, "3-5=-2 [-2]").legal          # negatives do not parse
    assert not check([3, 5], 2, "3/5=0 [0]").legal            # inexact division
    assert check([6, 3], 2, "6/3=2 [2]").correct
    assert not check([3, 5], 6, "3+3=6 [6]").legal            # 3 used twice
    assert not check([3, 5], 8, "3+5=8 [8 5]").legal          # wrong remaining list
    assert not check([3, 5], 8, "3+5=8 [8]\n8+0=8 [8]").legal  # extra steps
    assert not check([3, 5, 2], 8, "3+5=8 [2 8]").correct      # not finished


def test_prompt_roundtrip():
    assert parse_prompt(format_prompt((12, 5, 3), 51)) == ((12, 5, 3), 51)


def test_hindsight_relabels_only_to_train_targets():
    env = Countdown(EnvConfig())
    p = next(p for p in env.problems() if p.split == "train")
    rng = random.Random(0)
    seen_test = seen_train = 0
    for _ in range(300):
        text = "\n".join(random_trajectory(p.meta["numbers"], rng)) + "\n"
        v = env.verify(p, text)
        found = env.relabel(p, text, v)
        if found is None:
            seen_test += v.correct or int(v.answer) not in env.train_targets
            continue
        seen_train += 1
        new, relabelled = found
        assert relabelled == text and new.meta["target"] in env.train_targets
        assert env.verify(new, text).correct
    assert seen_train > 0


def test_goal_plays_are_true_solutions_of_train_targets_never_val_or_test():
    """Hindsight at init: each play is shown with the value it reached as target; the
    reference checker (independent of the env's) agrees every one is solved, no target is a
    test target, no problem is a val problem, and the targets are not one value."""
    env = Countdown(EnvConfig(n_val=300))
    val = {p.problem_id for p in env.problems() if p.split == "val"}
    ex = env.warmup_examples(3000, seed=4, kind="goal_plays")
    assert ex == env.warmup_examples(3000, seed=4, kind="goal_plays")
    targets = set()
    for e in ex:
        nums, t = parse_prompt(e["prompt"])
        assert reference(nums, t, e["completion"])
        assert t in env.train_targets and t not in env.test_targets
        assert f"cd-{'-'.join(map(str, sorted(nums)))}-{t}" not in val
        targets.add(t)
    assert len(targets) > 40
    plays = env.warmup_examples(3000, seed=4)       # plain plays mostly miss their target
    assert sum(reference(*parse_prompt(e["prompt"]), e["completion"]) for e in plays) < 600


@pytest.mark.parametrize("kind", Countdown.warmup_kinds)
def test_no_kind_of_init_data_holds_a_val_problem(kind):
    """Val is seen targets on problems disjoint from train: init data that held a val problem
    (traces once drew theirs from every training-target problem) would inflate val pass@1."""
    env = Countdown(EnvConfig(n_val=2000))        # ~15% of the 3 × 1–20 problems: hits show
    val = {p.problem_id for p in env.problems() if p.split == "val"}
    ex = env.warmup_examples(1500, seed=5, kind=kind)
    ids = {f"cd-{'-'.join(map(str, sorted(n)))}-{t}" for n, t in
           (parse_prompt(e["prompt"]) for e in ex)}
    assert len(ids) > 500 and not ids & val


def test_augment_reorders_numbers_and_every_solution_still_verifies():
    from reasonloop.envs.base import Problem
    env = Countdown(EnvConfig(n_train=200, n_val=10, n_test=10))
    rng, orders = random.Random(0), set()
    for p in env.problems()[:200]:
        sol = "\n".join(solve(tuple(p.meta["numbers"]), p.meta["target"])) + "\n"
        prompt, completion = env.augment(p.prompt, sol, rng)
        assert completion == sol
        nums, target = prompt[:-1].split(">")
        assert sorted(map(int, nums.split())) == sorted(p.meta["numbers"])
        assert int(target) == p.meta["target"]
        q = Problem(p.problem_id, "train", prompt, {"numbers": [int(x) for x in nums.split()],
                                                    "target": int(target)})
        assert env.verify(q, sol).correct
        orders.add(prompt != p.prompt)
    assert orders == {True, False}          # some orders change, not all (3! = 6 orders)
    assert env.augment("no prompt>\n", "x\n", rng) == ("no prompt>\n", "x\n")


def test_bc_data_holds_k_reordered_variants_of_each_d_expert_example(tmp_path):
    """`learn.augment: K` → the iteration's BC data is D_expert (this iteration's and the
    replayed one's) plus K reorderings of each, all true; other envs must have augment()."""
    import polars as pl

    from reasonloop.config import load_config
    from reasonloop.stages.train import training_examples
    from reasonloop.workspace import Iteration
    cfg = load_config(None, [f"run.root={tmp_path}", "learn.augment=2",
                             "learn.replay_iterations=1", "env.n_train=200", "env.n_val=10",
                             "env.n_test=10"])
    env = Countdown(cfg.env)
    probs = [p for p in env.problems() if p.split == "train"]
    for i, chunk in ((1, probs[:30]), (2, probs[30:50])):
        it = Iteration(cfg, "r", i)
        it.d_expert.parent.mkdir(parents=True)
        pl.DataFrame({"problem_id": [p.problem_id for p in chunk],
                      "prompt": [p.prompt for p in chunk],
                      "completion": ["\n".join(solve(tuple(p.meta["numbers"]),
                                                     p.meta["target"])) + "\n"
                                     for p in chunk]}).write_parquet(it.d_expert)
    ex = training_examples(Iteration(cfg, "r", 2))
    assert len(ex) == 3 * 50
    by_key = {tuple(sorted(p.meta["numbers"])) + (p.meta["target"],): p for p in probs[:50]}
    moved = 0
    for e in ex:
        nums, target = e["prompt"][:-1].split(">")
        p = by_key[tuple(sorted(map(int, nums.split()))) + (int(target),)]
        assert check(tuple(map(int, nums.split())), int(target), e["completion"]).correct
        moved += e["prompt"] != p.prompt
    assert moved > 40                  # most variants show another order (5 of 6 orders)
