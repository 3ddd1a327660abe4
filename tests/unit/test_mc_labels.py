"""Monte-Carlo step labels (Math-Shepherd) on a toy policy whose success probability is
known: from a solvable state it finishes correctly with probability P, else it blunders."""

import random

import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, solve
from reasonloop.policy.engines import SamplingParams
from reasonloop.policy.engines.base import Sample
from reasonloop.reward.mc import MCPRM, agreement, mc_labels
from reasonloop.search.base import SearchSpec
from reasonloop.search.best_of_n import best_of_n
from tests.unit.test_countdown import parse_prompt
from tests.unit.test_search import RandomLegalPolicy

ENV = Countdown(EnvConfig(n_train=300))
TRAIN = [p for p in ENV.problems() if p.split == "train"][:30]
P = 0.3


class Toy:
    """Continues a prompt + step prefix: the oracle's finish with probability P (when the
    state is solvable), otherwise an illegal step."""

    def sample(self, prompts, n, params, progress=False):
        rng = random.Random(params.seed)
        out = []
        for prompt in prompts:
            head, *steps = [ln for ln in prompt.split("\n") if ln]
            nums, target = parse_prompt(head + "\n")
            state = tuple(int(x) for x in steps[-1].split("[")[1].rstrip("]").split()) \
                if steps else nums
            finish = solve(state, target) if len(state) > 1 else None
            row = []
            for _ in range(n):
                text = "\n".join(finish) + "\n" if finish and rng.random() < P else "0+0=1 [1]\n"
                row.append(Sample(text, len(text)))
            out.append(row)
        return out


def orm(p, text):
    return ENV.verify(p, text).correct


def test_soft_labels_estimate_the_success_probability():
    rows = best_of_n(TRAIN, RandomLegalPolicy(), SamplingParams(seed=1), 2, SearchSpec())
    by_id = {p.problem_id: p for p in TRAIN}
    items = [(by_id[r["problem_id"]], r["text"]) for r in rows]
    labels = mc_labels(items, Toy(), SamplingParams(seed=0), 300, orm)
    oracle = [ENV.verify(p, t).step_rewards for p, t in items]
    inner = [(s, o) for lab, orc in zip(labels, oracle) for s, o in zip(lab.soft[:-1], orc[:-1])]
    assert inner and any(o == 1.0 for _, o in inner) and any(o == 0.0 for _, o in inner)
    for s, o in inner:
        assert (abs(s - P) < 0.1) if o == 1.0 else s == 0.0
    assert agreement([lab.hard for lab in labels], oracle) == 1.0
    for (p, t), lab in zip(items, labels):       # the last step is the outcome itself
        assert lab.soft[-1] == (1.0 if ENV.verify(p, t).correct else 0.0)
        assert lab.tokens > 0                     # every inner prefix was rolled out


def test_agreement_grows_with_m_and_costs_tokens():
    items = [(p, "\n".join(solve(tuple(p.meta["numbers"]), p.meta["target"])[:1]) + "\n"
              "0+0=1 [1]\n") for p in TRAIN]
    oracle = [ENV.verify(p, t).step_rewards for p, t in items]
    res = {m: mc_labels(items, Toy(), SamplingParams(seed=0), m, orm) for m in (1, 16)}
    agree = {m: agreement([lab.hard for lab in res[m]], oracle) for m in res}
    tok = {m: sum(lab.tokens for lab in res[m]) for m in res}
    assert agree[16] > agree[1] and agree[16] >= 0.95
    assert tok[16] > 10 * tok[1] > 0
    prm = MCPRM(Toy(), SamplingParams(seed=0), 16, orm)
    assert prm(*items[0]) == res[16][0].soft


def test_prm_swap_in_config_changes_beam_choices(smoke_cfg):
    """`reward.prm: mc` puts Monte-Carlo labels from the policy's own rollouts behind the
    same SearchSpec.prm: beam keeps different prefixes than with the oracle."""
    from reasonloop.search.methods import SEARCH
    from reasonloop.search.spec import search_spec
    cfg = smoke_cfg.model_copy(update={"env": ENV.cfg})
    kept = {}
    for prm in ("oracle", "mc"):
        c = cfg.model_copy(update={"reward": cfg.reward.model_copy(
            update={"prm": prm, "mc_rollouts": 2})})
        trace = []
        spec = search_spec(c, Toy(), trace=trace)
        SEARCH["beam"](TRAIN[:10], RandomLegalPolicy(), SamplingParams(seed=0), 8, spec)
        kept[prm] = [[text for _, text in t["kept"]] for t in trace]
    assert kept["oracle"] != kept["mc"]
    with pytest.raises(ValueError, match="need the policy's engine"):
        search_spec(cfg.model_copy(update={"reward": cfg.reward.model_copy(
            update={"prm": "mc"})}))


def test_a_search_prefix_is_rolled_out_not_judged_unfinished():
    """Inside beam/MCTS the PRM scores prefixes: the last step of an unfinished, solvable
    prefix gets the rollouts' success rate (≈ P), not the 0 of an unfinished answer."""
    p = TRAIN[0]
    first = solve(tuple(p.meta["numbers"]), p.meta["target"])[0] + "\n"
    lab = mc_labels([(p, first)], Toy(), SamplingParams(seed=0), 300, orm)[0]
    assert len(lab.soft) == 1 and abs(lab.soft[0] - P) < 0.1 and lab.tokens > 0


def test_mc_prm_labels_each_prefix_once():
    """Beam asks for longer and longer prefixes: their shared steps are not rolled out again."""
    p = TRAIN[0]
    sol = solve(tuple(p.meta["numbers"]), p.meta["target"])
    prm = MCPRM(Toy(), SamplingParams(seed=0), 8, orm)
    one = prm(p, sol[0] + "\n")
    spent = prm.tokens
    both = prm(p, "\n".join(sol) + "\n")
    assert both[0] == one[0] and both[-1] == 1.0      # the solved text needs no rollout
    assert prm.tokens == spent                         # step 1 reused, step 2 accepted
