"""Env plugins: the three ways to name one (module:Name, file.py:Name, an entry point), the
protocol checked on what they build, their own options, and every mistake a task author
makes failing in one line before anything is written."""

import textwrap

import pytest

from reasonloop.config import EnvConfig, load_config
from reasonloop.envs import plugins
from reasonloop.envs.base import Problem, Verdict
from reasonloop.errors import ConfigError, InputError
from reasonloop.workspace import checked_problems
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "wordops"
FILE_REF = f"{EXAMPLE / 'wordops.py'}:WordOps"


def _plugin(tmp_path, body: str, name: str = "myenv") -> str:
    """A module `name` in tmp_path holding `body` → its file reference."""
    f = tmp_path / f"{name}.py"
    f.write_text(textwrap.dedent(body))
    return f"{f}:Env"


GOOD = """
    from reasonloop.envs.base import Problem, Verdict
    class Env:
        name = "tiny"
        step_sep = "\\n"
        def problems(self):
            return [Problem(f"t{i}", "train" if i else "test", f"{i}>", {"i": i})
                    for i in range(4)]
        def verify(self, problem, completion):
            if "boom" in completion:
                raise ValueError("cannot read " + completion)
            ok = completion.strip() == str(problem.meta["i"])
            return Verdict(ok, [completion.strip()], [], completion.strip(), True)
"""


def test_the_three_ways_to_name_a_plugin_give_the_same_env(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    by_file = plugins.resolve(FILE_REF)
    by_module = plugins.resolve("wordops:WordOps")
    dist = tmp_path / "site" / "wordops_plugin-0.1.dist-info"      # an installed package
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wordops-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text("[reasonloop.envs]\nwordops = wordops:WordOps\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    by_entry_point = plugins.resolve("wordops")
    assert by_module is by_entry_point                  # same module, imported once
    assert by_file.__name__ == by_module.__name__ == "WordOps"
    for ref in (FILE_REF, "wordops:WordOps", "wordops"):
        env = plugins.build(EnvConfig(name=ref, options={"length": 3, "letters": 3}))
        ps = env.problems()
        assert {p.split for p in ps} <= {"train", "val", "test"} and ps
        assert env.verify(ps[0], "rot=" + ps[0].meta["start"][1:] + ps[0].meta["start"][0])


def test_the_example_config_loads_and_its_options_are_validated(tmp_path):
    cfg = load_config(EXAMPLE / "config.yaml")
    assert cfg.env.options["length"] == 3
    with pytest.raises(ConfigError, match=r"env\.options\.lenght: not a setting.*known: "
                                          r"length"):
        load_config(EXAMPLE / "config.yaml", ["env.options.lenght=5"])
    with pytest.raises(ConfigError, match=r"env\.options\.length: .*less than or equal"):
        load_config(EXAMPLE / "config.yaml", ["env.options.length=60"])
    with pytest.raises(ConfigError, match=r"env\.n_numbers is a setting of the built-in"):
        load_config(EXAMPLE / "config.yaml", ["env.n_numbers=4"])
    with pytest.raises(ConfigError, match="built-in env 'countdown' takes its settings"):
        load_config(None, ["env.options.x=1"])


@pytest.mark.parametrize("body, match", [
    ("import not_a_module_anywhere\nclass Env: pass\n",
     "does not import: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("class Env(:\n", "does not import: SyntaxError"),
    ("class Other: pass\n", "has no 'Env'"),
    ("class Env:\n  name = 'x'\n  step_sep = '\\n'\n  def problems(self): return []\n",
     "does not satisfy the Env protocol: method 'verify' is missing"),
    ("class Env:\n  name = 'x'\n  def problems(self): return []\n"
     "  def verify(self, p, c): pass\n",
     "attribute 'step_sep' \\(a string\\) is missing"),
    ("class Env:\n  def __init__(self): raise RuntimeError('needs a GPU')\n",
     "could not be built: RuntimeError: needs a GPU"),
])
def test_a_broken_plugin_fails_in_one_line(tmp_path, body, match):
    ref = _plugin(tmp_path, body, name=f"broken{abs(hash(body)) % 10**6}")
    with pytest.raises(ConfigError, match=match) as e:
        plugins.build(EnvConfig(name=ref))
    assert "\n" not in str(e.value)


def test_unknown_names_and_references_fail_in_one_line():
    with pytest.raises(ConfigError, match="not built in or registered .*countdown, math"):
        plugins.resolve("sudoku")
    with pytest.raises(ConfigError, match="does not import: ModuleNotFoundError"):
        plugins.resolve("no_such_package.envs:Sudoku")
    with pytest.raises(ConfigError, match="no such file"):
        plugins.resolve("nowhere/sudoku.py:Sudoku")


def test_a_verdict_of_the_wrong_shape_stops_before_anything_is_written(tmp_path):
    ref = _plugin(tmp_path, GOOD.replace("return Verdict(ok, [completion.strip()], [], "
                                         "completion.strip(), True)", "return ok"),
                  name="wrongverdict")
    env = plugins.build(EnvConfig(name=ref))
    with pytest.raises(InputError, match="verify returned bool, not a .*Verdict"):
        checked_problems(env, ref)                 # probed when the env is first built
    ref2 = _plugin(tmp_path, GOOD.replace("[completion.strip()], []", "[completion], [1, 0]"),
                   name="wronglength")
    with pytest.raises(InputError, match="2 step rewards for 1 steps"):
        checked_problems(plugins.build(EnvConfig(name=ref2)), ref2)


def test_a_verify_that_raises_is_that_texts_verdict_not_the_runs_end(tmp_path):
    env = plugins.build(EnvConfig(name=_plugin(tmp_path, GOOD, name="raising")))
    p = checked_problems(env, "raising")[1]
    assert env.verify(p, "1").correct and env.verify(p, "1").error is None
    v = env.verify(p, "boom\nboom")
    assert not v.correct and not v.legal and v.steps == ["boom", "boom"]
    assert v.error == "ValueError: cannot read boom"


def test_problems_are_checked_once(tmp_path):
    dup = GOOD.replace('f"t{i}"', '"same"')
    with pytest.raises(InputError, match="problem id 'same' appears twice"):
        checked_problems(plugins.build(EnvConfig(name=_plugin(tmp_path, dup, "dup"))), "d")
    bad = GOOD.replace('"train" if i else "test"', '"holdout"')
    with pytest.raises(InputError, match="split 'holdout'"):
        checked_problems(plugins.build(EnvConfig(name=_plugin(tmp_path, bad, "bad"))), "b")


def test_options_without_a_model_and_from_scratch_without_warmup(tmp_path):
    ref = _plugin(tmp_path, GOOD, name="nooptions")
    with pytest.raises(ConfigError, match="takes no options"):
        plugins.validate(EnvConfig(name=ref, options={"size": 3}), from_scratch=False)
    with pytest.raises(ConfigError, match="no warmup_examples.*set policy.path"):
        plugins.validate(EnvConfig(name=ref), from_scratch=True)
    plugins.validate(EnvConfig(name=ref), from_scratch=False)     # a given model: fine
    with pytest.raises(ConfigError, match="learn.augment: env .* has no augment"):
        plugins.validate(EnvConfig(name=ref), from_scratch=False, augment=True)
    with pytest.raises(ConfigError, match="learn.augment: env 'math' has no augment"):
        load_config(None, ["env.name=math", "env.problems_file=p.jsonl", "policy.path=/m",
                           "learn.augment=1"])
    load_config(None, ["learn.augment=1"])                        # Countdown has one
    with pytest.raises(ConfigError, match="init_data: env .* no 'goal_plays'.*has: plays"):
        plugins.validate(EnvConfig(name=ref), from_scratch=True, init_data="goal_plays")
    load_config(None, ["policy.init_data=goal_plays"])            # Countdown has them


def test_problem_from_a_users_json():
    env = plugins.build(EnvConfig(name=FILE_REF))
    p = plugins.problem_from(env, {"start": "dcab", "target": "abdc"})
    assert isinstance(p, Problem) and p.prompt == "dcab>abdc\n"
    with pytest.raises(InputError, match="same letters rearranged"):
        plugins.problem_from(env, {"start": "dcab", "target": "zzzz"})
    cd = plugins.build(EnvConfig())
    assert plugins.problem_from(cd, {"numbers": [3, 4], "target": 12}).meta["target"] == 12
    with pytest.raises(InputError, match="cannot reach 13"):
        plugins.problem_from(cd, {"numbers": [3, 4], "target": 13})


def test_wordops_checker_against_an_independent_simulation():
    """Every completion of up to 3 random lines: correct exactly when replaying the
    operations by hand ends on the target, each line matching."""
    import random
    env = plugins.build(EnvConfig(name=FILE_REF))
    rng = random.Random(0)
    ops = {"rev": lambda w: w[::-1], "rot": lambda w: w[1:] + w[0],
           "swp": lambda w: w[1] + w[0] + w[2:]}
    problems = [p for p in env.problems() if p.split == "train"][:200]
    n_correct = 0
    for p in problems:
        for _ in range(10):
            word, lines, honest = p.meta["start"], [], True
            for _ in range(rng.randint(1, 3)):
                op = rng.choice(["rev", "rot", "swp", "bad"])
                out = ops[op](word) if op in ops else word
                if rng.random() < 0.1:            # a line that lies about its result
                    out = out[::-1] if out != out[::-1] else out + "x"
                    honest = False
                honest = honest and op in ops
                lines.append(f"{op}={out}")
                word = out
            v = env.verify(p, "\n".join(lines) + "\n")
            assert v.correct == (honest and word == p.meta["target"]), lines
            assert v.legal == honest
            n_correct += v.correct
    assert n_correct > 20
    assert isinstance(v, Verdict)


def test_a_problems_file_for_any_env_with_problem_from(tmp_path):
    """`reasonloop eval --problems FILE` reads problems the env's own way."""
    env = plugins.build(EnvConfig(name=FILE_REF))
    f = tmp_path / "mine.jsonl"
    f.write_text('{"start": "abc", "target": "bca"}\n{"start": "abc", "target": "bca"}\n'
                 '{"start": "xyz", "target": "zyx"}\n')
    ps = plugins.problems_file(env, f)
    assert [(p.problem_id, p.split) for p in ps] == [("wo-abc-bca", "file"),
                                                     ("wo-xyz-zyx", "file")]
    assert env.verify(ps[1], "rev=zyx\n").correct
    f.write_text('{"start": "abc", "target": "bca"}\n{"start": "abc", "target": "q"}\n')
    with pytest.raises(InputError, match=r"mine\.jsonl:2: a wordops problem is"):
        plugins.problems_file(env, f)
    raw = plugins.build(EnvConfig(name=_plugin(tmp_path, GOOD, "noreader")))
    with pytest.raises(InputError, match="has no problem_from"):
        plugins.problems_file(raw, f)
