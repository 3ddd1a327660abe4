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
