"""The flow's bookkeeping: each stage's seconds of real work come from the stage's own
result (so they arrive from a Ray or Dask worker too), laps mark where an iteration stands."""

from reasonloop.stages.evaluate import Evaluation
from reasonloop.stages.filter import Filtered
from reasonloop.stages.generate import Shard
from reasonloop.stages.progress import Laps, init_row, work_seconds
from reasonloop.stages.verify import Searched
from reasonloop.store import db
from reasonloop.workspace import Iteration


def test_work_seconds_of_each_kind_of_result():
    assert work_seconds([Shard("a", 2.0), Shard("b", 3.5)]) == 3.5     # parallel: the longest
    assert work_seconds(Evaluation({"val_pass@1": 0.1}, seconds=4.0)) == 4.0
    assert work_seconds(Searched(1, 1, 1, 1, 1.0, 1.0, 10, 100.0, seconds=0.5)) == 0.5
    assert work_seconds(Filtered(3, 0, 0, "md5", seconds=0.25)) == 0.25
    assert work_seconds({"path": "x", "seconds": 7}) == 7.0                  # train stats
    assert work_seconds({"prm": {"seconds": 1.0}, "orm": {"seconds": 2.0}}) == 3.0
    assert work_seconds({}) == 0.0 and work_seconds([]) == 0.0


def test_laps_record_stage_done_and_finish_once(smoke_cfg):
    it = Iteration(smoke_cfg, "r", 1)
    db.init_db(it.paths.db)
    lap = Laps(it)
    lap("generate", [Shard("a", 0.01)])
    done = db.query(it.paths.db, "SELECT stage_done FROM iterations WHERE run_id = 'r'")
    assert done["stage_done"].to_list() == ["generate"]
    lap("evaluate", Evaluation({"val_pass@1": 0.2, "test_pass@1": 0.1}, seconds=0.02))
    row = lap.finish("bc", Evaluation({"val_pass@1": 0.2, "test_pass@1": 0.1}),
                     {"version": "1", "promoted": True}, None, None, {}, {"n_sampled": 5})
    assert row["seconds"]["compute"] == {"generate": 0.01, "evaluate": 0.02}
    assert row["seconds"]["total"] >= row["seconds"]["generate"]
    assert row["val_pass@1"] == 0.2 and row["promoted"] and "n_search" not in row
    again = Laps(it).finish("bc", Evaluation({"val_pass@1": 0.2, "test_pass@1": 0.1}),
                            {"version": "1", "promoted": True}, None, None, {}, {})
    assert again["seconds"] == row["seconds"]           # a replay keeps the first finish


def test_the_initial_policy_is_reported_like_an_iteration(capsys):
    row = init_row(Evaluation({"val_pass@1": 0.683, "test_pass@1": 0.606, "test_pass@k": 0.7}))
    assert row == {"iteration": 0, "phase": "init", "val_pass@1": 0.683,
                   "test_pass@1": 0.606, "test_pass@k": 0.7}
    assert capsys.readouterr().out == "iteration 0 (init): test pass@1 0.606  val 0.683\n"
