import pytest

from reasonloop.config import load_config
from reasonloop.errors import ConfigError
from tests.conftest import SMOKE


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


def test_the_standard_setting_config_fits_its_traces():
    """configs/sos.yaml: Stream of Search's setting, initialised on traces — and the traces
    it makes fit its context and generation budget (a cut trace would teach a cut search)."""
    from reasonloop.envs.countdown import Countdown
    cfg = load_config("configs/sos.yaml", ["env.n_train=200", "env.n_val=10", "env.n_test=10"])
    e, p = cfg.env, cfg.policy
    assert (e.n_numbers, e.number_min, e.number_max, e.target_min, e.target_max) == \
        (4, 1, 99, 10, 100)
    assert p.init_data == "traces" and p.trace_backtracks >= 1
    examples = Countdown(e).warmup_examples(2000, seed=0, kind="traces",
                                            backtracks=p.trace_backtracks)
    longest = max(len(x["completion"]) + 1 for x in examples)       # + EOS; a char each
    assert longest <= p.max_new_tokens
    assert max(len(x["prompt"]) + len(x["completion"]) + 2 for x in examples) <= p.context


def test_long_init_recipe_is_the_default_spent_on_init():
    """configs/long-init.yaml differs from the default only where its header says."""
    base = load_config("configs/default.yaml").model_dump()
    long = load_config("configs/long-init.yaml").model_dump()
    changed = {(s, k) for s in base for k in base[s] if base[s][k] != long[s][k]}
    assert changed == {("policy", "init_steps"), ("learn", "lr"), ("eval", "search_methods"),
                       ("run", "iterations")}
    assert long["policy"]["init_steps"] >= 10 * base["policy"]["init_steps"]
