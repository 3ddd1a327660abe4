"""The train-time scaling report: held-out pass@1 against iterations, cumulative training
tokens and cumulative generated tokens, per learning phase, with a log-linear fit
(pass@1 ≈ a + b·log10 tokens). The paper leaves RL scaling laws open; this makes the curve
one query and one PNG for any run."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reasonloop.store import db

AXES = (("iteration", "iteration"), ("cum_train_tokens", "training tokens (cumulative)"),
        ("cum_gen_tokens", "generated tokens (cumulative)"))


def table(db_path: Path, run_id: str) -> pl.DataFrame:
    """One row per finished iteration: phase, val/test pass@1, tokens (per iteration and
    cumulative). Generated tokens = every trajectory the run searched or sampled for learning
    (D_search and GRPO's samples), evaluation excluded."""
    has = db.query(db_path, "SELECT count(*) AS n FROM information_schema.columns WHERE "
                   "table_name = 'iterations' AND column_name = 'train_tokens'")["n"][0]
    tokens = "i.train_tokens" if has else "NULL"     # a store from before the learning phases
    return db.query(db_path, f"""
        WITH gen AS (SELECT iteration, sum(n_tokens) AS gen_tokens FROM trajectories
                     WHERE run_id = $run AND {db.SEARCH_ROWS} GROUP BY 1)
        SELECT i.iteration, i.phase, p.val_pass1, p.test_pass1,
               coalesce({tokens}, 0) AS train_tokens,
               coalesce(g.gen_tokens, 0) AS gen_tokens,
               sum(coalesce({tokens}, 0)) OVER w AS cum_train_tokens,
               sum(coalesce(g.gen_tokens, 0)) OVER w AS cum_gen_tokens
        FROM iterations i
        JOIN pass_by_iteration p ON p.run_id = i.run_id AND p.iteration = i.iteration
        LEFT JOIN gen g ON g.iteration = i.iteration
        WHERE i.run_id = $run AND p.test_pass1 IS NOT NULL
        WINDOW w AS (ORDER BY i.iteration)
        ORDER BY i.iteration""", {"run": run_id})


def loglinear(x: list[float], y: list[float]) -> dict | None:
    """Least-squares pass@1 = a + b·log10(x) over points with x > 0; b = gain per 10×."""
    pts = [(math.log10(a), b) for a, b in zip(x, y) if a and a > 0 and b is not None]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    b, a = np.polyfit(xs, ys, 1)
    pred = a + b * xs
    ss = float(((ys - ys.mean()) ** 2).sum())
    r2 = 1 - float(((ys - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    return {"a": float(a), "b": float(b), "r2": r2, "n": len(pts)}


def fits(df: pl.DataFrame, metric: str = "test_pass1") -> list[dict]:
    """Per phase (and 'all' learning iterations) and per token axis."""
    out = []
    learn = df.filter(pl.col("iteration") > 0)
    groups = [("all", learn)] + [(ph, learn.filter(pl.col("phase") == ph))
                                 for ph in learn["phase"].unique(maintain_order=True)]
    for name, g in groups:
        for axis in ("cum_train_tokens", "cum_gen_tokens"):
            f = loglinear(g[axis].to_list(), g[metric].to_list())
            if f:
                out.append({"phase": name, "axis": axis, "metric": metric, **f})
    return out


def markdown(df: pl.DataFrame, fitted: list[dict]) -> str:
    lines = ["| iteration | phase | val pass@1 | test pass@1 | train tokens (cum) | "
             "generated tokens (cum) |", "|---|---|---|---|---|---|"]
    for r in df.iter_rows(named=True):
        lines.append(f"| {r['iteration']} | {r['phase']} | {_pct(r['val_pass1'])} | "
                     f"{_pct(r['test_pass1'])} | {r['cum_train_tokens']:,} | "
                     f"{r['cum_gen_tokens']:,} |")
    lines += ["", "Log-linear fits, test pass@1 = a + b·log10(tokens) (b: points per 10×):", "",
              "| phase | axis | a | b (pts / 10×) | R² | points |", "|---|---|---|---|---|---|"]
    lines += [f"| {f['phase']} | {f['axis']} | {f['a']:.3f} | {100 * f['b']:.1f} | "
              f"{f['r2']:.2f} | {f['n']} |" for f in fitted]
    return "\n".join(lines)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def plot(df: pl.DataFrame, fitted: list[dict], out: Path, title: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    colors = {ph: f"C{i}" for i, ph in enumerate(df["phase"].unique(maintain_order=True))}
    for ax, (col, label) in zip(axes, AXES):
        d = df if col == "iteration" else df.filter(pl.col(col) > 0)  # log axis: no 0 tokens
        x = d[col].to_list()
        for key, style, name in (("test_pass1", "-", "test"), ("val_pass1", "--", "val")):
            ys = [100 * (v or 0) for v in d[key]]
            ax.plot(x, ys, style, color="0.4", lw=1, label=name)
            ax.scatter(x, ys, c=[colors[p] for p in d["phase"]], s=28 if name == "test" else 14,
                       zorder=3, marker="o" if name == "test" else "s")
        for ph, c in colors.items():
            ax.scatter([], [], c=c, label=ph)
        for f in (f for f in fitted if f["axis"] == col and f["phase"] == "all"):
            xs = np.logspace(math.log10(max(1, df.filter(pl.col(col) > 0)[col].min())),
                             math.log10(max(1, df[col].max())), 50)
            ax.plot(xs, 100 * (f["a"] + f["b"] * np.log10(xs)), "k:", alpha=0.7,
                    label=f"fit: {100 * f['b']:.1f} pts/10×")
        if col != "iteration" and d.height:
            ax.set_xscale("log")
        elif not d.height:
            ax.text(0.5, 0.5, "no tokens recorded", ha="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("pass@1 (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def report(db_path: Path, run_id: str, out_dir: Path) -> dict:
    """Table + fits + PNG for one run → {'table', 'fits', 'markdown', 'png', 'md'}."""
    df = table(db_path, run_id)
    fitted = fits(df)
    md = markdown(df, fitted)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scaling.md").write_text(f"# Train-time scaling — {run_id}\n\n{md}\n")
    png = plot(df, fitted, out_dir / "scaling.png", f"train-time scaling — {run_id}")
    return {"table": df, "fits": fitted, "markdown": md, "png": png,
            "md": out_dir / "scaling.md"}
