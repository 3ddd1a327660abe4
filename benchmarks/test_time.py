"""Benchmark: search at test time and at training time, on the default champion.

    python benchmarks/test_time.py [--model countdown-direct@champion] [--root .]
        [--methods best_of_n,majority,...] [--budgets 1,4,16,64] [--limit 500]
        [--train-problems 500] [--skip-train]

1. Test time: accuracy vs generated tokens per problem for every method at every budget on
   the test split (the compute-optimal-search picture), plus wall seconds.
2. Training time: on one iteration's worth of train problems, how many got >= 1 correct
   trajectory per 1,000 generated tokens, for best-of-N, beam and MCTS at the default budget.
Writes benchmarks/results/test_time.md and test_time.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from reasonloop.paths import Paths, shown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ALL = "best_of_n,majority,weighted_bon,beam,dvts,mcts,revise"


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="countdown-direct@champion")
    ap.add_argument("--root", default=str(ROOT), help="workspace holding mlflow.db")
    ap.add_argument("--config", default=str(ROOT / "configs" / "direct.yaml"))
    ap.add_argument("--methods", default=ALL)
    ap.add_argument("--budgets", default="1,4,16,64")
    ap.add_argument("--limit", type=int, default=500, help="test problems")
    ap.add_argument("--train-problems", type=int, default=500)
    ap.add_argument("--train-methods", default="best_of_n,beam,dvts,mcts")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from reasonloop import workspace
    from reasonloop.config import load_config
    from reasonloop.eval.plots import plot_test_time
    from reasonloop.eval.test_time import results_table
    from reasonloop.policy.engines import SamplingParams, policy_engine
    from reasonloop.search.methods import SEARCH
    from reasonloop.search.spec import search_spec
    from reasonloop.stages.evaluate import test_time_search
    from reasonloop.store import registry
    con = Console()
    root = Path(args.root).resolve()
    cfg = load_config(args.config, args.set + [f"run.root={root}"])
    registry.setup(Paths(root).mlflow_db, Paths(root).mlartifacts)
    path = registry.resolve(args.model)
    workspace.set_threads(cfg)
    engine = policy_engine(cfg, path)
    test = workspace.split(cfg, "test")[: args.limit]
    methods, budgets = args.methods.split(","), [int(b) for b in args.budgets.split(",")]
    con.rule(f"test-time search: {args.model} on {len(test)} test problems")
    results, _ = test_time_search(cfg, engine, test, methods, budgets)
    t = Table(title="accuracy vs tokens (test split)")
    for c in ["method", "budget", "accuracy", "tokens/problem", "seconds"]:
        t.add_column(c)
    for r in results:
        t.add_row(r["method"], str(r["budget"]), f"{100 * r['accuracy']:.1f}%",
                  f"{r['tokens']:.0f}", f"{r['seconds']:.1f}")
    con.print(t)
    out = Path(args.out)
    png = plot_test_time(results, out / "test_time.png",
                         title=f"{args.model}: {len(test)} test problems")
    version = registry.version_of(args.model)
    md = [f"# Test-time search — {args.model} (v{version}, {shown(root)}), "
          f"{len(test)} test problems",
          "", header(),
          "", "accuracy (mean generated tokens per problem); seconds per search on this 2-core "
          "CPU, 1 thread. The PRM is Countdown's oracle, so best_of_n and weighted_bon pick "
          "the same answer (any correct sample wins).",
          "", results_table(results), "",
          "| method | budget | seconds |", "|---|---|---|"]
    md += [f"| {r['method']} | {r['budget']} | {r['seconds']:.1f} |" for r in results]

    if not args.skip_train:
        n = cfg.search.n
        train = workspace.split(cfg, "train")[: args.train_problems]
        params = SamplingParams(temperature=cfg.search.temperature,
                                max_new_tokens=cfg.policy.max_new_tokens, seed=cfg.run.seed)
        env = workspace.env_and_problems(cfg)[0]
        t = Table(title=f"training-time search: {len(train)} train problems, budget n={n}")
        for c in ["method", "solved", "tokens", "solved per 1k tokens", "seconds"]:
            t.add_column(c)
        md += ["", f"## Training-time search ({len(train)} train problems, n={n})", "",
               "| method | solved | tokens | solved per 1k tokens | seconds |",
               "|---|---|---|---|---|"]
        for m in args.train_methods.split(","):
            t0 = time.perf_counter()
            rows = SEARCH[m](train, engine, params, n, search_spec(cfg, engine))
            sec = time.perf_counter() - t0
            by_id = {p.problem_id: p for p in train}
            solved = len({r["problem_id"] for r in rows
                          if env.verify(by_id[r["problem_id"]], r["text"]).correct})
            tok = sum(r["n_tokens"] for r in rows)
            cells = [m, f"{solved}/{len(train)}", str(tok), f"{1000 * solved / tok:.3f}",
                     f"{sec:.1f}"]
            t.add_row(*cells)
            md.append("| " + " | ".join(cells) + " |")
        con.print(t)
    (out / "test_time.md").write_text("\n".join(md) + "\n")
    con.print(f"wrote {shown(out / 'test_time.md')} and {shown(png)}")


if __name__ == "__main__":
    main()
