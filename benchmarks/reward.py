"""Benchmark (reward design, part 1): Monte-Carlo step labels against the oracle's.

    python benchmarks/reward.py [--model countdown@champion] [--root .] [--problems 300]

Samples one trajectory per train problem with the policy (T=1), labels every step with m
rollouts (m = 1, 4, 16) and reports agreement of the hard MC label with Countdown's exact
oracle label ("target still reachable"), and the rollout tokens it cost.
Writes benchmarks/results/reward.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="countdown@champion")
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--ms", default="1,4,16")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from reasonloop import stages
    from reasonloop.config import load_config
    from reasonloop.policy.engines import SamplingParams, load_engine
    from reasonloop.reward.mc import agreement, mc_labels
    from reasonloop.store import registry
    root = Path(args.root).resolve()
    cfg = load_config(args.config, [f"run.root={root}"])
    registry.setup(root / "mlflow.db", root / "mlartifacts")
    engine = load_engine(cfg.policy.engine, registry.resolve(args.model), seed=0)
    stages.set_threads(cfg)
    env = stages.env_and_problems(cfg)[0]
    train = stages.split(cfg, "train")[: args.problems]
    params = SamplingParams(temperature=1.0, max_new_tokens=cfg.policy.max_new_tokens, seed=0)
    outs = engine.sample([p.prompt for p in train], 1, params)
    items = [(p, o[0].text) for p, o in zip(train, outs)]
    oracle = [env.verify(p, t).step_rewards for p, t in items]
    n_steps = sum(len(o) for o in oracle)
    orm = lambda p, t: env.verify(p, t).correct  # noqa: E731
    t = Table(title=f"MC step labels vs oracle: {len(items)} trajectories, {n_steps} steps")
    for c in ["m", "agreement (all)", "agreement (rolled-out steps)", "rollout tokens",
              "tokens/step", "seconds"]:
        t.add_column(c)
    md = [f"# MC step labels vs oracle — {args.model} ({root})", "",
          f"{len(items)} sampled train trajectories, {n_steps} steps; oracle-good steps: "
          f"{sum(sum(o) for o in oracle) / max(1, n_steps):.1%}", "",
          "The last step is labelled by its own outcome (equal to the oracle's by construction);",
          "the second agreement column counts only the steps the rollouts label.", "",
          "| m | agreement (all) | agreement (rolled-out steps) | rollout tokens | tokens/step "
          "| seconds |", "|---|---|---|---|---|---|"]
    for m in [int(x) for x in args.ms.split(",")]:
        t0 = time.perf_counter()
        labels = mc_labels(items, engine, params, m, orm)
        sec = time.perf_counter() - t0
        agree = agreement([lab.hard for lab in labels], oracle)
        inner = agreement([lab.hard[:-1] for lab in labels], [o[:-1] for o in oracle])
        tok = sum(lab.tokens for lab in labels)
        cells = [str(m), f"{agree:.3f}", f"{inner:.3f}", str(tok), f"{tok / n_steps:.0f}",
                 f"{sec:.1f}"]
        t.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    Console().print(t)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reward.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
