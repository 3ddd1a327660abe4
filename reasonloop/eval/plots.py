"""The flywheel's curve as a PNG: held-out pass@1 (and pass@k) by iteration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_curve(history: list[dict], out: Path, title: str = "reasonloop flywheel") -> Path:
    """history: [{'iteration': i, 'val_pass@1': .., 'test_pass@1': .., 'test_pass@k': ..}]"""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    its = [h["iteration"] for h in history]
    for key, style in [("test_pass@1", "o-"), ("val_pass@1", "s--"), ("test_pass@k", "^:"),
                       ("test_maj@k", "v:")]:
        ys = [h.get(key) for h in history]
        if any(y is not None for y in ys):
            ax.plot(its, [100 * (y or 0) for y in ys], style, label=key)
    ax.set_xlabel("iteration (0 = after policy init)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
