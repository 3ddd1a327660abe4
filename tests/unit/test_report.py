"""The run report from a store alone: every section present, model text escaped (never
markup), and an early run (nothing searched yet) still gets a page."""

from types import SimpleNamespace

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.eval import report
from reasonloop.store import db

EVIL = "<script>alert(1)</script> 3+4=7\n\n<img src=x onerror=alert(2)>"


def _store(tmp_path, iterations: int = 2):
    p = tmp_path / "reasonloop.duckdb"
    db.init_db(p)
    db.record_run(p, "r", "{}", "h", "x")
    db.insert_problems(p, "countdown", [SimpleNamespace(
        problem_id="p1", split="train", prompt="Make 7 from <3, 4>", meta={})])
    for it in range(iterations + 1):
        db.update_iteration(p, "r", it, phase="init" if it == 0 else "bc", n_expert=it)
        db.replace_evals(p, "r", it, [
            {"run_id": "r", "iteration": it, "model_version": str(it + 1), "split": s,
             "method": "greedy", "budget": 1, "metric": "pass@1", "k": 1,
             "value": 0.1 * it, "n": 10} for s in ("val", "test")])
        if it:
            db.insert_trajectories(p, db.trajectories_frame("r", it, [
                {"problem_id": "p1", "method": "best_of_n", "sample_idx": i,
                 "text": EVIL if i == 0 else f"wrong {i}", "steps": ["3+4=7"],
                 "step_rewards": [0.9], "outcome_reward": float(i == 0),
                 "correct": i == 0, "n_tokens": 10 + i} for i in range(3)]))
    db.record_promotion(p, model="m", version="2", run_id="r", iteration=1, who="gate",
                        champion_version="1", decision="promoted", reason="test")
    return p


def test_every_section_and_model_text_escaped(tmp_path):
    rep = report.build(_store(tmp_path), "r", tmp_path / "rep", "m")
    page = rep["html"].read_text()
    for section in ("train-time", "test-time", "distributions", "growth", "promotions",
                    "examples"):
        assert f"id='{section}'" in page
    assert set(rep["pngs"]) == {"train_time", "scaling", "distributions", "growth"}
    assert page.count('src="data:image/png;base64,') == 4
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "best: iteration 2" in page and "typical failure: iteration 2" in page
    assert "bc (from iteration 1)" in page and "promoted" in page
    assert rep["iterations"]["gate"].to_list() == [None, "promoted", None]


def test_an_early_run_still_gets_a_page(tmp_path):
    rep = report.build(_store(tmp_path, iterations=0), "r", tmp_path / "rep", "m")
    page = rep["html"].read_text()
    assert "No trajectories yet" in page and "No test-time search" in page
    with pytest.raises(ReasonloopError, match="no run 'nope'"):
        report.build(tmp_path / "reasonloop.duckdb", "nope", tmp_path / "rep2", "m")
