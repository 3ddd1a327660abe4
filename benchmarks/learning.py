"""Benchmark: BC-only vs the BC → DPO → GRPO schedule, same seed, same wall-clock budget.

    python benchmarks/learning.py [--iterations 5] [--set k=v] [--schedule-set k=v]
                                  [--baseline-root DIR --baseline-run ID]

Runs the default Countdown flywheel twice from the same seed — `learn.schedule: [bc]` and the
config's schedule (default [bc, dpo, grpo]; `--schedule-set` changes it) — and compares test
pass@1 at the same wall-clock budget (the shorter run's total). Also reports seconds per GRPO
step and the tokens/s of its sampling, and writes each run's train-time scaling report.
Writes benchmarks/results/learning.md (+ the scaling PNGs).
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

from reasonloop.paths import Paths

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def run(config: str, sets: list[str], root: Path, run_id: str) -> None:
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    cfg = load_config(config, sets + [f"run.root={root}"])
    print(cfg.learn.model_dump_json(), flush=True)
    flywheel(cfg, run_id)


def curve(root: Path, run_id: str) -> list[dict]:
    """Per iteration: phase, pass@1, cumulative minutes and tokens, the train stats."""
    from reasonloop.eval.scaling import table
    from reasonloop.store import db
    t = table(Paths(root).db, run_id).to_dicts()
    its = db.query(Paths(root).db, "SELECT iteration, seconds, policy_path FROM "
                   "iterations WHERE run_id = $run", {"run": run_id}).to_dicts()
    by_it = {r["iteration"]: r for r in its}
    cum = 0.0
    for r in t:
        extra = by_it.get(r["iteration"], {})
        cum += json.loads(extra["seconds"])["total"] if extra.get("seconds") else 0.0
        r["cum_min"] = cum / 60
        meta = Path(extra.get("policy_path") or "") / "reasonloop.json"
        r["train"] = json.loads(meta.read_text()).get("train", {}) if meta.is_file() else {}
    return t


def at_budget(rows: list[dict], minutes: float) -> dict:
    done = [r for r in rows if r["cum_min"] <= minutes + 1e-9]
    return done[-1] if done else rows[0]


def table_md(rows: list[dict]) -> str:
    lines = ["| it | phase | val pass@1 | test pass@1 | cum. min | train tokens (cum) | "
             "generated tokens (cum) | train stats |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["train"]
        note = ""
        if r["phase"] == "dpo":
            note = f"{t.get('n_pairs')} pairs, loss {_f(t.get('loss_first'))}→" \
                   f"{_f(t.get('loss_last'))}, acc {_f(t.get('reward_accuracy'))}"
        elif r["phase"] == "grpo":
            note = f"{t.get('steps')} steps, reward {_f(t.get('reward_first'))}→" \
                   f"{_f(t.get('reward_last'))}, {_f(t.get('seconds_per_step'))} s/step"
        elif r["phase"] == "bc":
            note = f"{t.get('n_examples')} examples, loss {_f(t.get('loss_last'))}"
        lines.append(f"| {r['iteration']} | {r['phase']} | {100 * (r['val_pass1'] or 0):.1f}% | "
                     f"{100 * r['test_pass1']:.1f}% | {r['cum_min']:.1f} | "
                     f"{r['cum_train_tokens']:,} | {r['cum_gen_tokens']:,} | {note} |")
    return "\n".join(lines)


def _f(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def grpo_speed(config: str, sets: list[str], policy: str, steps: int) -> dict:
    """GRPO alone on a finished policy: seconds per step and sampling tokens/s."""
    import torch

    from reasonloop import compute, workspace
    from reasonloop.config import load_config
    from reasonloop.learn.grpo import train_grpo
    from reasonloop.policy.init import TINY_ATTN, load_policy
    cfg = load_config(config, sets)
    torch.set_num_threads(compute.resolve(cfg).train_threads)
    env = workspace.env_and_problems(cfg)[0]
    problems = workspace.split(cfg, "train")[: steps * cfg.learn.grpo.prompts_per_step]
    model, tok = load_policy(policy, attn_implementation=TINY_ATTN)
    out = Path(tempfile.mkdtemp(prefix="grpo-speed-"))
    t0 = time.perf_counter()
    st = train_grpo(model, tok, env, problems, out, gcfg=cfg.learn.grpo, steps=steps,
                    shaping=cfg.reward.shaping, max_new_tokens=cfg.policy.max_new_tokens,
                    bf16=cfg.learn.bf16, seed=0, save_every=10 ** 9)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    g = cfg.learn.grpo
    return {"steps": steps, "s_per_step": wall / steps, "gen_tok_s": st["gen_tokens_per_s"],
            "samples_per_step": g.prompts_per_step * g.num_generations,
            "tokens_per_sample": st["gen_tokens"] / max(1, st["n_sampled"])}


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "direct.yaml"))
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--set", action="append", default=[], help="both runs")
    ap.add_argument("--schedule-set", action="append", default=[], help="the schedule run")
    ap.add_argument("--root", default=None)
    ap.add_argument("--baseline-root", default=None, help="reuse a finished BC-only run")
    ap.add_argument("--baseline-run", default=None)
    ap.add_argument("--grpo-steps", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="learning", help="report file name (without .md)")
    args = ap.parse_args()
    from reasonloop.eval import scaling

    root = Path(args.root or tempfile.mkdtemp(prefix="reasonloop-learning-"))
    common = args.set + [f"run.iterations={args.iterations}"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.baseline_root:
        base_root, base_id = Path(args.baseline_root), args.baseline_run
    else:
        base_root, base_id = root / "bc", f"bc-{stamp}"
        run(args.config, common + ["learn.schedule=[bc]"], base_root, base_id)
    sched_root, sched_id = root / "schedule", f"schedule-{stamp}"
    run(args.config, common + args.schedule_set, sched_root, sched_id)

    out = Path(args.out)
    bc, sc = curve(base_root, base_id), curve(sched_root, sched_id)
    budget = min(bc[-1]["cum_min"], sc[-1]["cum_min"])
    a, b = at_budget(bc, budget), at_budget(sc, budget)
    pngs = {}
    for name, r, i in (("bc", base_root, base_id), ("schedule", sched_root, sched_id)):
        rep = scaling.report(Paths(r).db, i, out / f"{args.name}_scaling_{name}")
        pngs[name] = rep
    last_policy = sc[-1]["train"].get("path") or str(sched_root / "models" / sched_id /
                                                     f"iter{args.iterations:02d}")
    speed = grpo_speed(args.config, args.set + args.schedule_set, last_policy, args.grpo_steps)

    phases = " → ".join(p.upper() for p in dict.fromkeys(r["phase"] for r in sc[1:]))
    lines = [f"# Learning: BC only vs {phases} (default Countdown, same seed)", "",
             header(), "",
             f"`python benchmarks/learning.py {' '.join(sys.argv[1:])}` on a 2-core CPU.", "",
             f"## Same wall-clock budget: {budget:.1f} min of flywheel iterations", "",
             "| run | last iteration within budget | phase | val pass@1 | test pass@1 | "
             "final test pass@1 (min) |", "|---|---|---|---|---|---|"]
    for name, r, rows in (("BC only", a, bc), ("schedule", b, sc)):
        lines.append(f"| {name} | {r['iteration']} | {r['phase']} | "
                     f"{100 * (r['val_pass1'] or 0):.1f}% | {100 * r['test_pass1']:.1f}% | "
                     f"{100 * rows[-1]['test_pass1']:.1f}% ({rows[-1]['cum_min']:.1f}) |")
    lines += ["", "## BC only", "", table_md(bc), "", "## Schedule", "", table_md(sc), "",
              f"## GRPO speed ({speed['steps']} steps on the schedule's final policy)", "",
              "| s / step | sampling tokens/s | samples / step | tokens / sample |",
              "|---|---|---|---|",
              f"| {speed['s_per_step']:.2f} | {speed['gen_tok_s']:.0f} | "
              f"{speed['samples_per_step']} | {speed['tokens_per_sample']:.1f} |", "",
              "## Train-time scaling (schedule run)", "", pngs["schedule"]["markdown"], "",
              f"![schedule]({args.name}_scaling_schedule/scaling.png)",
              f"![bc]({args.name}_scaling_bc/scaling.png)", ""]
    (out / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
