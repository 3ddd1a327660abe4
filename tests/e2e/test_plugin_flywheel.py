"""Bring your own task: the example plugin env (examples/wordops) runs the whole flywheel
through the real Prefect flow from its own config — search, verify, filter, BC, evaluate,
register — and an env whose verify raises on some texts does not stop a run. Plus
`reasonloop verify` on Countdown, math and the plugin, and on a stored trajectory."""

import json
import textwrap

import polars as pl
import pytest
from typer.testing import CliRunner

from reasonloop.cli import app
from reasonloop.store import db, registry
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "wordops"
TINY = ["policy.hidden_size=64", "policy.n_layers=2", "policy.n_heads=4",
        "policy.init_examples=8000", "policy.init_steps=250", "policy.init_batch_size=64",
        "search.n=8", "search.problems_per_iteration=40", "learn.steps=10",
        "learn.batch_size=32", "eval.n_sampled_problems=12", "eval.k=2", "eval.n_samples=4",
        "eval.search_budgets=[2]", "eval.search_problems=6", "env.options.n_val=24",
        "env.options.n_test=24", "run.iterations=1"]
OPS = {"rev": lambda w: w[::-1], "rot": lambda w: w[1:] + w[0],
       "swp": lambda w: w[1] + w[0] + w[2:]}


def replay(start: str, target: str, text: str) -> bool:
    """An independent reading of a WordOps answer: every line op=word true, ending on the
    target, at most 6 lines."""
    lines = [x for x in text.splitlines() if x.strip()]
    word = start
    for line in lines:
        op, _, out = line.strip().partition("=")
        if op not in OPS or OPS[op](word) != out:
            return False
        word = out
    return bool(lines) and len(lines) <= 6 and word == target


def _flow(ws, cfg_path, overrides, run_id):
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    cfg = load_config(cfg_path, [f"run.root={ws}", *TINY, *overrides])
    return cfg, flywheel(cfg, run_id)


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory, monkeypatch_module):
    ws = tmp_path_factory.mktemp("wordops")
    monkeypatch_module.chdir(ROOT)         # the config names the plugin by a relative path
    cfg, history = _flow(ws, EXAMPLE / "config.yaml", [], "run-w")
    return cfg, ws, history


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_example_plugin_runs_the_whole_flywheel(plugin_run):
    cfg, ws, history = plugin_run
    assert [h["iteration"] for h in history] == [0, 1]
    store = ws / "reasonloop.duckdb"
    assert set(db.query(store, "SELECT DISTINCT env FROM problems")["env"]) == {"wordops"}
    rows = db.query(store, "SELECT t.text, t.correct, t.step_rewards, p.meta FROM trajectories"
                    " t JOIN problems p USING (problem_id) WHERE t.iteration = 1 AND "
                    "t.method = 'best_of_n'")
    assert rows.height == 40 * 8
    for text, correct, rewards, meta in rows.iter_rows():      # the verifier, re-checked
        m = json.loads(meta)
        assert correct == replay(m["start"], m["target"], text), text
        assert len(rewards) == len([x for x in text.splitlines() if x.strip()])
    assert rows["correct"].sum() > 0 and not rows["correct"].all()
    expert = pl.read_parquet(ws / "data" / "run-w" / "iter01" / "d_expert.parquet")
    assert expert.height == history[1]["n_expert"] > 0
    assert {"search", "hindsight", "revision"} <= set(expert["source"])
    for r in expert.iter_rows(named=True):   # search, hindsight and revision rows: all true
        start, target = r["prompt"].splitlines()[0].split(">")   # a revision: + a try
        assert replay(start, target, r["completion"]), r
    trained = json.loads((ws / "models" / "run-w" / "iter01" / "reasonloop.json").read_text())
    assert trained["train"]["steps"] == cfg.learn.steps
    evals = db.query(store, "SELECT split, metric FROM evals WHERE iteration = 1")
    assert {("test", "pass@1"), ("val", "pass@1")} <= set(evals.iter_rows())
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    assert registry.version_by_alias(cfg.run.name, registry.CHALLENGER) is not None
    assert history[1]["test_time"]            # beam search on the env's oracle step labels


def test_a_verify_that_raises_keeps_the_run_going(tmp_path_factory, monkeypatch_module):
    ws = tmp_path_factory.mktemp("flaky")
    plugin = ws / "flaky.py"
    plugin.write_text(textwrap.dedent(f"""
        from reasonloop.envs.imports import plugins_import
        WordOps = plugins_import("{EXAMPLE / 'wordops.py'}:WordOps", "env")

        class Flaky(WordOps):
            def verify(self, problem, completion):
                if completion.startswith("rot"):
                    raise KeyError("flaky checker")
                return super().verify(problem, completion)
    """))
    cfg, history = _flow(ws, EXAMPLE / "config.yaml", [f"env.name={plugin}:Flaky",
                                                       "eval.search_methods=[]"], "run-f")
    store = ws / "reasonloop.duckdb"
    errors = db.query(store, "SELECT text, correct, outcome_reward, verify_error FROM "
                      "trajectories WHERE verify_error IS NOT NULL AND method = 'best_of_n'")
    assert errors.height > 0
    assert errors["text"].str.starts_with("rot").all() and not errors["correct"].any()
    assert set(errors["verify_error"]) == {"KeyError: 'flaky checker'"}
    assert history[1]["verify_errors"] == errors.height          # in the iteration summary
    done = db.query(store, "SELECT finished_at FROM iterations WHERE iteration = 1")
    assert done["finished_at"][0] is not None


def _verify(*args):
    r = CliRunner().invoke(app, ["verify", *args])
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return r.exit_code, lines, r.stderr if r.exit_code else ""


def test_verify_cli_on_countdown_math_and_the_plugin(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, [v], _ = _verify("--env", "countdown", "--problem", '{"numbers": [3, 5, 7], '
                         '"target": 22}', "--completion", "3*5=15 [7 15]\n15+7=22 [22]\n")
    assert rc == 0 and v["correct"] and v["step_rewards"] == [1.0, 1.0]
    rc, [v], _ = _verify("--env", "countdown", "--problem", '{"numbers": [3, 5, 7], '
                         '"target": 22}', "--completion", "3*5=16 [7 16]\n")
    assert rc == 0 and not v["correct"] and not v["legal"]     # a wrong answer: still 0
    rc, [v], _ = _verify("--env", "math", "--problem", '{"question": "2+2?", "answer": '
                         '"#### 4"}', "--completion", "so \\boxed{4}")
    assert rc == 0 and v["correct"] and v["answer"] == "4"
    rc, [v], _ = _verify("-c", str(EXAMPLE / "config.yaml"), "--problem",
                         '{"start": "abcd", "target": "bcda"}', "--completion", "rot=bcda\n")
    assert rc == 0 and v["correct"] and v["step_rewards"] == [1.0]
    batch = tmp_path / "c.jsonl"
    batch.write_text('{"completion": "swp=bacd\\nswp=abcd\\nrot=bcda\\n"}\n'
                     '{"completion": "swp=bacd\\n", "problem": {"start": "abcd", '
                     '"target": "bacd"}}\n')
    rc, vs, _ = _verify("--env", "examples/wordops/wordops.py:WordOps", "--file", str(batch),
                        "--problem", '{"start": "abcd", "target": "bcda"}')
    assert rc == 0 and [v["correct"] for v in vs] == [True, True]
    assert vs[0]["step_rewards"] == [0.0, 1.0, 1.0]   # the first swp led away: the oracle


@pytest.mark.parametrize("args, match", [
    (["--env", "countdown", "--problem", "{bad", "--completion", "x"], "not valid JSON"),
    (["--env", "countdown", "--problem", '{"numbers": [3, 4], "target": 13}',
      "--completion", "x"], "cannot reach 13"),
    (["--env", "countdown", "--completion", "x"], "needs --problem"),
    (["--env", "no.such.module:Env", "--problem", "{}", "--completion", "x"],
     "does not import"),
    (["--problem", "{}", "--completion", "x"], "give --config RECIPE or --env NAME"),
    (["--trajectory", "nope"], "no database yet"),
])
def test_verify_cli_bad_input_is_one_line_and_exit_1(tmp_path, args, match):
    rc, lines, err = _verify(*args, *(["--root", str(tmp_path)] if "--trajectory" in args
                                      else []))
    assert rc == 1 and not lines and match in err and err.count("\n") == 1, err


def test_verify_cli_explains_a_stored_trajectory(plugin_run):
    cfg, ws, _ = plugin_run
    rows = db.query(ws / "reasonloop.duckdb", "SELECT traj_id, correct FROM trajectories "
                    "WHERE iteration = 1 AND method = 'best_of_n' ORDER BY correct DESC, "
                    "traj_id LIMIT 1")
    rc, [v], _ = _verify("--trajectory", rows["traj_id"][0], "--root", str(ws))
    assert rc == 0 and v["correct"] is True is v["stored"]["correct"]
    assert v["step_rewards"] == v["stored"]["step_rewards"]
