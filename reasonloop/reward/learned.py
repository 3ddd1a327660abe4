"""Learned verifiers: an ORM and a PRM as small Llamas with a scoring head.

Both start from the policy's own weights (it already reads the format and the arithmetic) with
a fresh head, as reward models usually start from the SFT policy:
- ORM: `LlamaForSequenceClassification` (one scalar) trained with TRL's `RewardTrainer` on
  Bradley–Terry pairs — a correct and an incorrect trajectory of the same problem. Its score
  σ(r) ranks candidates (weighted best-of-N) where no exact verifier exists.
- PRM, `pointwise` (default): `LlamaForTokenClassification` (good/bad) read at the last
  token of every step, trained with transformers' `Trainer` on the token-classification loss
  (what TRL's old PRMTrainer did) — one forward pass scores every step of a text.
- PRM, `pairwise`: the ORM's model and trainer on step-prefix pairs — two prefixes of one
  problem and depth, one ending in a good step, one in a bad one; a step's score is σ(r) of
  the prefix it ends. Tried because comparing within a problem cancels what a problem's
  identity predicts; it measured worse on every split (benchmarks/results/reward*.md).
Causal attention makes both read a prefix as they would inside a longer text.

Lengths: a scorer reads whatever the policy wrote — up to the model's positions when scoring,
and in training the longest prompt + `policy.max_new_tokens` (+ EOS), cut examples counted
(a fixed 512 cut a real model's last steps off). On a GPU scorers run there, in bf16.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from datasets import Dataset

from reasonloop.compute import scorer_placement
from reasonloop.envs.base import Problem, step_prefixes, step_spans
from reasonloop.learn import common
from reasonloop.policy.init import tiny_attn
from reasonloop.reward.process import CachedPRM, good_step

BATCH = 256


def positions(model) -> int:
    """The longest text `model` reads (its positions; 32k where the config names none)."""
    return getattr(model.config, "max_position_embeddings", None) or 32768


def _load(cls, path, **kw):
    """A scorer for inference, where `compute.scorer_placement` puts it."""
    device, dtype = scorer_placement()
    return cls.from_pretrained(path, dtype=dtype, **kw).to(device).eval()


def step_ends(tok, prompt: str, text: str, sep: str = "\n", max_length: int | None = None
              ) -> tuple[list[int], list[int]]:
    """Token ids of prompt+text (cut at `max_length`, None: whole) and, per step of `text`,
    the index of the token holding that step's last character (via offsets: any fast
    tokenizer, BPE too); steps cut away get no index."""
    enc = tok(prompt + text, return_offsets_mapping=True, truncation=max_length is not None,
              max_length=max_length)
    ends = [len(prompt) + a + len(text[a:b].rstrip()) - 1 for a, b in step_spans(text, sep)]
    offsets, out, j = enc["offset_mapping"], [], 0
    for c in ends:
        while j < len(offsets) and not (offsets[j][0] <= c < offsets[j][1]):
            j += 1
        if j == len(offsets):     # truncated away: no score for this step
            break
        out.append(j)
    return enc["input_ids"], out


def _args(cls, out_dir: Path, steps: int, batch_size: int, lr: float, seed: int,
          bf16: bool | str = "auto", **extra):
    """CPU settings as for BC (learn/sft.py): bf16 where native, no gradient checkpointing."""
    return cls(**common.base_args(bf16, seed, steps), output_dir=str(common.trainer_dir(out_dir)),
               per_device_train_batch_size=batch_size, learning_rate=lr,
               lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20),
               save_strategy="no", **extra)


def _train(trainer, steps: int, desc: str) -> list[float]:
    progress = common.Progress(steps, desc)
    trainer.add_callback(progress)
    common.run(trainer, None, progress)
    return [x["loss"] for x in progress.logs if "loss" in x] or [float("nan")]


def _attn(policy: str | Path) -> dict:
    """Tiny from-scratch policies train faster with eager attention (policy/init.py)."""
    cfg = json.loads((Path(policy) / "config.json").read_text())
    if cfg.get("hidden_size", 1e9) > 256:
        return {}
    return {"attn_implementation": tiny_attn(cfg.get("max_position_embeddings", 0))}


def _quiet() -> None:
    """A policy loaded under a new head prints a load report (lm_head unused, head new):
    expected here, so not shown; nor are the dataset preprocessing bars."""
    import datasets
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()      # RewardTrainer's map() bars: noise next to ours


def _load_tokenizer(policy: str | Path):
    _quiet()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(policy)
    tok.padding_side = "right"        # right padding: a causal scorer's positions stay put
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _save(model, tok, out: Path, meta: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "reasonloop.json").write_text(json.dumps(meta, indent=2, default=str))
    return out


# ---------------------------------------------------------------- PRM -------------------
def train_prm(policy: str | Path, items: list[tuple[Problem, str, list[float]]], out: Path,
              *, steps: int, batch_size: int, lr: float, seed: int, meta: dict,
              bf16: bool | str = "auto", max_new_tokens: int | None = None) -> dict:
    """items: (problem, completion, label per step, good at GOOD_STEP) → {loss_first,
    loss_last, max_length, cut_examples}."""
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )
    tok = _load_tokenizer(policy)
    model = AutoModelForTokenClassification.from_pretrained(policy, num_labels=2,
                                                            dtype=torch.float32, **_attn(policy))
    whole = [step_ends(tok, p.prompt, text, p.step_sep) for p, text, _ in items]
    max_length, n_cut = common.fit_length(
        model, [len(x) for x in tok([p.prompt for p, _, _ in items])["input_ids"]],
        [len(ids) for ids, _ in whole], max_new_tokens, "PRM fit")
    rows = []
    for (_, _, labels), (ids, ends) in zip(items, whole):
        lab = [-100] * len(ids)
        for j, y in zip(ends, labels):
            lab[j] = int(good_step(y))
        if ends and ends[0] < max_length:
            rows.append({"input_ids": ids[:max_length], "labels": lab[:max_length]})
    model.config.pad_token_id = tok.pad_token_id
    trainer = Trainer(model=model, args=_args(TrainingArguments, out, steps, batch_size, lr,
                                              seed, bf16), train_dataset=Dataset.from_list(rows),
                      data_collator=DataCollatorForTokenClassification(tok))
    losses = _train(trainer, steps, "PRM fit")
    _save(model.eval(), tok, out, meta)
    return {"loss_first": losses[0], "loss_last": losses[-1], "n_examples": len(rows),
            "max_length": max_length, "cut_examples": n_cut}


def prefix_pairs(items: list[tuple[Problem, str, list[float]]], per_depth: int, seed: int
                 ) -> list[dict]:
    """Pairwise PRM data: per problem and depth k, up to `per_depth` (good, bad) pairs of
    distinct prefixes whose step k is labelled good / bad."""
    import random
    rng = random.Random(seed)
    groups: dict[tuple[str, int], tuple[set, set]] = {}
    for p, text, labels in items:
        for k, (pre, y) in enumerate(zip(step_prefixes(text, p.step_sep), labels)):
            groups.setdefault((p.problem_id, k), (set(), set()))[0 if y > 0 else 1].add(pre)
    out = []
    for (pid, _), (good, bad) in sorted(groups.items()):
        if good and bad:
            good_, bad_ = sorted(good), sorted(bad)
            out += [{"problem_id": pid, "chosen": rng.choice(good_),
                     "rejected": rng.choice(bad_)} for _ in range(per_depth)]
    return out


class LearnedPRM(CachedPRM):
    """`prm(problem, text) -> [P(step good)]`, with `many(items)` for batched scoring (beam
    search scores a whole depth at once). Scores are cached per (problem, text). A pairwise
    PRM scores each step's prefix with its scalar head; a pointwise one reads its token
    classifier at the step ends."""

    def __init__(self, path: str | Path):
        from transformers import AutoModelForTokenClassification
        self.path = str(path)
        arch = json.loads((Path(path) / "config.json").read_text())["architectures"][0]
        self.pairwise = arch.endswith("ForSequenceClassification")
        self.scorer = LearnedORM(path) if self.pairwise else None
        if not self.pairwise:
            self.tok = _load_tokenizer(path)
            self.model = _load(AutoModelForTokenClassification, path)
        self.cache: dict[tuple[str, str], list[float]] = {}

    def _fill(self, todo: list[tuple[Problem, str]]) -> None:
        if self.pairwise:
            pres = {(p.problem_id, t): step_prefixes(t, p.step_sep) for p, t in todo}
            scores = iter(self.scorer.many([(p, pre) for p, t in todo
                                            for pre in pres[(p.problem_id, t)]]))
            for p, t in todo:
                self.cache[(p.problem_id, t)] = [next(scores) for _ in pres[(p.problem_id, t)]]
        else:
            for i in range(0, len(todo), BATCH):
                self._token_scores(todo[i:i + BATCH])

    @torch.inference_mode()
    def _token_scores(self, chunk: list[tuple[Problem, str]]) -> None:
        enc = [step_ends(self.tok, p.prompt, t, p.step_sep, positions(self.model))
               for p, t in chunk]
        batch = self.tok.pad({"input_ids": [ids for ids, _ in enc]}, return_tensors="pt")
        probs = self.model(**batch.to(self.model.device)).logits.float().softmax(-1)[..., 1]
        for (p, t), (_, ends), row in zip(chunk, enc, probs):
            self.cache[(p.problem_id, t)] = [float(row[j]) for j in ends]


# ---------------------------------------------------------------- ORM -------------------
def orm_pairs(groups: dict[str, list[tuple[str, bool]]], per_problem: int, seed: int
              ) -> list[dict]:
    """Bradley–Terry pairs: per problem, up to `per_problem` (correct, incorrect) pairs of
    distinct texts, drawn at random — problems with no contrast give no pair."""
    import random
    rng = random.Random(seed)
    out = []
    for pid, cands in sorted(groups.items()):
        good = sorted({t for t, c in cands if c})
        bad = sorted({t for t, c in cands if not c})
        if not good or not bad:
            continue
        for _ in range(per_problem):
            out.append({"problem_id": pid, "chosen": rng.choice(good),
                        "rejected": rng.choice(bad)})
    return out


def train_pairwise(policy: str | Path, pairs: list[dict], prompts: dict[str, str], out: Path,
                   *, steps: int, batch_size: int, lr: float, seed: int, meta: dict,
                   desc: str = "ORM fit", bf16: bool | str = "auto",
                   max_new_tokens: int | None = None) -> dict:
    """TRL RewardTrainer on (prompt, chosen, rejected) → {loss_first, loss_last, n_pairs,
    max_length, cut_examples}: the ORM on whole trajectories, the pairwise PRM on step
    prefixes."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer
    tok = _load_tokenizer(policy)
    rows = [{"prompt": prompts[p["problem_id"]], "chosen": p["chosen"],
             "rejected": p["rejected"]} for p in pairs]
    model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1,
                                                               dtype=torch.float32,
                                                               **_attn(policy))
    model.config.pad_token_id = tok.pad_token_id
    prompt, _, _, longer = common.pair_lengths(
        tok, *([r[k] for r in rows] for k in ("prompt", "chosen", "rejected")))
    max_length, n_cut = common.fit_length(model, prompt, longer, max_new_tokens, desc)
    args = _args(RewardConfig, out, steps, batch_size, lr, seed, bf16, max_length=max_length,
                 dataset_num_proc=None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tok)
    losses = _train(trainer, steps, desc)
    _save(model.eval(), tok, out, meta)
    return {"loss_first": losses[0], "loss_last": losses[-1], "n_pairs": len(pairs),
            "max_length": max_length, "cut_examples": n_cut}


class LearnedORM:
    """`orm(problem, text) -> σ(reward)`, batched via `many`; the text is scored as
    RewardTrainer saw it in training (prompt + completion + EOS)."""

    def __init__(self, path: str | Path):
        from transformers import AutoModelForSequenceClassification
        self.path = str(path)
        self.tok = _load_tokenizer(path)
        self.model = _load(AutoModelForSequenceClassification, path)
        self.cache: dict[tuple[str, str], float] = {}

    def __call__(self, problem: Problem, text: str) -> float:
        return self.many([(problem, text)])[0]

    @torch.inference_mode()
    def many(self, items: list[tuple[Problem, str]]) -> list[float]:
        todo = list(dict.fromkeys((p.problem_id, p.prompt, t) for p, t in items
                                  if (p.problem_id, t) not in self.cache))
        eos = self.tok.eos_token or ""
        for i in range(0, len(todo), BATCH):
            chunk = todo[i:i + BATCH]
            batch = self.tok([prompt + t + eos for _, prompt, t in chunk], padding=True,
                             truncation=True, max_length=positions(self.model),
                             return_tensors="pt")
            scores = self.model(**batch.to(self.model.device)).logits[:, 0].float().sigmoid()
            for (pid, _, t), s in zip(chunk, scores):
                self.cache[(pid, t)] = float(s)
        return [self.cache[(p.problem_id, t)] for p, t in items]
