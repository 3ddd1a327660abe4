"""Guidance from inside: the self PRM is the policy's own per-step confidence (checked against
an independent forward pass), batching does not change it, and it and the mix plug into the
searches like any PRM."""

import math

import pytest
import torch

from reasonloop.config import load_config
from reasonloop.envs.base import Problem
from reasonloop.reward.inside import MixPRM, SelfPRM
from reasonloop.reward.process import oracle_prm
from tests.conftest import SMOKE

P = Problem("cd-3-5-7-22", "train", "3 5 7>22\n", {"numbers": [3, 5, 7], "target": 22})
GOOD = "3*5=15 [7 15]\n15+7=22 [22]\n"


def _completion_logprob(model, tok, prompt: str, text: str) -> float:
    """Sum of log p(token) over the completion's tokens (one per character here), EOS not
    included — by a plain forward pass, not the code under test."""
    ids = tok(prompt + text, return_tensors="pt")["input_ids"]
    n_prompt = len(tok(prompt)["input_ids"])
    with torch.no_grad():
        logp = model(input_ids=ids).logits.log_softmax(-1)[0]
    return sum(float(logp[j - 1, ids[0, j]]) for j in range(n_prompt, ids.shape[1]))


def test_self_scores_are_the_policys_own_step_probabilities(tiny_model_dir):
    prm = SelfPRM(tiny_model_dir)
    scores = prm(P, GOOD)
    assert len(scores) == 2 and all(0 < s <= 1 for s in scores)
    # the steps' tokens (each step with its newline) tile the completion: the scores'
    # geometric means, re-weighted by token counts, give back its whole log-probability
    counts = [len("3*5=15 [7 15]\n"), len("15+7=22 [22]\n")]
    total = sum(n * math.log(s) for n, s in zip(counts, scores))
    assert total == pytest.approx(_completion_logprob(prm.model, prm.tok, P.prompt, GOOD),
                                  abs=1e-3)


def test_batching_and_padding_do_not_change_the_scores(tiny_model_dir):
    prm = SelfPRM(tiny_model_dir)
    texts = [GOOD, "3+5=8 [7 8]\n", "7*5=35 [3 35]\n35-3=32 [32]\n32 not 22\nback [3 5 7]\n"]
    alone = [SelfPRM(tiny_model_dir)(P, t) for t in texts]
    together = prm.many([(P, t) for t in texts])
    for a, b in zip(alone, together):
        assert a == pytest.approx(b, abs=1e-5)
    assert [len(s) for s in together] == [2, 1, 4]


def test_a_trained_policy_is_surer_of_right_steps(solver_overrides):
    """The solver fixture (tests/solver.py) knows the arithmetic: a right step scores above
    the same step with a wrong result, which scores well above garbage."""
    path = next(o.split("=", 1)[1] for o in solver_overrides if o.startswith("policy.path="))
    prm = SelfPRM(path)
    p = Problem("cd-3-5-8", "train", "3 5>8\n", {"numbers": [3, 5], "target": 8})
    right, wrong, garbage = (prm(p, t)[0] for t in ("3+5=8 [8]\n", "3+5=9 [9]\n",
                                                     "z?q=,, [x]\n"))
    assert right > wrong + 0.1 and wrong > 2 * garbage   # one wrong token of ~10


def test_mix_weights_inside_and_outside(tiny_model_dir):
    from reasonloop.envs.countdown import Countdown
    inside = SelfPRM(tiny_model_dir)
    oracle = oracle_prm(Countdown(load_config(SMOKE).env))
    bad = "3+5=8 [7 8]\n8+7=15 [15]\n"
    for w in (0.0, 0.3, 1.0):
        mixed = MixPRM(inside, oracle, w).many([(P, GOOD), (P, bad)])
        for text, got in zip((GOOD, bad), mixed):
            want = [w * a + (1 - w) * b for a, b in zip(inside(P, text), oracle(P, text))]
            assert got == pytest.approx(want)


def test_self_and_mix_run_inside_the_searches(tiny_model_dir, tmp_path):
    from reasonloop.policy.engines import SamplingParams, load_engine
    from reasonloop.search.methods import SEARCH
    from reasonloop.search.spec import search_spec
    from reasonloop.workspace import split
    engine = load_engine("lean", tiny_model_dir)
    params = SamplingParams(temperature=1.0, max_new_tokens=40, seed=0)
    for kind in ("self", "mix"):
        cfg = load_config(SMOKE, [f"run.root={tmp_path}", f"reward.prm={kind}",
                                  "reward.mix_with=oracle"])
        spec = search_spec(cfg, engine)
        probs = split(cfg, "test")[:3]
        for method in ("beam", "dvts", "mcts"):
            rows = SEARCH[method](probs, engine, params, 4, spec)
            assert {r["problem_id"] for r in rows} == {p.problem_id for p in probs}
    with pytest.raises(ValueError, match="needs the policy"):
        search_spec(load_config(SMOKE, ["reward.prm=self"]), None)
