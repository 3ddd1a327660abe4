"""`learn.torch_compile` against eager BC on the machine at hand: seconds per policy-init
step of a recipe's policy on its init data (default: configs/direct.yaml, 128×4, goal plays,
batch 64, `learn.bf16: auto`), eager and compiled, alternated so that a machine's drift hits
both, and the first compile's seconds.

    python benchmarks/compile.py [--config configs/direct.yaml] [--steps 200] [--repeats 2]
        [--out benchmarks/results]

Each measurement trains a fresh policy twice, 30 and 30 + steps steps, and divides the
difference: the trainer's set-up cancels, and a compiled policy meets every batch shape in the
first 30 steps (each fresh policy compiles again from inductor's disk cache; counted in the
30, not in the steps). Writes <out>/compile_<bf16|nobf16>.md; names the processor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARM = 30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "direct.yaml",
                    help="its policy shape and init data (`policy.init_data`) are measured")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args()
    from reasonloop import compute, workspace
    from reasonloop.config import load_config
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, warmup
    from reasonloop.policy.tokenizer import build_char_tokenizer
    cfg = load_config(a.config)
    p, tok = cfg.policy, build_char_tokenizer()
    examples = warmup(cfg, workspace.env(cfg), 20000, seed=cfg.run.seed + 17)

    def run(n: int, compiled: bool) -> float:
        model = build_tiny_llama(tok, p.hidden_size, p.n_layers, p.n_heads, cfg.run.seed,
                                 max_len=p.context)
        t0 = time.perf_counter()
        train_sft(model, tok, examples, Path(tempfile.mkdtemp()), steps=n,
                  batch_size=p.init_batch_size, lr=p.init_lr, bf16=cfg.learn.bf16,
                  seed=cfg.run.seed, max_new_tokens=p.max_new_tokens,
                  desc="compiled" if compiled else "eager", torch_compile=compiled)
        return time.perf_counter() - t0

    first = run(WARM, True)
    ms: dict[bool, list[float]] = {False: [], True: []}
    warm = []
    for _ in range(a.repeats):
        for compiled in (False, True):
            short = run(WARM, compiled)
            if compiled:
                warm.append(short)
            ms[compiled].append(1000 * (run(WARM + a.steps, compiled) - short) / a.steps)
    eager, comp = statistics.median(ms[False]), statistics.median(ms[True])
    lines = [f"# Compiled vs eager BC — {compute.header()}", "",
             f"`{a.config.name}`: policy {p.hidden_size}×{p.n_layers}, {p.init_data}, "
             f"batch {p.init_batch_size}, "
             f"train dtype {compute.resolve(cfg).record()['train_dtype']}; {a.repeats} × "
             f"{a.steps} steps each, alternated", "",
             "| BC | ms per step (each measurement) | median |", "|---|---|---|",
             f"| eager | {', '.join(f'{x:.0f}' for x in ms[False])} | {eager:.0f} |",
             f"| compiled | {', '.join(f'{x:.0f}' for x in ms[True])} | {comp:.0f} |", "",
             f"compiled steps {eager / comp:.2f}× as fast; the first compile on this machine "
             f"took {first - min(warm):.0f} s more than a cached one"]
    text = "\n".join(lines) + "\n"
    print(text)
    tag = "bf16" if compute.resolve(cfg).machine.bf16_native else "nobf16"
    a.out.mkdir(parents=True, exist_ok=True)
    name = "" if a.config.stem == "default" else f"_{a.config.stem}"
    (a.out / f"compile{name}_{tag}.md").write_text(text)


if __name__ == "__main__":
    main()
