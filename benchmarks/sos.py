"""Benchmark: the flywheel on search traces — search inside the policy vs search outside it.

    python benchmarks/sos.py --root WS [--run-id RUN] [--config configs/sos.yaml]
        [--direct MODEL] [--limit 200] [--budgets 1,2,4,8,16] [--out benchmarks/results]

1. The curve: greedy pass@1 on the test split (held-out targets) and on val, by iteration
   of the run (from the `evals` table), with the phase that produced each policy.
2. Internal vs external search at equal generated tokens: the run's last policy (a trace
   policy: it tries, checks and backtracks in its own output) decoded greedily, against a
   direct-answer policy (`--direct`: a path or NAME@alias) searched from outside — majority
   vote, best-of-N picked by the oracle PRM, and beam search on the oracle PRM — at budgets
   around the trace policy's tokens per problem, beside the direct policy's own greedy output;
   and where the run's policy's wrong greedy outputs first go wrong (the verifier's walk).
3. Guidance from inside vs outside (`--prms oracle,self,mix`): beam search and PRM-weighted
   best-of-N with each PRM (reward.prm), on the direct policy and the trace policy.
Writes <out>/<name>.md and <name>.png (name: sos); names the processor. MODEL: any HF dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def curve(db_path: Path, run_id: str):
    from reasonloop.store import db
    return db.query(db_path, """
        SELECT e.iteration, any_value(i.phase) AS phase,
               max(CASE WHEN e.split = 'test' THEN e.value END) AS test_pass1,
               max(CASE WHEN e.split = 'val' THEN e.value END) AS val_pass1
        FROM evals e LEFT JOIN iterations i USING (run_id, iteration)
        WHERE e.run_id = $run AND e.method = 'greedy' AND e.metric = 'pass@1'
        GROUP BY e.iteration ORDER BY e.iteration""", {"run": run_id})


def greedy(env, engine, problems, max_new_tokens: int) -> dict:
    from reasonloop.policy.engines import SamplingParams
    out = engine.sample([p.prompt for p in problems], 1,
                        SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    correct = [env.verify(p, o[0].text).correct for p, o in zip(problems, out)]
    back = ["\nback [" in "\n" + o[0].text for o in out]
    fails = Counter(failure(p, o[0].text) for p, o, c in zip(problems, out, correct) if not c)
    return {"accuracy": sum(correct) / len(problems),
            "tokens": sum(o[0].n_tokens for o in out) / len(problems),
            "backtracked": sum(back) / len(problems),
            "solved_after_backtrack": sum(c and b for c, b in zip(correct, back)) / len(problems),
            "failures": fails}


def failure(problem, text: str) -> str:
    """Where a wrong output first goes wrong (the verifier's own walk over its lines): the
    step that must reach the target from the last two numbers (a policy that cannot look
    ahead writes the target there anyway), an earlier step, a check or `back` line, or
    nowhere (legal but unfinished or ending on another number)."""
    from reasonloop.envs.base import split_steps
    from reasonloop.envs.countdown_rules import walk
    before = Counter(problem.meta["numbers"])
    for kind, state, error in walk(problem.meta["numbers"], problem.meta["target"],
                                   split_steps(text)):
        if error is not None:
            if kind != "step":
                return f"a {kind} line"
            return "the last step (2 numbers left)" if sum(before.values()) == 2 \
                else "an earlier step"
        before = state
    return "legal, wrong or no end"


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the run's workspace")
    ap.add_argument("--run-id", default=None, help="default: the latest run there")
    ap.add_argument("--config", default=str(ROOT / "configs" / "sos.yaml"))
    ap.add_argument("--direct", default=None, help="a direct-answer policy to search with")
    ap.add_argument("--limit", type=int, default=200, help="test problems for part 2")
    ap.add_argument("--budgets", default="1,2,4,8,16")
    ap.add_argument("--prms", default="", help="e.g. oracle,self,mix: part 3")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="sos", help="file stem of the table and the plot")
    args = ap.parse_args()

    from rich.console import Console

    from reasonloop import workspace
    from reasonloop.config import load_config
    from reasonloop.eval.test_time import results_table
    from reasonloop.policy.engines import load_engine
    from reasonloop.stages.evaluate import test_time_search
    from reasonloop.store import db, registry
    con = Console()
    root = Path(args.root).resolve()
    cfg = load_config(args.config, [f"run.root={root}", *args.set])
    P = workspace.paths(cfg)
    run_id = args.run_id or workspace.latest_run(P.db)
    if run_id is None:
        raise SystemExit(f"error: no run in {root}")
    lines = [f"# The flywheel on {Path(args.config).name}: curve and search", "", header(), "",
             f"run `{run_id}` in `{root}`", ""]

    c = curve(P.db, run_id)
    lines += ["## Greedy pass@1 by iteration (test = held-out targets)", "",
              "| iteration | phase | test pass@1 | val pass@1 |", "|---|---|---|---|"]
    for it, phase, test, val in c.iter_rows():
        lines.append(f"| {it} | {phase or 'init'} | {100 * (test or 0):.1f}% | "
                     f"{100 * (val or 0):.1f}% |")
    con.print("\n".join(lines))
    shown_upto = len(lines)

    last = db.query(P.db, "SELECT policy_path FROM iterations WHERE run_id = $run AND "
                    "policy_path IS NOT NULL ORDER BY iteration DESC LIMIT 1",
                    {"run": run_id})["policy_path"][0]
    run_cfg = workspace.stored_config(P.db, run_id) or cfg
    traces = run_cfg.policy.init_data in ("traces", "goal_traces")
    who = "Trace policy" if traces else \
        f"The run's policy ({run_cfg.policy.init_data} init)"
    env = workspace.env(cfg)
    test = workspace.split(cfg, "test")[: args.limit]
    t0 = time.perf_counter()
    traced = greedy(env, load_engine(cfg.policy.engine, last, dtype=cfg.policy.dtype), test,
                    run_cfg.policy.max_new_tokens)
    lines += ["", f"## Inside vs outside search on {len(test)} test problems", "",
              f"{who} (`{last}`), greedy: **{100 * traced['accuracy']:.1f}%** at "
              f"{traced['tokens']:.0f} generated tokens per problem"
              + (f"; {100 * traced['backtracked']:.0f}% of its outputs backtrack, "
                 f"{100 * traced['solved_after_backtrack']:.1f}% solve after a backtrack"
                 if traces else "")
              + f" ({time.perf_counter() - t0:.0f} s).", "",
              "Where its wrong greedy outputs first go wrong (the verifier's walk):", "",
              "| first error | outputs |", "|---|---|",
              *[f"| {k} | {n} |" for k, n in traced["failures"].most_common()], ""]
    if args.direct:
        direct = registry.resolve(args.direct) if "@" in args.direct else args.direct
        engine = load_engine(cfg.policy.engine, direct, dtype=cfg.policy.dtype)
        budgets = [int(b) for b in args.budgets.split(",")]
        results, _ = test_time_search(cfg, engine, test, ["majority", "weighted_bon", "beam"],
                                      budgets)
        plain = greedy(env, engine, test, cfg.policy.max_new_tokens)
        results += [{"method": f"{who.lower()}, greedy", "budget": 1,
                     "accuracy": traced["accuracy"], "tokens": traced["tokens"]},
                    {"method": "direct policy, greedy", "budget": 1,
                     "accuracy": plain["accuracy"], "tokens": plain["tokens"]}]
        lines += [f"Direct policy (`{direct}`), searched from outside (oracle PRM):", "",
                  results_table(results)]
        _plot(results, Path(args.out) / f"{args.name}.png")
    if args.prms:
        lines += ["", "## Guidance: which PRM steers beam search and the weighted vote", ""]
        models = {"trace": last, **({"direct": direct} if args.direct else {})}
        for name, path in models.items():
            engine = load_engine(cfg.policy.engine, path, dtype=cfg.policy.dtype)
            rows = []
            for prm in args.prms.split(","):
                pcfg = cfg.model_copy(update={"reward": cfg.reward.model_copy(
                    update={"prm": prm, "mix_with": "oracle"})})
                res, _ = test_time_search(pcfg, engine, test, ["beam", "weighted_bon"],
                                          [int(b) for b in args.budgets.split(",")][-2:])
                rows += [{**r, "method": f"{r['method']} · {prm}"} for r in res]
            lines += [f"{name} policy (`{path}`):", "", results_table(rows), ""]
    text = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.name}.md").write_text(text)
    con.print("\n".join(lines[shown_upto:]))


def _plot(results: list[dict], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in dict.fromkeys(r["method"] for r in results):
        rs = sorted((r for r in results if r["method"] == m), key=lambda r: r["tokens"])
        ax.plot([r["tokens"] for r in rs], [100 * r["accuracy"] for r in rs],
                "*" if len(rs) == 1 else "o-", label=m, markersize=12 if len(rs) == 1 else 5)
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
