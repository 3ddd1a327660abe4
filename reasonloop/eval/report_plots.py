"""The report's figures (matplotlib): the flywheel's curve with its phases and promotions,
reward and length distributions per iteration, and the growth of D_search / D_expert."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import polars as pl

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

PHASE_COLOURS = {"init": "#eeeeee", "bc": "#dbe9f6", "dpo": "#fde6c8", "grpo": "#dcefd9"}


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _phase_spans(rows: list[dict]) -> list[tuple[str, int, int]]:
    """(phase, first, last iteration) of each run of iterations in one phase."""
    spans: list[tuple[str, int, int]] = []
    for r in rows:
        ph = r["phase"] or "?"
        if spans and spans[-1][0] == ph and spans[-1][2] == r["iteration"] - 1:
            spans[-1] = (ph, spans[-1][1], r["iteration"])
        else:
            spans.append((ph, r["iteration"], r["iteration"]))
    return spans


def train_time(its: pl.DataFrame, promoted: set[int], out: Path, title: str) -> Path:
    """pass@1 by iteration (train-time scaling): the learner's phase shaded behind each
    iteration, a star where the gate promoted the iteration's model to champion."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    rows = its.to_dicts()
    seen = set()
    for ph, lo, hi in _phase_spans(rows):     # one span per phase run, not per iteration
        ax.axvspan(lo - 0.5, hi + 0.5, color=PHASE_COLOURS.get(ph, "#f2f2f2"), alpha=0.8,
                   lw=0, label=None if ph in seen else f"phase: {ph}")
        seen.add(ph)
    x = [r["iteration"] for r in rows]
    for key, label, style in [("test_pass1", "test pass@1", "o-"),
                              ("val_pass1", "val pass@1", "s--"),
                              ("test_passk", "test pass@k", "^:"),
                              ("test_majk", "test maj@k", "v:")]:
        ys = [r.get(key) for r in rows]
        if any(y is not None for y in ys):
            ax.plot(x, [100 * y if y is not None else float("nan") for y in ys], style,
                    label=label)
    stars = [r for r in rows if r["iteration"] in promoted and r.get("val_pass1") is not None]
    if stars:
        ax.plot([r["iteration"] for r in stars], [100 * r["val_pass1"] for r in stars], "*",
                ms=14, color="gold", mec="black", label="promoted → champion")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))   # not one per night
    ax.set_xlabel("iteration (0 = after policy init)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    return _save(fig, out)


def distributions(traj: pl.DataFrame, out: Path, title: str) -> Path:
    """Per iteration: the reward of each searched trajectory (shaped when the run shapes,
    else the mean PRM step reward, else the ORM outcome) and its length in tokens, correct
    and wrong apart — where reward hacking and length drift show first."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    its = sorted(traj["iteration"].unique().to_list())
    rewards = [traj.filter(pl.col("iteration") == i)["reward"].drop_nulls().to_list()
               for i in its]
    if any(rewards):
        a1.violinplot([r or [0.0] for r in rewards], positions=its, showmedians=True)
    a1.set_xticks(its)
    a1.set_xlabel("iteration")
    a1.set_ylabel(f"reward ({traj['reward_kind'][0] if traj.height else 'none'})")
    a1.set_title("reward of D_search")
    a1.grid(alpha=0.3)
    w = 0.35
    for off, ok, colour in [(-w / 2, True, "#4c9a2a"), (w / 2, False, "#c0392b")]:
        data = {i: traj.filter((pl.col("iteration") == i) & (pl.col("correct") == ok))[
            "n_tokens"].to_list() for i in its}
        data = {i: d for i, d in data.items() if d}
        if not data:
            continue
        bp = a2.boxplot(list(data.values()), positions=[i + off for i in data], widths=w * 0.9,
                        patch_artist=True, showfliers=False, manage_ticks=False)
        for b in bp["boxes"]:
            b.set_facecolor(colour)
            b.set_alpha(0.6)
        a2.plot([], [], "s", color=colour, alpha=0.6, label="correct" if ok else "wrong")
    a2.set_xticks(its)
    a2.set_xlabel("iteration")
    a2.set_ylabel("generated tokens")
    a2.set_title("length of D_search")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, out)


def data_growth(growth: pl.DataFrame, out: Path, title: str) -> Path:
    """|D_search| and |D_expert| per iteration (bars) and in all (lines): how much the
    flywheel searches for each trajectory it keeps."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    x = growth["iteration"].to_list()
    edges = [i - 0.5 for i in x] + [x[-1] + 0.5] if x else [0, 1]
    # one artist each however many iterations (a bar per iteration slows a long run's report)
    ax.stairs(growth["n_search"].to_list() or [0], edges, fill=True, alpha=0.7,
              label="|D_search|", color="#7fa7d6")
    ax.stairs(growth["n_expert"].to_list() or [0], edges, fill=True, alpha=0.8,
              label="|D_expert|", color="#f0a35e")
    ax2 = ax.twinx()
    ax2.plot(x, growth["n_search"].cum_sum().to_list(), "o-", color="#2c5d94",
             label="D_search (cumulative)")
    ax2.plot(x, growth["n_expert"].cum_sum().to_list(), "s-", color="#b8621b",
             label="D_expert (cumulative)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))   # not one per night
    ax.set_xlabel("iteration")
    ax.set_ylabel("trajectories per iteration")
    ax2.set_ylabel("trajectories (cumulative)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(fig, out)
