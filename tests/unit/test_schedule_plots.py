import polars as pl

from reasonloop.eval.report_plots import train_time


def _its(test_pass1):
    return pl.DataFrame({"iteration": [0, 1, 2], "phase": ["init", "bc", "bc"],
                         "test_pass1": test_pass1, "val_pass1": [0.12, None, 0.3],
                         "test_passk": [None, None, None], "test_majk": [None, None, None]})


def test_plot_draws_the_data(tmp_path):
    """A real image of the numbers: a PNG of a sensible size with ink on it, and other
    numbers draw a different picture (the curve moves where the data moves)."""
    from matplotlib.image import imread
    a = train_time(_its([0.1, 0.3, 0.5]), {0}, tmp_path / "a.png", "a run")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(a)
    h, w = img.shape[:2]
    assert 200 <= h <= 4000 and 200 <= w <= 4000
    ink = (img[..., :3].mean(axis=-1) < 0.9).mean()
    assert 0.005 < ink < 0.5                           # drawn on, not blank, not a smear
    colours = {tuple(px) for px in (img[..., :3] * 255).astype(int).reshape(-1, 3)[::7]}
    assert len(colours) > 10                           # lines and text, not one flat fill
    b = imread(train_time(_its([0.5, 0.3, 0.1]), {0}, tmp_path / "b.png", "a run"))
    assert b.shape == img.shape and (abs(b - img).sum(axis=-1) > 0.1).mean() > 0.001
    same = imread(train_time(_its([0.1, 0.3, 0.5]), {0}, tmp_path / "c.png", "a run"))
    assert (abs(same - img) > 0).mean() == 0           # the same numbers: the same picture


def test_bc_batches_share_a_length_bucket():
    """Short examples in 64-char bins, traces (over 128 chars) in 16-char ones: a batch of
    traces pads to within 16 characters."""
    from reasonloop.learn.sft import batch_order, bucket
    short = [{"prompt": f"{i} 2>3\n", "completion": "1+2=3 [3]\n"} for i in range(50)]
    long = [{"prompt": "x" * 90 + f"{i}\n", "completion": "1+2=3 [3]\n"} for i in range(13)]
    traces = [{"prompt": f"{i}>9\n", "completion": "y" * (130 + 7 * i)} for i in range(40)]
    assert bucket(20) == bucket(63) != bucket(64) == bucket(127)
    assert bucket(128) == bucket(143) != bucket(144)
    order = batch_order(short + long + traces, 8, 40, seed=0)
    assert len(order) >= 40 * 8 and len(order) % 8 == 0
    for i in range(0, len(order), 8):
        sizes = [len(e["prompt"]) + len(e["completion"]) for e in order[i:i + 8]]
        assert len({bucket(n) for n in sizes}) == 1
        assert min(sizes) < 128 or max(sizes) - min(sizes) < 16
    seen = {e["prompt"] for e in order}
    assert seen == {e["prompt"] for e in short + long + traces}        # nothing dropped
    assert order != batch_order(short + long + traces, 8, 40, seed=1)
    assert order == batch_order(short + long + traces, 8, 40, seed=0)
