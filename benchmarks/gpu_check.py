"""GPU check (scripts/gpu_check.sh): HF-engine generation on CUDA and SFT steps of a ~100M
Llama built here (byte-level BPE, no download) — tokens/s and step time, as a table and JSON.

Run where a CUDA GPU is: `scripts/gpu_check.sh [OUT_DIR]`. Never part of the test suite.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from reasonloop.envs.math import PROMPT
from reasonloop.envs.word_problems import generate
from reasonloop.learn.sft import train_sft
from reasonloop.policy.bpe import build
from reasonloop.policy.engines import SamplingParams
from reasonloop.policy.engines.hf import HFEngine
from reasonloop.policy.init import load_policy

BATCHES = (1, 64, 256)
NEW_TOKENS = 128


def main(out: Path) -> dict:
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device (torch.cuda.is_available() is False)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_dir = build(out / "model-100m", n_problems=2000, warmup_steps=0, hidden=768,
                      layers=14, heads=12)
    model, tok = load_policy(model_dir)
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "params": sum(p.numel() for p in model.parameters()),
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
    print(f"{res['device']}  torch {res['torch']}  {res['params'] / 1e6:.1f}M params")
    print("| batch | new tokens | s | tokens/s |\n|---|---|---|---|")
    for g in res["generate"]:
        print(f"| {g['batch']} | {g['tokens']} | {g['seconds']:.2f} | {g['tok_per_s']:.0f} |")
    print(f"SFT step (batch 32, bf16): {res['sft_step_s'] * 1000:.0f} ms; "
          f"peak GPU memory {res['peak_gpu_gib']:.1f} GiB")
    (out / "gpu_check.json").write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/gpu_check"))
