import polars as pl

from reasonloop import filter as filt
from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown


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
