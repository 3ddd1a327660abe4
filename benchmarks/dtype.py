"""fp32 against bf16 on the machine at hand: a matmul, a BC step of the default policy and the
lean sampler's tokens/s — and what `auto` picks here. Whether bf16 pays depends on the
processor (native AVX512_BF16/AMX: ~2× faster; AVX2 only: 10–20× slower), so every number
is printed under the machine's description.

    python benchmarks/dtype.py [--threads N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best(fn, repeats: int = 3) -> float:
    """Seconds of the fastest of `repeats` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul(dtype) -> float:
    """GFLOP/s of a 3840×128 @ 128×512 matmul (a BC step's MLP shape), 20 in a row."""
    import torch
    a, b = torch.randn(3840, 128, dtype=dtype), torch.randn(128, 512, dtype=dtype)
    s = _best(lambda: [a @ b for _ in range(20)])
    return 20 * 2 * 3840 * 128 * 512 / s / 1e9


def bc_step(bf16: bool, steps: int = 4) -> float:
    """Seconds per SFTTrainer step of the default policy (hidden 128, 4 layers, batch 128)."""
    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    cfg = load_config(ROOT / "configs" / "direct.yaml")
    tok = build_char_tokenizer()
    ex = Countdown(cfg.env).warmup_examples(128 * (steps + 2), seed=0)

    def run(n):
        model = build_tiny_llama(tok, 128, 4, 4, seed=0)
        t0 = time.perf_counter()
        train_sft(model, tok, ex, Path(tempfile.mkdtemp()), steps=n, batch_size=128, lr=1e-3,
                  bf16=bf16, seed=0, desc=f"BC {'bf16' if bf16 else 'fp32'}")
        return time.perf_counter() - t0
    # the difference of a long and a short run cancels the trainer's set-up cost
    return (run(steps + 1) - run(1)) / steps


def sampler(dtype, prompts: int = 512, tokens: int = 32) -> float:
    """Lean-sampler tokens/s on the default-size policy: `prompts` × `tokens` new tokens."""
    from reasonloop.policy.engines.base import SamplingParams
    from reasonloop.policy.engines.lean import LeanEngine
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    eng = LeanEngine(build_tiny_llama(tok, 128, 4, 4, seed=0).eval(), tok, dtype=dtype)
    # an untrained policy never stops early: every prompt runs all `tokens` steps
    params = SamplingParams(temperature=1.0, max_new_tokens=tokens, seed=0)
    s = _best(lambda: eng.sample(["12 5 3>51\n"] * prompts, 1, params), repeats=2)
    return prompts * tokens / s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="[default: auto]")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args()
    import torch

    from reasonloop import compute
    from reasonloop.config import load_config
    c = compute.resolve(load_config(ROOT / "configs" / "direct.yaml"))
    torch.set_num_threads(a.threads or c.train_threads)
    rows = []
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        print(f"measuring {name} …", flush=True)
        rows.append((name, matmul(dt), bc_step(name == "bf16"), sampler(dt)))
    fp32, bf16 = rows
    lines = [f"# fp32 vs bf16 — {compute.header()}", "",
             f"`auto` picks here: train **{c.record()['train_dtype']}**, sampling "
             f"**{c.record()['sample_dtype']}** ({c.machine.describe()})", "",
             "| dtype | matmul GFLOP/s | BC step (s, batch 128) | lean sampler tok/s |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {g:.1f} | {s:.2f} | {t:,.0f} |" for n, g, s, t in rows]
    lines += ["", f"bf16 / fp32: matmul {bf16[1] / fp32[1]:.2f}×, BC step time "
                  f"{bf16[2] / fp32[2]:.2f}×, sampler {bf16[3] / fp32[3]:.2f}× "
                  f"(> 1 is faster for the first and last, slower for the step time)"]
    text = "\n".join(lines) + "\n"
    print(text)
    tag = "bf16" if c.machine.bf16_native else "nobf16"
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"dtype_{tag}.md").write_text(text)
    print(f"→ {a.out / f'dtype_{tag}.md'}")


if __name__ == "__main__":
    main()
