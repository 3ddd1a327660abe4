"""Benchmark: a hundred nights. Runs `--turns` scheduled turns of a tiny config through the
turn function `reasonloop serve` runs (`flows.deploy.nightly`, on one Prefect server, as
serve does), with `retention.keep_last`, and prints per turn: wall time, overhead (the turn
beyond its iteration: flow start, stores, report, retention), DuckDB size, workspace disk,
and the disk the workspace would hold without retention (what it holds plus everything
retention freed so far), and the README views' latency.

    python benchmarks/nights.py [--turns 100] [--keep-last 3] [--root DIR]

Writes benchmarks/results/nights.md and nights.png.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.store import VIEWS  # noqa: E402
from flows.deploy import nightly  # noqa: E402
from reasonloop import compute  # noqa: E402
from reasonloop.config import load_config  # noqa: E402
from reasonloop.paths import Paths  # noqa: E402
from reasonloop.retention import size  # noqa: E402
from reasonloop.store import db  # noqa: E402
from tasks.runner import prefect_api  # noqa: E402

CONFIG = ROOT / "configs" / "tiny.yaml"      # seconds a turn
SHOWN = (1, 2, 10, 50, 100)
WHERE = "each in a process of its own (as serve runs them)"
TURN = ("import sys; from flows.deploy import nightly; "
        "nightly(sys.argv[1], 1, sys.argv[3:], sys.argv[2])")


def views(path: Path) -> dict[str, float]:
    out = {}
    for name, sql in VIEWS.items():
        t0 = time.perf_counter()
        db.query(path, sql)
        out[name] = time.perf_counter() - t0
    return out


def disk(P: Paths) -> int:
    """The workspace on disk (Prefect's own state — its database and the task results the
    cache keeps, a few KB a stage — lives in PREFECT_HOME)."""
    return size(P.root)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--keep-last", type=int, default=3)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--same-process", action="store_true",
                    help="every turn in this process (faster; memory and caches accumulate)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nights.md")
    a = ap.parse_args()
    ws = (a.root or Path(tempfile.mkdtemp(prefix="reasonloop-nights-"))).resolve()
    P = Paths(ws)
    overrides = [f"retention.keep_last={a.keep_last}"]
    cfg = load_config(CONFIG, overrides + [f"run.root={ws}"])
    logging.getLogger("dvc").setLevel(logging.WARNING)
    rows, freed_so_far = [], 0
    with prefect_api(cfg.serve.start_timeout_s):
        for t in range(1, a.turns + 1):
            t0 = time.perf_counter()
            if a.same_process:
                nightly(str(CONFIG), 1, overrides, str(ws))
            else:       # as `serve` runs a scheduled flow run: a process of its own
                subprocess.run([sys.executable, "-c", TURN, str(CONFIG), str(ws), *overrides],
                               cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            turn = db.query(P.db, "SELECT * FROM turns ORDER BY turn DESC LIMIT 1").row(
                0, named=True)
            freed_so_far += turn["freed_bytes"] or 0
            row = {"turn": t, "wall_s": wall, "overhead_s": turn["overhead_s"],
                   "iteration_s": turn["iteration_seconds"], "duckdb_mb": size(P.db) / 2**20,
                   "disk_mb": disk(P) / 2**20,
                   "no_retention_mb": (disk(P) + freed_so_far) / 2**20}
            if t in SHOWN or t == a.turns:
                row["views"] = views(P.db)
            rows.append(row)
            print(f"turn {t}: {wall:.1f} s (overhead {row['overhead_s']:.1f} s)  disk "
                  f"{row['disk_mb']:.1f} MB  without retention {row['no_retention_mb']:.1f} MB",
                  flush=True)
    write(rows, a, ws)


def _window(rows: list[dict], t: int, key: str, w: int = 5) -> float:
    """The median over turns t-w+1..t (one turn's time is noisy on a shared CPU)."""
    return statistics.median(r[key] for r in rows if t - w < r["turn"] <= t)


def write(rows: list[dict], a, ws: Path) -> None:
    shown = [r for r in rows if r["turn"] in SHOWN or r is rows[-1]]
    lines = ["# A hundred nights: cost per turn, disk, store", "",
             f"machine: {compute.machine().describe()}; one turn = one "
             f"iteration of `configs/tiny.yaml`, through "
             f"`flows.deploy.nightly` on one Prefect server, "
             f"{'all in one process' if a.same_process else WHERE}; "
             f"`retention.keep_last` = {a.keep_last}. Wall time is the whole turn"
             f"{'' if a.same_process else ' with the interpreter start'}; overhead is the "
             f"turn (from `nightly`'s start) less its iteration's own stages.", "",
             "| turn | wall s | overhead s | overhead s (median of 5) | iteration s | "
             "DuckDB MB | disk MB | disk MB without retention | slowest view s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in shown:
        slow = max(r["views"].values()) if "views" in r else float("nan")
        lines.append(f"| {r['turn']} | {r['wall_s']:.1f} | {r['overhead_s']:.1f} | "
                     f"{_window(rows, r['turn'], 'overhead_s'):.1f} | {r['iteration_s']:.1f} | "
                     f"{r['duckdb_mb']:.1f} | {r['disk_mb']:.1f} | {r['no_retention_mb']:.1f} "
                     f"| {slow:.3f} |")
    if len(rows) >= 10:
        early, late = _window(rows, 6, "overhead_s"), _window(rows, rows[-1]["turn"],
                                                              "overhead_s")
        lines += ["", f"Overhead, median of turns 2–6 against the last 5: {early:.2f} s → "
                      f"{late:.2f} s ({(late / early - 1) * 100:+.0f}%)."]
    lines += ["", "View latency (s) at each shown turn:", "",
              "| turn | " + " | ".join(VIEWS) + " |", "|---" * (len(VIEWS) + 1) + "|"]
    lines += [f"| {r['turn']} | " + " | ".join(f"{v:.3f}" for v in r["views"].values()) + " |"
              for r in shown if "views" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    turns = [r["turn"] for r in rows]
    ax1.plot(turns, [r["wall_s"] for r in rows], label="turn wall time")
    ax1.plot(turns, [r["overhead_s"] for r in rows], label="overhead (beyond the iteration)")
    ax1.set_xlabel("night"), ax1.set_ylabel("seconds"), ax1.set_ylim(bottom=0), ax1.legend()
    ax2.plot(turns, [r["disk_mb"] for r in rows], label=f"keep_last={a.keep_last}")
    ax2.plot(turns, [r["no_retention_mb"] for r in rows], label="without retention")
    ax2.set_xlabel("night"), ax2.set_ylabel("workspace MB"), ax2.legend()
    fig.suptitle("A hundred nights of the flywheel")
    fig.tight_layout()
    png = a.out.with_suffix(".png")
    fig.savefig(png, dpi=110)
    lines += ["", f"![nights]({png.name})", ""]
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
