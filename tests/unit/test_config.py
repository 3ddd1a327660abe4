from pathlib import Path

import pytest

from reasonloop.config import load_config
from reasonloop.errors import ConfigError
from tests.conftest import SMOKE
from tests.countdown_reference import parse_prompt


def test_default_and_smoke_load():
    assert load_config("configs/default.yaml").env.n_numbers >= 3
    assert load_config(SMOKE).run.iterations == 2


def test_overrides_apply_last_and_are_typed():
    cfg = load_config(SMOKE, ["search.n=7", "learn.init_from=base"])
    assert cfg.search.n == 7 and cfg.learn.init_from == "base"


@pytest.mark.parametrize("override, where", [
    ("search.n=0", "search.n"), ("learn.init_from=nowhere", "learn.init_from"),
    ("search.nn=3", "search.nn"), ("env.number_min=50", "env"), ("eval.k=99", "eval")])
def test_bad_values_name_the_key(override, where):
    with pytest.raises(ConfigError, match=where):
        load_config(SMOKE, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(bad)


def test_hash_ignores_workspace_and_iterations():
    a = load_config(SMOKE, ["run.root=/x", "run.iterations=3"])
    b = load_config(SMOKE, ["run.root=/y", "run.iterations=9"])
    assert a.hash() == b.hash() != load_config(SMOKE, ["search.n=9"]).hash()


def _assert_fits(examples: list[dict], policy) -> None:
    """Every completion (+ EOS) within the generation budget, every example (+ BOS, EOS)
    within the context: a char a token."""
    assert max(len(x["completion"]) + 1 for x in examples) <= policy.max_new_tokens
    assert max(len(x["prompt"]) + len(x["completion"]) + 2 for x in examples) <= \
        policy.context


def test_the_standard_setting_config_and_its_trace_variant():
    """configs/sos.yaml is Stream of Search's setting; the trace policy its header names
    (init on search traces) gets a context and budget its traces fit (a cut trace would
    teach a cut search). Its own goal plays: `test_every_shipped_policy_init_fits...`."""
    from reasonloop.envs.countdown import Countdown
    over = ["policy.init_data=traces", "policy.context=384", "policy.max_new_tokens=320"]
    assert "--set " + " --set ".join(over) in Path("configs/sos.yaml").read_text()
    cfg = load_config("configs/sos.yaml",
                      ["env.n_train=200", "env.n_val=10", "env.n_test=10", *over])
    e, p = cfg.env, cfg.policy
    assert (e.n_numbers, e.number_min, e.number_max, e.target_min, e.target_max) == \
        (4, 1, 99, 10, 100)
    examples = Countdown(e).warmup_examples(2000, seed=0, kind="traces",
                                            backtracks=p.trace_backtracks)
    _assert_fits(examples, p)


def test_long_init_recipe_is_the_direct_recipe_spent_on_init():
    """configs/long-init.yaml differs from the direct recipe only where its header says."""
    base = load_config("configs/direct.yaml").model_dump()
    long = load_config("configs/long-init.yaml").model_dump()
    changed = {(s, k) for s in base for k in base[s] if base[s][k] != long[s][k]}
    assert changed == {("policy", "init_steps"), ("learn", "lr"), ("eval", "search_methods"),
                       ("run", "iterations")}
    assert long["policy"]["init_steps"] >= 10 * base["policy"]["init_steps"]


SHIPPED = sorted(str(p) for p in [*Path("configs").glob("*.yaml"),
                                  *Path("examples").glob("*/config.yaml")])


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_policy_init_fits_its_generation_budget(path):
    """A shipped config that builds its policy makes init data whose every completion fits
    `policy.max_new_tokens` (+ EOS) and `policy.context`: longer ones are cut in training
    (an answer without its end) and could never be written whole at eval (sos.yaml's 64
    tokens cut ~0.1% of its goal plays)."""
    from reasonloop.envs import plugins
    from reasonloop.policy.init import warmup
    cfg = load_config(path)
    if cfg.env.name == "countdown":          # a small pool: the data does not depend on it
        cfg = load_config(path, ["env.n_train=200", "env.n_val=10", "env.n_test=10"])
    if cfg.policy.path is not None:
        pytest.skip("a given model: no init data")
    examples = warmup(cfg, plugins.build(cfg.env), 10000, seed=0)
    _assert_fits(examples, cfg.policy)


@pytest.mark.parametrize("path", [p for p in SHIPPED if "countdown" in Path(p).read_text()])
def test_every_shipped_countdown_policy_fits_its_revision_examples(path):
    """D_expert holds revision examples (a failed attempt + the verifier's feedback → a
    correct solution): a policy built with too few positions has them cut or dropped in BC
    (sos.yaml's first 128 cut ~all of them). Failed attempts here: random legal plays."""
    import random

    from reasonloop.envs.countdown import Countdown, problem_of
    from reasonloop.envs.countdown_rules import random_trajectory
    from reasonloop.search.revise import revision_prompt
    cfg = load_config(path, ["env.n_train=200", "env.n_val=10", "env.n_test=10"])
    if cfg.env.name != "countdown" or cfg.policy.path is not None:
        pytest.skip("not a built countdown policy")
    env, rng, longest = Countdown(cfg.env), random.Random(0), 0
    for ex in env.warmup_examples(1000, seed=0, kind="goal_plays"):
        nums, target = parse_prompt(ex["prompt"])
        p = problem_of({"numbers": list(nums), "target": target})
        failed = "\n".join(random_trajectory(tuple(p.meta["numbers"]), rng)) + "\n"
        if not env.verify(p, failed).correct:
            prompt = revision_prompt(p.prompt, failed, env.feedback(p, failed) or "wrong")
            longest = max(longest, len(prompt) + len(ex["completion"]) + 2)
    assert 0 < longest <= cfg.policy.context


def test_one_starting_policy_is_named_at_most():
    with pytest.raises(ConfigError, match="policy.path .* policy.init_from"):
        load_config(None, ["policy.path=/a", "policy.init_from=/b"])
