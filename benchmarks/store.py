"""Benchmark: the DuckDB store at flywheel scale — ingest rate and view latency as the
trajectories table grows, written through the project's own path (`db.trajectories_frame`,
`db.insert_trajectories`) in iteration-sized batches.

    python benchmarks/store.py [--sizes 1,3,10] [--batch 32000] [--root DIR]

Sizes in millions of trajectories. At each size it prints the ingest rate of the last
batches (rows/min) and the time each README view takes to answer (fully computed), the file
size, and writes benchmarks/results/store.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasonloop import compute  # noqa: E402
from reasonloop.envs.base import Problem  # noqa: E402
from reasonloop.store import db  # noqa: E402

# each view as people open it: every row computed (a row view is counted, not fetched)
VIEWS = {
    "d_expert": "SELECT count(*), sum(n_tokens) FROM d_expert",
    "search_efficiency": "SELECT * FROM search_efficiency",
    "step_error_rates": "SELECT * FROM step_error_rates",
    "unsolved_problems": "SELECT * FROM unsolved_problems LIMIT 20",
    "reward_hacking": "SELECT * FROM reward_hacking",
    "pass_by_iteration": "SELECT * FROM pass_by_iteration",
    "one problem's history": "SELECT iteration, text, correct FROM trajectories WHERE "
                             "problem_id = 'cd-p7' AND method = 'best_of_n'",
}
OPS = "+-*"
POOL, PER_ITERATION = 10_912, 2000   # the default's train pool and problems per iteration


def batch(rng: random.Random, run_id: str, iteration: int, n: int, n_problems: int):
    """One iteration's D_search: n samples over n_problems problems (16 each, slots
    `cd-p0..` that each iteration maps to its own draw from the pool), texts and rewards
    shaped like Countdown's (3 steps, ~40 characters), ~20% correct."""
    rows = []
    for i in range(n):
        pid = f"cd-p{i % n_problems}"
        steps = [f"{rng.randint(1, 20)}{rng.choice(OPS)}{rng.randint(1, 20)}={rng.randint(1, 400)}"
                 f" [{rng.randint(1, 99)} {rng.randint(1, 99)}]" for _ in range(3)]
        ok = rng.random() < 0.2
        rows.append({"problem_id": pid, "method": "best_of_n", "sample_idx": i // n_problems,
                     "text": "\n".join(steps) + "\n", "steps": steps,
                     "step_rewards": [float(rng.random() < 0.7) for _ in steps],
                     "outcome_reward": float(ok), "correct": ok, "n_tokens": 40,
                     "r_format": 1.0, "r_valid_steps": 1.0, "r_length": 0.0,
                     "shaped_reward": float(ok)})
    return db.trajectories_frame(run_id, iteration, rows)


def latencies(path: Path) -> dict[str, float]:
    out = {}
    with db.connect(path, read_only=True) as con:
        for name, sql in VIEWS.items():
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,3,10", help="millions of trajectories")
    ap.add_argument("--batch", type=int, default=32000, help="trajectories per iteration")
    ap.add_argument("--root", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "store.md"))
    args = ap.parse_args()
    sizes = [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    root = Path(args.root or tempfile.mkdtemp(prefix="reasonloop-store-"))
    path = root / "reasonloop.duckdb"
    db.init_db(path)
    rng = random.Random(0)
    template = batch(rng, "bench", 1, args.batch, PER_ITERATION)   # one iteration's rows
    pool = [f"cd-p{k}" for k in range(POOL)]          # each iteration draws its problems
    db.insert_problems(path, "countdown", [Problem(p, "train", p, {}) for p in pool])
    slot = template["problem_id"].str.slice(4).cast(pl.Int64)
    rows, it, lines = 0, 0, []
    for size in sizes:
        times = []
        while rows < size:
            it += 1
            drawn = pl.Series(rng.sample(pool, PER_ITERATION))
            df = template.with_columns(pl.lit(it, pl.Int32).alias("iteration"),
                                       drawn.gather(slot).alias("problem_id"))
            df = df.with_columns(pl.Series("traj_id", [
                db.traj_id("bench", it, p, "best_of_n", s)
                for p, s in zip(df["problem_id"], df["sample_idx"])]))
            t0 = time.perf_counter()
            added = db.insert_trajectories(path, df)
            times.append((time.perf_counter() - t0, added))
            rows += added
        last = times[-5:]
        rate = 60 * sum(a for _, a in last) / sum(t for t, _ in last)
        lat = latencies(path)
        mb = path.stat().st_size / 2**20
        lines.append((rows, rate, lat, mb))
        print(f"{rows:>11,} rows  ingest {rate / 1e6:.2f}M rows/min  " + "  ".join(
            f"{k} {v:.2f}s" for k, v in lat.items()) + f"  {mb:.0f} MB", flush=True)
    import duckdb
    machine = f"{compute.machine().describe()}; duckdb {duckdb.__version__}"
    head = "| trajectories | ingest (rows/min, last 5 batches) | " + " | ".join(VIEWS) + \
        " | file |"
    table = [head, "|" + "---|" * (head.count("|") - 1)]
    for rows_, rate, lat, mb in lines:
        table.append(f"| {rows_:,} | {rate / 1e6:.2f}M | " + " | ".join(
            f"{v:.2f} s" for v in lat.values()) + f" | {mb:.0f} MB |")
    report = "\n".join([f"# The store at scale ({args.batch:,} trajectories per iteration)", "",
                        f"machine: {machine}", "", *table, ""])
    print(report)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
