"""`reasonloop eval --methods ... --budgets ... --problems FILE.jsonl`: test-time search from
the command line, through the Prefect flow, into DuckDB and MLflow; bad input fails cleanly."""

import json

import pytest

from reasonloop.envs.countdown import load_problems
from reasonloop.errors import InputError
from tests.conftest import SMOKE
from tests.e2e.test_cli import _run


def _problems(tmp_path, lines):
    f = tmp_path / "problems.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_eval_methods_on_a_problems_file(tmp_path, tiny_model_dir):
    f = _problems(tmp_path, [json.dumps({"numbers": [3, 5, 2], "target": 16}),
                             json.dumps({"numbers": [4, 6, 1], "target": 25}), "",
                             json.dumps({"numbers": [5, 3, 2], "target": 16})])  # duplicate
    ws = tmp_path / "ws"
    r = _run(["eval", "--model", str(tiny_model_dir), "--methods", "best_of_n,majority,beam,"
              "dvts,mcts,revise,weighted_bon", "--budgets", "1,2", "--problems", str(f),
              "-c", str(SMOKE), "--root", str(ws)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 file" in r.stdout and "plot:" in r.stdout
    from reasonloop.store import db
    ev = db.query(ws / "reasonloop.duckdb", "SELECT * FROM evals")
    assert ev.height == 7 * 2 * 2 and set(ev["split"]) == {"file"} and set(ev["n"]) == {2}
    tr = db.query(ws / "reasonloop.duckdb", "SELECT DISTINCT method FROM trajectories")
    assert {"eval:best_of_n@2", "eval:beam@1", "eval:mcts@2", "eval:revise@2"} <= \
        set(tr["method"])
    assert list((ws / "reports").glob("eval-*/test_time.png"))


def test_eval_accuracy_is_what_the_trajectories_say_and_is_in_mlflow(tmp_path,
                                                                      solver_overrides):
    """With a policy that solves some of the problems: best-of-N (oracle verifier) accuracy
    at budget B is the share of problems with a correct sample among the B stored ones;
    majority voting cannot beat it; the MLflow run named after the eval holds the same
    numbers and the plot."""
    import polars as pl
    from mlflow import MlflowClient

    from reasonloop.store import db, registry
    rows = [([3, 5], 8), ([6, 3], 2), ([4, 7], 28), ([9, 2], 7), ([8, 8], 16), ([5, 1], 4)]
    f = _problems(tmp_path, [json.dumps({"numbers": n, "target": t}) for n, t in rows])
    ws, policy = tmp_path / "ws", solver_overrides[-1].split("=", 1)[1]
    r = _run(["eval", "--model", policy, "--methods", "best_of_n,majority", "--budgets", "1,4",
              "--problems", str(f), "-c", str(SMOKE), "--root", str(ws)], tmp_path)
    assert r.returncode == 0, r.stderr
    store = ws / "reasonloop.duckdb"
    acc = db.query(store, "SELECT run_id, method, budget, value FROM evals "
                   "WHERE metric = 'accuracy' ORDER BY method, budget")
    traj = db.query(store, "SELECT method, problem_id, correct FROM trajectories")
    for row in acc.filter(pl.col("method") == "best_of_n").iter_rows(named=True):
        mine = traj.filter(pl.col("method") == f"eval:best_of_n@{row['budget']}")
        assert mine.height == len(rows) * row["budget"]
        solved = mine.group_by("problem_id").agg(pl.col("correct").any())["correct"].sum()
        assert row["value"] == pytest.approx(solved / len(rows))
    by = {(m, b): v for _, m, b, v in acc.iter_rows()}
    assert by[("best_of_n", 4)] > 0 and by[("majority", 4)] <= by[("best_of_n", 4)]
    registry.setup(ws / "mlflow.db", ws / "mlartifacts")
    client = MlflowClient()
    exp = client.get_experiment_by_name("countdown-smoke")
    [run] = client.search_runs([exp.experiment_id],
                               f"attributes.run_name = '{acc['run_id'][0]}'")
    for (method, budget), value in by.items():
        logged = run.data.metrics[f"file_search/{method}_at_{budget}"]
        assert logged == pytest.approx(value), (method, budget, run.data.metrics)
    assert "test_time.png" in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.parametrize("line, expect", [
    ("{oops", "not valid JSON"),
    ('{"numbers": [1, 2]}', "'target' must be an integer"),
    ('{"numbers": [1], "target": 1}', "'numbers' must be a list of 2 to 5"),
    ('{"numbers": [1, "2"], "target": 3}', "'numbers' must be a list"),
    ('{"numbers": [1, 2], "target": 3, "extra": 1}', "expected an object"),
    ('{"numbers": [1, 1], "target": 7}', "not solvable"),
    ("[1, 2, 3]", "expected a JSON object"),
])
def test_bad_problem_lines_name_the_line(tmp_path, line, expect):
    f = _problems(tmp_path, [json.dumps({"numbers": [3, 5, 2], "target": 16}), line])
    with pytest.raises(InputError, match=expect) as e:
        load_problems(f)
    assert ":2:" in str(e.value)


def test_eval_bad_arguments_fail_cleanly(tmp_path, tiny_model_dir):
    ws = tmp_path / "ws"
    for args, expect in [(["--methods", "beam,nope"], "unknown --methods"),
                         (["--methods", "beam", "--budgets", "4,x"], "--budgets"),
                         (["--methods", "beam", "--budgets", "0"], "--budgets must be positive"),
                         (["--methods", "beam", "--problems", str(tmp_path / "no.jsonl")],
                          "problems file not found"),
                         (["--methods", "orm_bon"], "no learned ORM"),
                         (["--methods", "beam", "--set", "reward.prm=learned"],
                          "no learned PRM"),
                         (["--methods", "beam", "--set", "reward.prm_model=/nowhere"],
                          "model not found")]:
        r = _run(["eval", "--model", str(tiny_model_dir), *args, "-c", str(SMOKE),
                  "--root", str(ws)], tmp_path)
        assert r.returncode == 1 and expect in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout
        assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    assert not (ws / "reasonloop.duckdb").exists()
