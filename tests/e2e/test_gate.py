"""The promotion gate: McNemar on per-problem val outcomes; a degraded challenger is never
promoted, a clearly better one is; every decision is a DuckDB row and a version tag."""

import pytest

from reasonloop.eval.gate import decide, mcnemar_p


def test_mcnemar_exact_values():
    assert mcnemar_p(0, 5) == pytest.approx(1 / 32)
    assert mcnemar_p(5, 5) == pytest.approx(sum(__import__("math").comb(10, i)
                                                for i in range(5, 11)) / 1024)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 1) > 0.9


def test_decide_is_paired():
    champ = {f"p{i}": i < 10 for i in range(40)}
    same_count_other_problems = {f"p{i}": 10 <= i < 21 for i in range(40)}   # 11 vs 10 solved
    assert not decide(champ, same_count_other_problems, 0.05)["promote"]
    better = {f"p{i}": i < 20 for i in range(40)}
    d = decide(champ, better, 0.05)
    assert d["promote"] and (d["b"], d["c"]) == (0, 10) and d["p_value"] < 0.001


@pytest.mark.slow
def test_register_gate_refuses_worse_promotes_better(smoke_cfg, tiny_model_dir):
    from reasonloop.stages import register
    from reasonloop.stages.evaluate import Evaluation
    from reasonloop.stages.start import start_run
    from reasonloop.store import db, registry
    from reasonloop.workspace import Iteration, paths, split
    cfg = smoke_cfg
    start_run(cfg, "g")
    val = split(cfg, "val")

    def evaluated(it: int, solved: int) -> Evaluation:
        rows = [{"problem_id": p.problem_id, "method": "eval:greedy", "sample_idx": 0,
                 "text": "x", "n_tokens": 1, "steps": [], "step_rewards": [],
                 "outcome_reward": float(i < solved), "correct": i < solved}
                for i, p in enumerate(val)]
        db.insert_trajectories(paths(cfg).db, db.trajectories_frame("g", it, rows))
        return Evaluation({"val_pass@1": solved / len(val), "test_pass@1": 0.0})

    def reg_at(it: int, solved: int, phase: str = "bc") -> dict:
        return register.register(Iteration(cfg, "g", it), str(tiny_model_dir),
                                 evaluated(it, solved), phase, None)

    reg = [reg_at(0, 8, "init"), reg_at(1, 4), reg_at(2, 9), reg_at(3, 22)]
    assert [r["promoted"] for r in reg] == [True, False, False, True]  # 9 vs 8: not significant
    rows = db.query(paths(cfg).db, "SELECT version, decision, b, c FROM promotions "
                    "ORDER BY decided_at").rows()
    assert [r[1] for r in rows] == ["promoted", "refused", "refused", "promoted"]
    assert rows[1][2:] == (4, 0) and rows[3][2:] == (0, 14)
    registry.setup(paths(cfg).mlflow_db, paths(cfg).mlartifacts)
    champ = registry.version_by_alias(cfg.run.name, registry.CHAMPION)
    assert str(champ.version) == reg[3]["version"] and champ.tags["promotion"] == "promoted"
    refused = registry.MlflowClient().get_model_version(cfg.run.name, reg[1]["version"])
    assert refused.tags["promotion"] == "refused"
    # a rerun of a registered iteration decides nothing twice
    again = [reg_at(i, n) for i, n in ((1, 4), (3, 22))]
    assert [r["promoted"] for r in again] == [False, True]
    assert db.query(paths(cfg).db, "SELECT count(*) AS n FROM promotions")["n"][0] == 4
    # the manual override records who and why
    from typer.testing import CliRunner

    from reasonloop.cli import app
    res = CliRunner().invoke(app, ["promote", cfg.run.name, reg[1]["version"], "--reason",
                                   "rollback drill", "--root", str(cfg.run.root)])
    assert res.exit_code == 0, res.output
    tags = registry.version_tags(cfg.run.name, reg[1]["version"])
    assert tags["promotion"] == "manual" and tags["promote_reason"] == "rollback drill"
    assert tags["promoted_by"]
    last = db.query(paths(cfg).db, "SELECT decision, reason, champion_version FROM "
                    "promotions ORDER BY decided_at DESC LIMIT 1").row(0)
    assert last == ("manual", "rollback drill", reg[3]["version"])
    assert str(registry.version_by_alias(cfg.run.name, "champion").version) == reg[1]["version"]
