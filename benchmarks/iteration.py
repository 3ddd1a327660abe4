"""Where an iteration of the direct recipe (configs/direct.yaml) spends its time, and what
two cuts saved: the per-stage seconds of a finished run (from its store), then three
measurements on this machine —

- BC data preparation: TRL tokenizing every row of the repeated batch order vs
  `learn/sft.tokenize` once per distinct example (what BC does now);
- a BC step: TRL's SFTTrainer vs a bare forward/backward/AdamW loop on the same batches (what
  the trainer itself costs);
- the lean sampler on a trained policy with and without dropping finished rows from a batch.

    python benchmarks/iteration.py --policy MODEL_DIR [--run-root ROOT] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stage_table(root: Path) -> list[str]:
    """Seconds per stage of every finished iteration of the workspace's latest run."""
    from reasonloop.store import db
    df = db.query(Path(root) / "reasonloop.duckdb",
                  "SELECT iteration, seconds FROM iterations WHERE seconds IS NOT NULL "
                  "AND run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) "
                  "ORDER BY iteration")
    stages = ["generate", "verify", "filter", "train", "evaluate"]
    out = ["| it | " + " | ".join(stages) + " | other | total |",
           "|---|" + "---|" * (len(stages) + 2)]
    for it, s in df.iter_rows():
        d = json.loads(s)
        other = d["total"] - sum(d.get(k, 0) for k in stages)
        out.append(f"| {it} | " + " | ".join(f"{d.get(k, 0):.0f}" for k in stages) +
                   f" | {other:.0f} | {d['total']:.0f} |")
    return out


def bc_examples(n: int):
    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    cfg = load_config(ROOT / "configs" / "direct.yaml")
    return cfg, Countdown(cfg.env).warmup_examples(n, seed=5)


def preparation(n_distinct: int, steps: int, batch: int) -> tuple[float, float]:
    """Seconds: TRL's preparation of the `steps × batch` rows vs tokenizing distinct ones."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from reasonloop.learn.sft import batch_order, cut, tokenize
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    _, ex = bc_examples(n_distinct)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 128, 4, 4, 0)
    rows = batch_order(ex, batch, steps, 0)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none",
                     completion_only_loss=True, max_length=256)
    t = time.perf_counter()
    SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(
        [{"prompt": e["prompt"], "completion": e["completion"]} for e in rows]))
    trl_s = time.perf_counter() - t
    t = time.perf_counter()
    toks = cut(tokenize(tok, ex), 256)
    picked = [toks[(e["prompt"], e["completion"])] for e in rows]
    Dataset.from_dict({"input_ids": [r["input_ids"] for r in picked],
                       "labels": [r["labels"] for r in picked]})
    return trl_s, time.perf_counter() - t


def bc_step(steps: int, batch: int) -> tuple[float, float]:
    """Seconds per step: SFTTrainer (train_sft) vs a bare loop, same model and batch size."""
    import torch

    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    _, ex = bc_examples(batch * (steps + 5))
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 128, 4, 4, 0)
    t = time.perf_counter()
    train_sft(model, tok, ex, Path(tempfile.mkdtemp()), steps=steps, batch_size=batch,
              lr=1e-3, bf16=False, seed=0)
    trainer_s = (time.perf_counter() - t) / steps
    model = build_tiny_llama(tok, 128, 4, 4, 0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tok.padding_side = "right"
    texts = [e["prompt"] + e["completion"] + tok.eos_token for e in ex]
    t = time.perf_counter()
    for i in range(steps):
        b = tok(texts[i * batch:(i + 1) * batch], return_tensors="pt", padding=True)
        model(**b, labels=b["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad()
    return trainer_s, (time.perf_counter() - t) / steps


def sampler(policy: Path, n_prompts: int, n: int) -> list[tuple[str, float, float]]:
    """(variant, seconds, tokens/s) of the lean sampler at the default's search settings."""
    from reasonloop.compute import sample_dtype
    from reasonloop.envs.countdown import Countdown
    from reasonloop.policy.engines.base import SamplingParams
    from reasonloop.policy.engines.lean import LeanEngine
    from reasonloop.policy.init import load_policy
    cfg, _ = bc_examples(1)
    prompts = [p.prompt for p in Countdown(cfg.env).problems() if p.split == "train"][:n_prompts]
    model, tok = load_policy(policy)
    params = SamplingParams(temperature=1.0, max_new_tokens=cfg.policy.max_new_tokens, seed=0)
    out = []
    for name, drop in (("whole batch to its longest sample", None),
                       ("finished rows dropped (default)", 0.25)):
        eng = LeanEngine(model, tok, dtype=sample_dtype("auto"), drop_finished=drop)
        t = time.perf_counter()
        res = eng.sample(prompts, n, params)
        s = time.perf_counter() - t
        out.append((name, s, sum(x.n_tokens for r in res for x in r) / s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", type=Path, required=True, help="a trained default policy dir")
    ap.add_argument("--run-root", type=Path, default=None, help="a finished default run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--name", default="iteration")
    a = ap.parse_args()
    import torch

    from reasonloop.compute import machine
    torch.set_num_threads(a.threads)
    lines = ["# Where a default iteration's time goes", "",
             f"machine: {machine().describe()}; {a.threads} torch threads", ""]
    if a.run_root:
        lines += [f"## Seconds per stage (run in `{a.run_root}`)", "", *stage_table(a.run_root),
                  ""]
    trl_s, ours_s = preparation(5000, 250, 64)
    trainer_s, bare_s = bc_step(30, 64)
    lines += ["## BC", "", "| what | seconds |", "|---|---|",
              f"| data preparation, TRL on 250 × 64 repeated rows (5,000 distinct) | {trl_s:.1f} |",
              f"| data preparation, each distinct example once (now) | {ours_s:.1f} |",
              f"| one step, SFTTrainer, batch 64 | {trainer_s:.3f} |",
              f"| one step, bare forward/backward/AdamW loop, batch 64 | {bare_s:.3f} |", ""]
    lines += ["## Lean sampler, 500 train prompts × 16 samples, T=1", "",
              "| lean sampler | seconds | tokens/s |", "|---|---|---|"]
    torch.set_num_threads(1)          # a generate shard's share here
    lines += [f"| {n} | {s:.1f} | {r:,.0f} |" for n, s, r in sampler(a.policy, 500, 16)]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.name}.md").write_text(text)


if __name__ == "__main__":
    main()
