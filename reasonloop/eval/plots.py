"""Test-time search as a PNG: accuracy against generated tokens (the curve by iteration is
`report_plots.train_time`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_test_time(results: list[dict], out: Path, title: str = "test-time search") -> Path:
    """Accuracy vs mean generated tokens per problem, one line per method (points = budgets):
    the compute-optimal-search picture (Snell et al. 2024)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for method in dict.fromkeys(r["method"] for r in results):
        pts = sorted((r["tokens"], r["accuracy"], r["budget"]) for r in results
                     if r["method"] == method)
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label=method)
        for x, y, b in pts:
            ax.annotate(str(b), (x, 100 * y), textcoords="offset points", xytext=(3, 3),
                        fontsize=7, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem (log)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
