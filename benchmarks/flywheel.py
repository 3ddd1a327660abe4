"""Benchmark: the default flywheel end to end, one table row per iteration.

    python benchmarks/flywheel.py [--config configs/default.yaml] [--root DIR] [--set k=v]

Prints held-out pass@1 (val/test), pass@k, maj@k, |D_search|, |D_expert|, seconds per stage,
and how much of each iteration was bookkeeping (Prefect + DuckDB + DVC + MLflow) rather than
sampling/scoring/training/eval compute. On Countdown it then evaluates the final policy on the
Stream-of-Search standard setting (4 numbers 1–99, targets 10–100) next to SoS's published
54.2%. Any env works (`--config examples/wordops/config.yaml --name wordops`).
Writes benchmarks/results/flywheel.md and the pass@1 curve PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from reasonloop.paths import Paths, shown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

SOS_PUBLISHED = 0.542   # Stream of Search (Gandhi et al. 2024), SoS+STaR, held-out targets


def sos_standard(policy: str, n: int, seed: int, engine: str) -> float:
    """Greedy pass@1 of `policy` on the SoS standard setting (its own held-out targets)."""
    from reasonloop.config import EnvConfig
    from reasonloop.envs.countdown import Countdown
    from reasonloop.eval.metrics import mean
    from reasonloop.policy.engines import SamplingParams, load_engine
    env = Countdown(EnvConfig(n_numbers=4, number_min=1, number_max=99, target_min=10,
                              target_max=100, n_train=10, n_val=10, n_test=n, seed=seed))
    test = [p for p in env.problems() if p.split == "test"]
    eng = load_engine(engine, policy)
    outs = eng.sample([p.prompt for p in test], 1, SamplingParams(temperature=0,
                                                                  max_new_tokens=64))
    return mean(env.verify(p, o[0].text).correct for p, o in zip(test, outs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--root", default=None, help="workspace (default: a fresh temp dir)")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--sos-problems", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="flywheel", help="report file name (without .md)")
    args = ap.parse_args()

    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from reasonloop.store import db
    root = Path(args.root or tempfile.mkdtemp(prefix="reasonloop-bench-"))
    cfg = load_config(args.config, args.set + [f"run.root={root}"])
    run_id = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()
    history = flywheel(cfg, run_id)
    wall = time.perf_counter() - t0

    # Iteration 0 has no laps: its total is policy init + its evaluation, from the run's start
    # to its registration (the row's started_at).
    its = db.query(Paths(root).db, "SELECT i.iteration, i.seconds, epoch(i.started_at) - "
                   "epoch(r.started_at) AS since_start FROM iterations i JOIN runs r "
                   "USING (run_id) WHERE i.run_id = $run ORDER BY i.iteration", {"run": run_id})
    secs: dict[int, dict] = {}
    for r in its.to_dicts():
        if r["seconds"]:
            secs[r["iteration"]] = json.loads(r["seconds"])
        elif r["iteration"] == 0 and r["since_start"] is not None:
            secs[0] = {"total": r["since_start"]}
    head = ("| it | val pass@1 | test pass@1 | test pass@k | test maj@k | legal | |D_search| | "
            "|D_expert| (hindsight, revision) | solved/1k tok | gen s | verify s | filter s | "
            "train s | eval s | total s | cum. min | bookkeeping |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    cum = 0.0
    for h in history:
        s = secs.get(h["iteration"], {})
        cum += s.get("total", 0.0)
        comp = sum(s.get("compute", {}).values())
        book = f"{100 * (s['total'] - comp) / s['total']:.1f}%" if comp else ""
        lines.append(
            f"| {h['iteration']} | {h['val_pass@1']:.3f} | {h['test_pass@1']:.3f} | "
            f"{h['test_pass@k']:.3f} | {h['test_maj@k']:.3f} | {h['test_legal']:.3f} | "
            f"{h.get('n_search', '')} | {h.get('n_expert', '')} ({h.get('n_hindsight', '')}, "
            f"{h.get('n_revision', '')}) | {h.get('solved_per_1k_tokens', 0):.3f} | "
            + " | ".join(f"{s.get(k, 0):.0f}" for k in
                         ("generate", "verify", "filter", "train", "evaluate", "total"))
            + f" | {cum / 60:.1f} | {book} |")
    from reasonloop.eval.test_time import results_table
    for split, results in history[-1].get("test_time", {}).items():
        lines += ["", f"Test-time search on the final policy ({split} split, first "
                      f"{cfg.eval.search_problems} problems): accuracy (tokens/problem)", "",
                  results_table(results)]
    final = history[-1]
    policy = str(root / "models" / run_id / (f"iter{final['iteration']:02d}"
                                              if final["iteration"] else "init"))
    countdown = cfg.env.name == "countdown" and args.sos_problems > 0   # a plugin: its own
    sos = sos_standard(policy, args.sos_problems, cfg.env.seed, cfg.policy.engine) \
        if countdown else None
    from reasonloop.workspace import split
    n_val, n_test = len(split(cfg, "val")), len(split(cfg, "test"))
    k = cfg.eval.k
    from reasonloop import compute
    report = "\n".join([
        f"# flywheel benchmark — {run_id}", "",
        f"machine: {compute.resolve(cfg).describe()}", "",
        f"config: `{shown(args.config)}` {' '.join(args.set)} (hash {cfg.hash()}), "
        f"search: {cfg.search.method} n={cfg.search.n} on {cfg.search.problems_per_iteration} "
        f"problems/iteration, "
        f"wall {wall / 60:.1f} min", "",
        f"pass@k / maj@k use k={k} of {cfg.eval.n_samples} samples at T={cfg.eval.temperature}"
        f" on {cfg.eval.n_sampled_problems} problems; pass@1 is greedy on all "
        f"{n_val} val / {n_test} test problems (env {cfg.env.name}).", "", *lines, "",
        *([f"Stream-of-Search standard setting (4 numbers 1–99, targets 10–100), greedy test "
           f"pass@1 of the final policy on {args.sos_problems} problems: **{sos:.3f}** "
           f"(published SoS: {SOS_PUBLISHED:.3f})", ""] if countdown else [])])
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(report)
    for png, name in [(root / "reports" / run_id / "pass_by_iteration.png",
                       f"{args.name}_pass_by_iteration.png"),
                      (root / "reports" / run_id /
                       f"test_time_iter{final['iteration']:02d}_test.png",
                       f"{args.name}_test_time.png")]:
        if png.exists():
            shutil.copy(png, out / name)


if __name__ == "__main__":
    main()
