import random

import polars as pl

from reasonloop import filter as filt
from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown
from reasonloop.envs.countdown_rules import random_trajectory, reachable, walk


def walk_state(nums, target, line):
    """The numbers left after one step line."""
    return next(walk(nums, target, [line]))[1].elements()


def _search(rows):
    return pl.DataFrame(rows, schema={"problem_id": pl.String, "text": pl.String,
                                      "correct": pl.Boolean, "legal": pl.Boolean},
                        orient="row")


def test_d_expert_correct_deduped_capped():
    rows = [("a", "x", True, True)] * 3 + [("a", f"y{i}", True, True) for i in range(5)] + \
           [("a", "bad", False, True), ("b", "z", True, True), ("c", "w", False, False)]
    out = filt.d_expert(_search(rows), {"a": "A>", "b": "B>", "c": "C>"}, max_per_problem=3)
    assert out.filter(pl.col("problem_id") == "a").height == 3
    assert out.filter(pl.col("problem_id") == "b")["completion"].to_list() == ["z"]
    assert "bad" not in out["completion"].to_list() and "c" not in out["problem_id"].to_list()
    assert out.unique(["problem_id", "completion"]).height == out.height
    assert set(out["prompt"]) == {"A>", "B>"}


def test_hindsight_rows_verify_on_their_new_problem():
    env = Countdown(EnvConfig(n_train=200))
    p = next(p for p in env.problems() if p.split == "train")
    n = p.meta["numbers"]
    texts = [f"{n[0]}+{n[1]}={n[0] + n[1]} [{n[2]} {n[0] + n[1]}]\n"
             f"{n[0] + n[1]}+{n[2]}={sum(n)} [{sum(n)}]\n",
             f"{n[0]}*{n[1]}={n[0] * n[1]} [{n[2]} {n[0] * n[1]}]\n"
             f"{n[0] * n[1]}*{n[2]}={n[0] * n[1] * n[2]} [{n[0] * n[1] * n[2]}]\n"]
    rows = [(p.problem_id, t, env.verify(p, t).correct, env.verify(p, t).legal) for t in texts]
    out = filt.hindsight(env, _search(rows), {p.problem_id: p}, 100, 4)
    for r in out.iter_rows(named=True):
        from tests.unit.test_countdown import parse_prompt
        nums, t = parse_prompt(r["prompt"])
        assert t in env.train_targets and env.verify(
            env._problem((nums, t), "train"), r["completion"]).correct


def test_dpo_pairs_same_problem():
    rows = [("a", "good", True, True), ("a", "bad", False, True), ("b", "only", True, True)]
    pairs = filt.dpo_pairs(_search(rows), {"a": "A>", "b": "B>"})
    assert pairs.to_dicts() == [{"problem_id": "a", "prompt": "A>", "chosen": "good",
                                 "rejected": "bad", "kind": "outcome"}]


def test_hindsight_never_relabels_into_val_or_test():
    env = Countdown(EnvConfig(n_train=20000))
    problems = {p.problem_id: p for p in env.problems()}
    val = next(p for p in problems.values() if p.split == "val")
    nums, target = val.meta["numbers"], val.meta["target"]
    from reasonloop.envs.countdown import solve
    text = "\n".join(solve(tuple(nums), target)) + "\n"
    # the same numbers with another target: a legal miss that reaches the val problem's target
    other = next(p for p in problems.values() if p.split == "train"
                 and sorted(p.meta["numbers"]) == sorted(nums) and p.meta["target"] != target)
    d = _search([(other.problem_id, text, False, True)])
    assert env.verify(other, text).legal and not env.verify(other, text).correct
    assert filt.hindsight(env, d, problems, 100, 4).height == 0


def test_corrections_repair_failed_problems_and_pair_at_the_line_that_went_wrong():
    """The env's repair of a wrong sample verifies; a trace is repaired by the reference
    search it left, a direct answer keeps its legal steps while the target stays reachable;
    a correction pair's prompt holds exactly the lines the two share, so prompt + chosen is
    the repair and prompt + rejected the sample."""
    from reasonloop.envs.countdown_trace import dfs_trace
    env = Countdown(EnvConfig(n_train=2000))
    probs = {p.problem_id: p for p in env.problems() if p.split == "train"}
    rows, wrong = [], {}
    for p in list(probs.values())[:60]:
        nums, t = p.meta["numbers"], p.meta["target"]
        ref = dfs_trace(nums, t)
        assert env.correct(p, "\n".join(ref) + "\n") is None   # a correct text: no repair
        if len(ref) < 3 or env._checks_test_target(ref):
            continue
        # leaves the reference at its second line; a `back` marks it as a search trace
        bad = f"{ref[0]}\n1+1=3 [3]\nback [{' '.join(map(str, nums))}]\n"
        rows.append((p.problem_id, bad, False, False))
        wrong[p.problem_id] = (bad, "\n".join(ref) + "\n", ref[0] + "\n")
    assert len(wrong) >= 10
    d = _search(rows)
    bc = filt.corrections(env, d, probs, max_n=5)
    assert bc.height == 5 and set(bc["source"]) == {"correction"}
    for r in bc.iter_rows(named=True):
        assert r["completion"] == wrong[r["problem_id"]][1]
        assert env.verify(probs[r["problem_id"]], r["completion"]).correct
    pairs = filt.correction_pairs(env, d, probs, per_problem=1)
    assert pairs.height == len(wrong) and set(pairs["kind"]) == {"correction"}
    for r in pairs.iter_rows(named=True):
        p = probs[r["problem_id"]]
        bad, fixed, shared = wrong[r["problem_id"]]
        assert r["prompt"] == p.prompt + shared
        assert r["prompt"] + r["chosen"] == p.prompt + fixed
        assert r["prompt"] + r["rejected"] == p.prompt + bad
    assert filt.corrections(env, d, probs, max_n=0).is_empty()
    repaired = filt.repairs(env, d, probs)    # asked once, shared by both: the same rows
    assert filt.corrections(env, d, probs, max_n=5, repaired=repaired).equals(bc)
    assert filt.correction_pairs(env, d, probs, per_problem=1, repaired=repaired).equals(pairs)
    # a direct answer: its first step kept while the target is reachable, the rest solved
    rng = random.Random(0)
    for p in rng.sample(list(probs.values()), 200):
        nums, t = p.meta["numbers"], p.meta["target"]
        play = random_trajectory(nums, rng)
        text = "\n".join(play) + "\n"
        fixed = env.correct(p, text)
        if env.verify(p, text).correct:
            assert fixed is None
            continue
        assert fixed is not None and env.verify(p, fixed).correct
        first = tuple(sorted(walk_state(nums, t, play[0])))
        assert fixed.startswith(play[0] + "\n") == (t in reachable(first))
