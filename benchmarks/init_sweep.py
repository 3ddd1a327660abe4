"""Benchmark: how to spend the policy-init budget — batch size and learning rate of BC on the
init data, at equal examples seen, judged by greedy pass@1 on val and on test (held-out
targets) right after init.

    python benchmarks/init_sweep.py [--config configs/direct.yaml] [--set k=v ...]
        [--threads 2] [--examples 38400] [--variants 64:2e-3,32:1e-3,16:1e-3] [--out DIR]
        [--goal-targets LO-HI] [--keep] [--from POLICY_DIR]

Each variant (BATCH:LR) builds the same from-scratch policy (same seed) and trains
`examples / BATCH` steps on the same init data (`policy.init_data`), then decodes val and
test greedily with the lean sampler. Train seconds are the cost: per example a small batch
costs more on a multi-core CPU (less work per matmul), so compare accuracy *and* seconds.
`--keep` saves each variant's policy under --out; `--from` continues a saved policy (same
tokenizer) instead of building one. `--goal-targets LO-HI` (Countdown goal plays): keep a
play whose reached value is any number in LO..HI, not only a training target (never a test
target); the table then goes to <out>/init_sweep_targets_LO-HI.md. Writes
<out>/init_sweep.md; names the processor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_variant(cfg, env, examples, splits, tok, batch: int, lr: float, n_examples: int,
                keep: Path | None = None, start: Path | None = None) -> dict:
    from benchmarks.sos import greedy
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.engines import load_engine
    from reasonloop.policy.init import build_tiny_llama, continued, save_policy
    p = cfg.policy
    model, tok = continued(start, p.context) if start else (build_tiny_llama(
        tok, p.hidden_size, p.n_layers, p.n_heads, cfg.run.seed, max_len=p.context), tok)
    steps = max(1, n_examples // batch)
    with tempfile.TemporaryDirectory(prefix="init-sweep-") as d:
        t = time.perf_counter()
        stats = train_sft(model, tok, examples, Path(d), steps=steps, batch_size=batch, lr=lr,
                          bf16=cfg.learn.bf16, seed=cfg.run.seed, max_new_tokens=p.max_new_tokens,
                          desc=f"init batch {batch} lr {lr:g}")
        seconds = time.perf_counter() - t
        where = keep / f"policy-{batch}-{lr:g}" if keep else Path(d) / "policy"
        save_policy(model, tok, where)
        engine = load_engine("lean", where, seed=cfg.run.seed, dtype="fp32")
        acc = {s: greedy(env, engine, ps, p.max_new_tokens)["accuracy"]
               for s, ps in splits.items()}
    return {"batch": batch, "lr": lr, "steps": steps, "seconds": seconds,
            "loss": stats["loss_last"], **acc}


def wider_goals(env, span: str | None):
    """A copy of the Countdown env whose goal plays may show any value in LO..HI as target
    (the split, val problems and test targets unchanged: the problems are drawn already)."""
    if span is None:
        return env
    import copy
    lo, hi = (int(x) for x in span.split("-"))
    inner = getattr(env, "_env", env)        # plugins.Guarded wraps the env
    inner._val_ids()         # the val problems of the real split, before the targets widen
    wide = copy.copy(inner)
    wide.train_targets = frozenset(range(lo, hi + 1)) - inner.test_targets
    return wide


def main() -> None:
    import torch

    from benchmarks import tables
    from reasonloop.compute import header
    from reasonloop.config import load_config
    from reasonloop.envs import plugins
    from reasonloop.policy.init import warmup
    from reasonloop.policy.tokenizer import CHARS, build_char_tokenizer
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "direct.yaml"))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--examples", type=int, default=600 * 64, help="examples seen per variant")
    ap.add_argument("--variants", default="64:2e-3,32:1e-3,16:1e-3")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--goal-targets", default=None, help="LO-HI: goal plays on any value there")
    ap.add_argument("--keep", action="store_true", help="save each policy under --out")
    ap.add_argument("--from", dest="start", default=None, help="continue this saved policy")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config, a.set)
    env = plugins.build(cfg.env)
    examples = warmup(cfg, wider_goals(env, a.goal_targets), cfg.policy.init_examples,
                      seed=cfg.run.seed + 17)
    problems = env.problems()
    splits = {s: [p for p in problems if p.split == s] for s in ("val", "test")}
    tok = build_char_tokenizer(CHARS + sorted(set(getattr(env, "chars", "")) - set(CHARS)))
    rows = []
    for v in a.variants.split(","):
        batch, lr = v.split(":")
        rows.append(run_variant(cfg, env, examples, splits, tok, int(batch), float(lr),
                                a.examples, Path(a.out) if a.keep else None,
                                Path(a.start) if a.start else None))
        print(rows[-1], flush=True)
    lines = ["# Policy init: batch size and learning rate at equal examples", "",
             header(), "",
             f"config: `{Path(a.config).name}` {' '.join(a.set)}; init data "
             f"`{cfg.policy.init_data}`, {a.examples} examples seen per variant, model "
             f"{cfg.policy.hidden_size}×{cfg.policy.n_layers}"
             f"{f' continued from {a.start}' if a.start else ''}; goal-play targets "
             f"{a.goal_targets or 'training targets only'}; greedy pass@1 on "
             f"{len(splits['val'])} val / {len(splits['test'])} test (held-out targets)", "",
             "| batch | lr | steps | train s | last loss | val pass@1 | test pass@1 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['lr']:g} | {r['steps']} | {r['seconds']:.0f} | "
              f"{r['loss']:.3f} | {r['val']:.1%} | {r['test']:.1%} |" for r in rows]
    out = Path(a.out) / (f"init_sweep_targets_{a.goal_targets}.md" if a.goal_targets
                         else "init_sweep.md")
    tables.write(out, lines)


if __name__ == "__main__":
    main()
