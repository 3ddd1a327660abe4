"""Learned verifiers: a PRM (token classification at step ends) and an ORM (TRL
RewardTrainer on Bradley–Terry pairs) fitted on a tiny set beat chance on held-out problems.

The wrong texts are well formed (a miscalculated step in the right format, a legal play
that misses), so only the arithmetic and the reachability of the target tell them apart —
not the format. The base is the solver fixture (tests/solver.py), which has seen the
small setting's arithmetic; a from-scratch 8-step model does not beat chance on this."""

import random

import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, solve
from reasonloop.eval.metrics import auc
from reasonloop.policy.engines import SamplingParams
from reasonloop.reward.learned import (
    LearnedORM,
    LearnedPRM,
    orm_pairs,
    prefix_pairs,
    step_ends,
    train_pairwise,
    train_prm,
)
from tests.unit.test_search import RandomLegalPolicy

ENV = Countdown(EnvConfig(n_numbers=2, number_max=9, target_min=1, target_max=20,
                          n_train=400, n_val=5, n_test=5))
TRAIN = [p for p in ENV.problems() if p.split == "train"]
FIT, HELD = TRAIN[: len(TRAIN) * 7 // 10], TRAIN[len(TRAIN) * 7 // 10:]


@pytest.fixture(scope="module")
def base(solver_overrides):
    return solver_overrides[-1].split("=", 1)[1]


def blunder(sol: list[str], rng) -> str:
    """The oracle's solution with one step's result miscalculated — in the right format,
    the numbers left following the wrong result, so nothing but the arithmetic gives it
    away (a format detector cannot tell it from a solution)."""
    j = rng.randrange(len(sol))
    lhs, rhs = sol[j].split("=")
    c, rest = rhs.split(" ", 1)
    wrong = int(c) + rng.choice([d for d in (-2, -1, 1, 2, 3) if int(c) + d >= 0])
    left = rest[1:-1].split(" ")
    left[len(left) - 1 - left[::-1].index(c)] = str(wrong)
    return "\n".join([*sol[:j], f"{lhs}={wrong} [{' '.join(left)}]"]) + "\n"


def trajectories(problems, seed):
    """Per problem: the oracle's solution, a random legal play and a blunder (a miscalculated
    step, well-formed) — oracle step labels of all three vary."""
    rng = random.Random(seed)
    out = []
    for p in problems:
        sol = solve(tuple(p.meta["numbers"]), p.meta["target"])
        play = RandomLegalPolicy().sample([p.prompt], 1, SamplingParams(seed=rng.randrange(9999)))
        out += [(p, "\n".join(sol) + "\n"), (p, play[0][0].text), (p, blunder(sol, rng))]
    return out


def test_blunders_are_well_formed_and_wrong():
    from reasonloop.envs.countdown import STEP_RE
    rng = random.Random(0)
    for p in TRAIN:
        text = blunder(solve(tuple(p.meta["numbers"]), p.meta["target"]), rng)
        v = ENV.verify(p, text)
        assert all(STEP_RE.match(s) for s in v.steps) and not v.legal and v.step_rewards[-1] == 0


def test_step_ends_mark_the_last_char_of_each_step(tiny_model_dir):
    from reasonloop.reward.learned import _load_tokenizer
    tok = _load_tokenizer(tiny_model_dir)
    ids, ends = step_ends(tok, "5 3 2>16\n", "5+3=8 [2 8]\n\n2*8=16 [16]\n")
    assert [tok.decode([ids[j]]) for j in ends] == ["]", "]"]
    assert tok.decode(ids[: ends[1] + 1]).endswith("2*8=16 [16]")


def test_pointwise_prm_beats_chance_on_heldout(base, tmp_path):
    train = trajectories(FIT, 0)
    held = trajectories(HELD, 1)
    stats = train_prm(base, [(p, t, ENV.verify(p, t).step_rewards) for p, t in train],
                      tmp_path / "prm", steps=200, batch_size=32, lr=3e-3, seed=0, meta={})
    assert stats["loss_last"] < stats["loss_first"]
    prm = LearnedPRM(tmp_path / "prm")
    scores = prm.many(held)
    labels = [ENV.verify(p, t).step_rewards for p, t in held]
    assert all(len(s) == len(y) for s, y in zip(scores, labels))    # one score per step
    flat = [(y > 0, s) for ys, ss in zip(labels, scores) for y, s in zip(ys, ss)]
    assert auc([y for y, _ in flat], [s for _, s in flat]) > 0.65
    # a prefix scores as it does inside the full text (causal: steps ≤ k only)
    p, text = held[0]
    first = text.split("\n")[0] + "\n"
    assert prm(p, first)[0] == pytest.approx(prm(p, text)[0], abs=1e-5)


def test_pairwise_prm_beats_chance_on_heldout(base, tmp_path):
    """Bradley–Terry on step prefixes of one problem and depth (good step vs bad step)."""
    train = [(p, t, ENV.verify(p, t).step_rewards) for p, t in trajectories(FIT, 0)]
    pairs = prefix_pairs(train, 2, seed=0)
    assert pairs and all(x["chosen"].count("\n") == x["rejected"].count("\n") for x in pairs)
    train_pairwise(base, pairs, {p.problem_id: p.prompt for p in FIT},
                   tmp_path / "prm", steps=200, batch_size=16, lr=3e-3, seed=0, meta={})
    prm = LearnedPRM(tmp_path / "prm")
    assert prm.pairwise
    held = trajectories(HELD, 1)
    scores = prm.many(held)
    labels = [ENV.verify(p, t).step_rewards for p, t in held]
    assert all(len(s) == len(y) for s, y in zip(scores, labels))
    flat = [(y > 0, s) for ys, ss in zip(labels, scores) for y, s in zip(ys, ss)]
    assert auc([y for y, _ in flat], [s for _, s in flat]) > 0.65
    p, text = held[0]
    assert prm(p, text.split("\n")[0] + "\n")[0] == pytest.approx(prm(p, text)[0], abs=1e-5)


def test_learned_orm_beats_chance_on_heldout(base, tmp_path):
    groups: dict[str, list] = {}
    for p, t in trajectories(FIT, 0):
        groups.setdefault(p.problem_id, []).append((t, ENV.verify(p, t).correct))
    pairs = orm_pairs(groups, 2, seed=0)
    assert pairs and all(ENV.verify(next(q for q in TRAIN if q.problem_id == x["problem_id"]),
                                     x["chosen"]).correct for x in pairs[:20])
    stats = train_pairwise(base, pairs, {p.problem_id: p.prompt for p in FIT},
                           tmp_path / "orm", steps=200, batch_size=16, lr=3e-3, seed=0,
                           meta={})
    assert stats["n_pairs"] == len(pairs)
    held = trajectories(HELD, 1)
    scores = LearnedORM(tmp_path / "orm").many(held)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert auc([ENV.verify(p, t).correct for p, t in held], scores) > 0.65


def test_orm_pairs_need_contrast():
    groups = {"a": [("x", True), ("y", False), ("z", False)], "b": [("u", True)],
              "c": [("v", False)]}
    pairs = orm_pairs(groups, 3, seed=0)
    assert len(pairs) == 3 and {p["problem_id"] for p in pairs} == {"a"}
    assert all(p["chosen"] == "x" and p["rejected"] in ("y", "z") for p in pairs)


def test_auc():
    assert auc([True, False], [0.9, 0.1]) == 1.0
    assert auc([True, False], [0.1, 0.9]) == 0.0
    assert auc([True, False, True, False], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert auc([True, True, False], [0.8, 0.3, 0.5]) == 0.5


def test_fit_stage_registers_and_search_and_eval_use_it(base, solver_overrides, workspace,
                                                        tmp_path):
    """The flywheel's fit-verifiers stage on a made D_search: both verifiers fitted from the
    policy, held-out AUC measured, registered (champion) with lineage, recorded in DuckDB;
    then the run's search spec and `reasonloop eval` (via the registry) use them."""
    import polars as pl

    from reasonloop import workspace as ws
    from reasonloop.config import load_config
    from reasonloop.search.spec import search_spec
    from reasonloop.stages.fit_verifiers import fit_verifiers
    from reasonloop.stages.start import start_run
    from reasonloop.store import db, registry
    from tests.conftest import SMOKE
    from tests.e2e.test_cli import _run
    cfg = load_config(SMOKE, [f"run.root={workspace}", *solver_overrides, "reward.prm=learned",
                              "reward.train=[prm, orm]", "reward.steps=200",
                              "reward.batch_size=16", "reward.lr=3e-3"])
    start_run(cfg, "run-f")
    env = ws.env(cfg)
    items = trajectories(ws.split(cfg, "train"), 0)
    it = ws.Iteration(cfg, "run-f", 1)
    out = it.d_search
    out.parent.mkdir(parents=True)
    pl.DataFrame({"problem_id": [p.problem_id for p, _ in items], "text": [t for _, t in items],
                  "correct": [env.verify(p, t).correct for p, t in items]}
                 ).write_parquet(out)
    import torch
    torch.manual_seed(0)    # the new heads' init: the same fit whichever tests ran before
    stats = fit_verifiers(it, str(base))
    assert set(stats) == {"prm", "orm"}
    assert stats["prm"]["auc_oracle"] > 0.6 and stats["orm"]["auc"] > 0.6, stats
    assert fit_verifiers(it, str(base))["prm"]["auc"] == \
        stats["prm"]["auc"]                                     # idempotent: not refitted
    rm = db.query(workspace / "reasonloop.duckdb", "SELECT kind, version FROM reward_models")
    assert sorted(rm["kind"]) == ["orm", "prm"] and all(rm["version"])
    registry.setup(workspace / "mlflow.db", workspace / "mlartifacts")
    for kind in ("prm", "orm"):
        champ = registry.version_by_alias(f"{cfg.run.name}-{kind}", "champion")
        assert champ.tags["run_id"] == "run-f" and champ.tags["policy"] == str(base)
    spec = search_spec(cfg, None, run_id="run-f", iteration=1)
    assert type(spec.prm).__name__ == "LearnedPRM" and spec.orm_score is not None
    r = _run(["eval", "--model", str(base), "--methods", "majority,orm_bon,beam",
              "--budgets", "2", "--limit", "4", "-c", str(SMOKE), "--root", str(workspace),
              "--set", "reward.prm=learned", *[a for o in solver_overrides for a in ("--set", o)]],
             tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "orm_bon" in r.stdout and "beam" in r.stdout



def test_refit_every_k_iterations():
    from reasonloop.config import Config
    from reasonloop.stages.fit_verifiers import due
    every2 = Config.model_validate({"reward": {"train": ["prm"], "train_every": 2}})
    assert [due(every2, i) for i in range(1, 6)] == [True, False, True, False, True]
    assert not any(due(Config(), i) for i in range(1, 4))          # nothing to fit
    assert Config.model_validate({"reward": {"prm": "learned"}}).reward.train == ["prm"]


def test_mc_labels_as_prm_targets(tiny_model_dir, workspace):
    """`reward.prm_labels: mc` — the PRM's targets from rollouts of the policy that made
    D_search (an env without a step oracle still gets a PRM)."""
    from reasonloop import workspace as ws
    from reasonloop.config import load_config
    from reasonloop.stages.fit_verifiers import _labels
    from tests.conftest import SMOKE
    cfg = load_config(SMOKE, [f"run.root={workspace}", "reward.prm_labels=mc",
                              "reward.mc_rollouts=2"])
    env = ws.env(cfg)
    items = [(p, t) for p, t in trajectories(ws.split(cfg, "train")[:5], 0)]
    labels, tokens = _labels(cfg, env, items, str(tiny_model_dir))
    assert [len(y) for y in labels] == [len(env.verify(p, t).steps) for p, t in items]
    assert tokens > 0 and all(y in (0.0, 1.0) for ys in labels for y in ys)
    for (p, t), ys in zip(items, labels):          # a correct text's last step is good
        assert ys[-1] == 1.0 or not env.verify(p, t).correct
