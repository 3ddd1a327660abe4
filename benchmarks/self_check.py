"""Benchmark: does a policy taught to check its own result search in its own output?

    python benchmarks/self_check.py --policy DIR [--config configs/direct.yaml]
        [--steps 800] [--lr 5e-4] [--backtracks 2] [--kind goal_traces] [--set k=v ...]
        [--out DIR]

Continues BC of the policy at `--policy` on traces (`policy.init_data` of `--kind`, as
`policy.init_from` does in a run), then decodes val and test (held-out targets) greedily
with the lean sampler, before and after. Besides pass@1 it reads the *first check line*
of every wrong output, which says why search inside the output did or did not start:

- false ok:    the attempt ended on X ≠ target and the policy wrote "X ok";
- target not:  it reached the target and wrote "T not T" (a value never shown as a goal);
- right:       the check was true (the search went wrong later, or never ended).

`--steps 0` only decodes. Writes <out>/self_check.md; names the processor.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHECK = re.compile(r"^(\d+) (ok|not \d+|vs \d+ (?:ok|no))$", re.M)


def first_check(problem, text: str) -> str:
    m, target = CHECK.search(text), problem.meta["target"]
    d = re.search(r"\[(\d+)\]\n\d+-\d+=\d+ (ok|no)$", text, re.M)
    if d is not None and (m is None or d.start() < m.start()):
        value, says_ok = int(d.group(1)), d.group(2) == "ok"
    elif m is None:
        return "no check"
    else:
        value, says_ok = int(m.group(1)), m.group(2).endswith("ok")
    if says_ok and value != target:
        return "false ok"
    if not says_ok and value == target:
        return "target not"
    return "right"


def decode(env, path: Path, splits: dict, max_new_tokens: int) -> dict:
    from reasonloop.policy.engines import SamplingParams, load_engine
    engine = load_engine("lean", path, seed=0, dtype="auto")
    out = {}
    for split, problems in splits.items():
        texts = [o[0].text for o in engine.sample(
            [p.prompt for p in problems], 1,
            SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))]
        ok = [env.verify(p, t).correct for p, t in zip(problems, texts)]
        back = ["\nback [" in "\n" + t for t in texts]
        out[split] = {"pass@1": sum(ok) / len(ok), "back": sum(back) / len(ok),
                      "after_back": sum(o and b for o, b in zip(ok, back)) / len(ok),
                      "chars": sum(map(len, texts)) / len(ok),
                      "checks": Counter(first_check(p, t) for p, t, o in
                                        zip(problems, texts, ok) if not o)}
    return out


def main() -> None:
    import torch

    from benchmarks import tables
    from reasonloop.compute import header
    from reasonloop.config import load_config
    from reasonloop.envs import plugins
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import continued, save_policy, warmup
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--config", default=str(ROOT / "configs" / "direct.yaml"))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--backtracks", type=int, default=2)
    ap.add_argument("--kind", default="goal_traces")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config, [f"policy.init_data={a.kind}",
                                 f"policy.trace_backtracks={a.backtracks}",
                                 f"policy.context={a.context}", *a.set])
    env = plugins.build(cfg.env)
    problems = env.problems()
    splits = {s: [p for p in problems if p.split == s] for s in ("test", "val")}
    new = a.context - 16
    rows = [("given policy", decode(env, Path(a.policy), splits, new), None)]
    if a.steps:
        model, tok = continued(a.policy, a.context)
        examples = warmup(cfg, env, 64 * a.steps, seed=cfg.run.seed + 17)
        with tempfile.TemporaryDirectory(prefix="self-check-") as d:
            t = time.perf_counter()
            train_sft(model, tok, examples, Path(d), steps=a.steps, batch_size=64, lr=a.lr,
                      bf16=cfg.learn.bf16, seed=cfg.run.seed, max_new_tokens=new,
                      desc=f"BC on {a.kind}")
            seconds = time.perf_counter() - t
            save_policy(model, tok, Path(d) / "policy")
            rows.append((f"+ {a.steps} steps on {a.kind} (≤{a.backtracks} dead ends, lr "
                         f"{a.lr:g})", decode(env, Path(d) / "policy", splits, new), seconds))
    lines = ["# Search inside the output: the policy's own check", "", header(), "",
             f"policy `{a.policy}`; config `{Path(a.config).name}` {' '.join(a.set)}; greedy "
             f"on {len(splits['test'])} test (held-out targets) / {len(splits['val'])} val", "",
             "| policy | BC s | split | pass@1 | backtracks | solved after back | chars | "
             "first check of a wrong output: false ok / target not / right / none |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res, seconds in rows:
        for split, r in res.items():
            c = r["checks"]
            lines.append(f"| {name} | {'' if seconds is None else f'{seconds:.0f}'} | {split} "
                         f"| {r['pass@1']:.1%} | {r['back']:.1%} | {r['after_back']:.1%} | "
                         f"{r['chars']:.0f} | {c['false ok']} / {c['target not']} / "
                         f"{c['right']} / {c['no check']} |")
    out = Path(a.out) / "self_check.md"
    tables.write(out, lines)


if __name__ == "__main__":
    main()
