import polars as pl

from reasonloop.eval.report_plots import train_time


def test_plot_writes_png(tmp_path):
    its = pl.DataFrame({"iteration": [0, 1], "phase": ["init", None], "test_pass1": [0.1, 0.3],
                        "val_pass1": [0.12, None], "test_passk": [None, None],
                        "test_majk": [None, None]})
    out = train_time(its, {0}, tmp_path / "c.png", "a run")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bc_batches_share_a_length_bucket():
    from reasonloop.learn.sft import BUCKET_CHARS, batch_order
    short = [{"prompt": f"{i} 2>3\n", "completion": "1+2=3 [3]\n"} for i in range(50)]
    long = [{"prompt": "x" * 90 + f"{i}\n", "completion": "1+2=3 [3]\n"} for i in range(13)]
    order = batch_order(short + long, 8, 20, seed=0)
    assert len(order) >= 20 * 8 and len(order) % 8 == 0
    for i in range(0, len(order), 8):
        bins = {(len(e["prompt"]) + len(e["completion"])) // BUCKET_CHARS
                for e in order[i:i + 8]}
        assert len(bins) == 1
    seen = {e["prompt"] for e in order}
    assert seen == {e["prompt"] for e in short + long}        # nothing dropped
    assert order != batch_order(short + long, 8, 20, seed=1)
    assert order == batch_order(short + long, 8, 20, seed=0)
