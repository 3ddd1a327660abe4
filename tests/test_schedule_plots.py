from reasonloop.eval.plots import plot_curve
from reasonloop.learn.schedule import phase


def test_bc_until_gain_stalls_then_next_phase():
    s = ["bc", "dpo", "grpo"]
    assert phase(s, []) == "bc"
    assert phase(s, [{"phase": "init", "val_pass@1": 0.0}]) == "bc"
    rising = [{"phase": "bc", "val_pass@1": 0.1}, {"phase": "bc", "val_pass@1": 0.2}]
    assert phase(s, rising) == "bc"
    flat = [{"phase": "bc", "val_pass@1": 0.2}, {"phase": "bc", "val_pass@1": 0.205}]
    assert phase(s, flat) == "dpo"
    assert phase(["bc"], flat) == "bc"          # nothing to switch to


def test_plot_writes_png(tmp_path):
    out = plot_curve([{"iteration": 0, "test_pass@1": 0.1, "val_pass@1": 0.12},
                      {"iteration": 1, "test_pass@1": 0.3, "val_pass@1": None}],
                     tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
