"""Every search method: budgets respected, tokens add up, seeded determinism, and the
method-specific promises (beam prunes by the PRM, MCTS visits = budget, revision prompts
carry the verifier's feedback)."""

from collections import defaultdict
from typing import get_args

import pytest

from reasonloop.config import TEST_TIME_METHODS, EnvConfig
from reasonloop.envs.countdown import Countdown
from reasonloop.policy.engines import SamplingParams
from reasonloop.reward.process import oracle_prm
from reasonloop.search.aggregate import majority, select, weighted
from reasonloop.search.base import SearchSpec, share
from reasonloop.search.methods import SEARCH, TEST_TIME
from tests.unit.test_search import RandomLegalPolicy

ENV = Countdown(EnvConfig(n_train=300))
TRAIN = [p for p in ENV.problems() if p.split == "train"][:40]


def spec(**kw):
    return SearchSpec(prm=oracle_prm(ENV), orm=lambda p, t: ENV.verify(p, t).correct,
                      feedback=ENV.feedback, **kw)


class Counting:
    """Wraps an engine; charges every generated token to the problem whose prompt it
    continued, and records each call's (prompt count, n)."""

    def __init__(self, inner, problems):
        self.inner, self.heads = inner, {p.prompt: p.problem_id for p in problems}
        self.tokens, self.calls = defaultdict(int), []

    def sample(self, prompts, n, params, progress=False):
        outs = self.inner.sample(prompts, n, params)
        self.calls.append((len(prompts), n, prompts))
        for prompt, row in zip(prompts, outs):
            head = prompt.split("\n", 1)[0] + "\n"
            self.tokens[self.heads[head]] += sum(s.n_tokens for s in row)
        return outs


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    from reasonloop.policy.engines import load_engine
    return load_engine("lean", str(tiny_model_dir), seed=0)


@pytest.mark.parametrize("method", list(SEARCH))
@pytest.mark.parametrize("n", [1, 4, 8])
def test_tokens_add_up_and_seeded(method, n, tiny_engine):
    probs = TRAIN[:6]
    eng = Counting(tiny_engine, probs)
    params = SamplingParams(temperature=1.0, max_new_tokens=40, seed=3)
    rows = SEARCH[method](probs, eng, params, n, spec(width=2, expand=2, rounds=2))
    assert {r["problem_id"] for r in rows} == {p.problem_id for p in probs}
    per = defaultdict(int)
    for r in rows:
        per[r["problem_id"]] += r["n_tokens"]
        assert r["method"] == method
    assert dict(per) == dict(eng.tokens)          # rollouts and pruned steps included
    again = SEARCH[method](probs, tiny_engine, params, n, spec(width=2, expand=2, rounds=2))
    assert [(r["problem_id"], r["text"], r["n_tokens"]) for r in again] == \
        [(r["problem_id"], r["text"], r["n_tokens"]) for r in rows]
    if method == "best_of_n":
        assert len(rows) == n * len(probs)
    if method == "revise":                      # attempts per problem never exceed n
        counts = defaultdict(int)
        for r in rows:
            counts[r["problem_id"]] += 1
        assert max(counts.values()) <= n


@pytest.mark.parametrize("method", ["beam", "dvts"])
def test_step_search_spends_at_most_n_proposals_per_depth(method):
    eng = Counting(RandomLegalPolicy(), TRAIN)
    SEARCH[method](TRAIN, eng, SamplingParams(seed=0), 8, spec(width=2))
    for _n_prompts, n, prompts in eng.calls:
        per_problem = defaultdict(int)
        for pr in prompts:
            per_problem[pr.split("\n", 1)[0]] += n
        assert max(per_problem.values()) <= 8


@pytest.mark.parametrize("method", ["beam", "dvts"])
def test_oracle_beam_never_keeps_unsolvable_over_solvable(method):
    trace = []
    SEARCH[method](TRAIN, RandomLegalPolicy(), SamplingParams(seed=1), 16,
                   spec(width=4, trace=trace))
    assert trace
    pruned_bad = 0
    for t in trace:
        kept = {text for _, text in t["kept"]}
        dropped = [s for s, text in t["candidates"] if text not in kept]
        if dropped and t["kept"]:
            assert min(s for s, _ in t["kept"]) >= max(dropped), t
        pruned_bad += sum(1 for s in dropped if s == 0)
    assert pruned_bad > 0          # the PRM did prune something


def test_prm_choice_changes_beam():
    """The PRM is a parameter: an inverted PRM keeps the unsolvable prefixes instead."""
    inv = SearchSpec(prm=lambda p, t: [1.0 - r for r in ENV.verify(p, t).step_rewards])
    good = SEARCH["beam"](TRAIN, RandomLegalPolicy(), SamplingParams(seed=0), 8, spec(width=2))
    bad = SEARCH["beam"](TRAIN, RandomLegalPolicy(), SamplingParams(seed=0), 8, inv)
    solved = [sum(ENV.verify(p, r["text"]).correct for r in rows
                  for p in TRAIN if p.problem_id == r["problem_id"]) for rows in (good, bad)]
    assert solved[0] > solved[1] + 10


@pytest.mark.parametrize("n", [1, 5, 16])
def test_mcts_visits_sum_to_budget(n):
    trace = []
    rows = SEARCH["mcts"](TRAIN, RandomLegalPolicy(), SamplingParams(seed=0), n,
                          spec(expand=3, trace=trace))
    roots = [t for t in trace if t["method"] == "mcts"]
    assert len(roots) == len(TRAIN)
    for t in roots:
        assert t["root_visits"] == n
        # every simulation either expanded the root itself or went through one child
        assert sum(t["child_visits"]) + t["root_expansions"] == n
    if n >= 16:
        solved = {r["problem_id"] for r in rows
                  if ENV.verify(next(p for p in TRAIN if p.problem_id == r["problem_id"]),
                                r["text"]).correct}
        assert len(solved) > len(TRAIN) // 2


def test_mcts_rollout_values_and_token_budget():
    probs = TRAIN[:10]
    eng = Counting(RandomLegalPolicy(), probs)
    rows = SEARCH["mcts"](probs, eng, SamplingParams(seed=0), 12,
                          spec(expand=2, value="rollout", token_budget=60))
    per = defaultdict(int)
    for r in rows:
        per[r["problem_id"]] += r["n_tokens"]
    assert dict(per) == dict(eng.tokens)
    # the budget is checked before each simulation, so one simulation may overshoot it
    assert max(per.values()) < 60 + 4 * 40


def test_revision_prompts_carry_feedback():
    trace = []
    rows = SEARCH["revise"](TRAIN, RandomLegalPolicy(), SamplingParams(seed=0), 8,
                            spec(rounds=4, trace=trace))
    by_id = {p.problem_id: p for p in TRAIN}
    assert trace
    for t in trace:
        p = by_id[t["problem_id"]]
        assert t["prompt"].startswith(p.prompt) and "\nfix: " in t["prompt"]
        attempt = t["prompt"][len(p.prompt):].split("fix: ")[0]
        assert t["prompt"].endswith(f"fix: {ENV.feedback(p, attempt)}\n")
    # a chain stops at its first correct attempt
    chains = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["sample_idx"]):
        chains[(r["problem_id"], r["sample_idx"] // 4)].append(
            ENV.verify(by_id[r["problem_id"]], r["text"]).correct)
    assert all(not any(c[:-1]) for c in chains.values())


def test_feedback_messages():
    p = next(x for x in ENV.problems() if x.split == "train")
    nums, t = p.meta["numbers"], p.meta["target"]
    a, b, c = nums
    assert ENV.feedback(p, "") == "no steps"
    assert "is not of the form" in ENV.feedback(p, "hello\n")
    assert ENV.feedback(p, f"{a + b + c + 1}+{a}=1 [1]\n").endswith("which is not available")
    assert ENV.feedback(p, f"{a}+{b}={a + b + 1} [{c} {a + b + 1}]\n") == \
        f"step 1: {a}+{b} is {a + b} not {a + b + 1}"
    left = " ".join(map(str, sorted([c, a + b])))
    assert ENV.feedback(p, f"{a}+{b}={a + b} [{left}]\n") == \
        f"not finished: numbers left are [{left}]"
    sol = "\n".join(__import__("reasonloop.envs.countdown", fromlist=["solve"]).solve(
        tuple(nums), t)) + "\n"
    assert ENV.feedback(p, sol) is None
    from reasonloop.policy.tokenizer import CHARS
    msg = ENV.feedback(p, f"{a}*{b}={a * b} [{c} {a * b}]\n{a * b}+{c}={a * b + c} "
                          f"[{a * b + c}]\n")
    if a * b + c != t:
        assert msg == f"result {a * b + c} but target {t}"
    assert set(msg or "") <= set(CHARS)       # a char-level policy can read it


def test_selectors_are_deterministic():
    assert majority(["3", "4", "4", "3", None]) == "3"            # tie → first seen
    assert majority([None, None]) is None
    assert weighted(["3", "4", "4"], [0.9, 0.5, 0.5]) == "4"
    assert weighted(["3", "4"], [0.5, 0.5]) == "3"
    assert select("best", ["1", "2", "3"], [0.2, 0.9, 0.9]) == 1
    assert select("majority", [None, "5", "6", "6"], [0, 0, 0, 0]) == 2
    assert select("weighted", ["5", "6", "6"], [1.0, 0.4, 0.4]) == 0
    assert share(10, 3) == [4, 3, 3] and sum(share(7, 4)) == 7


@pytest.mark.parametrize("method", ["beam", "dvts", "mcts", "revise"])
def test_generate_stage_runs_any_method(method, smoke_cfg, tiny_model_dir):
    import polars as pl

    from reasonloop.stages.generate import generate_shard
    from reasonloop.stages.verify import verify
    from reasonloop.store import db
    from reasonloop.workspace import Iteration
    cfg = smoke_cfg.model_copy(update={"search": smoke_cfg.search.model_copy(update={
        "method": method, "n": 4, "problems_per_iteration": 6, "shards": 1})})
    it = Iteration(cfg, "r", 1)
    P = it.paths
    db.init_db(P.db)
    shard = generate_shard(it, str(tiny_model_dir), 0)
    out = shard.path
    assert shard.seconds > 0          # the stage reports its own sampling time
    df = pl.read_parquet(out)
    assert set(df["method"]) == {method} and df["problem_id"].n_unique() == 6
    res = verify(it, [out])
    eff = db.query(P.db, "SELECT * FROM search_efficiency")
    assert eff["method"].to_list() == [method]
    assert eff["tokens"][0] == df["n_tokens"].sum() == res.tokens


def test_revision_examples_from_failures():
    import polars as pl

    from reasonloop.envs.countdown import solve
    from reasonloop.filter import revision_examples
    p = TRAIN[0]
    good = "\n".join(solve(tuple(p.meta["numbers"]), p.meta["target"])) + "\n"
    bad = "1+1=2 [2]\n"
    d = pl.DataFrame({"problem_id": [p.problem_id] * 3, "text": [good, bad, bad],
                      "correct": [True, False, False]})
    ex = revision_examples(ENV, d, {p.problem_id: p}, 10, seed=0)
    assert ex.height == 1 and ex["completion"][0] == good and ex["source"][0] == "revision"
    assert ex["prompt"][0] == f"{p.prompt}1+1=2 [2]\nfix: {ENV.feedback(p, bad)}\n"
    assert revision_examples(ENV, d, {p.problem_id: p}, 0).is_empty()


def test_the_config_and_the_cli_know_exactly_the_test_time_methods_there_are():
    """`reasonloop eval --methods` and `eval.search_methods` check names against the config's
    list (no torch import for a typo); it must be the table the search runs from."""
    assert list(get_args(TEST_TIME_METHODS)) == list(TEST_TIME)
    assert {search for search, _, _ in TEST_TIME.values()} <= set(SEARCH)
