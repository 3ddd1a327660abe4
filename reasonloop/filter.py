"""Filter: D_search → D_expert, the data the policy learns from (expert iteration).

D_expert = correct trajectories, deduplicated by text, at most `max_per_problem` per problem
(so easy problems do not drown out hard ones). Optional hindsight relabeling turns a *legal*
miss into a correct example of the problem whose target it did reach — the trick that
lifted the prototype 15–20 points; test targets are never relabeled into training.
Also yields DPO pairs (correct vs incorrect for one problem) for the preference phase.
"""

from __future__ import annotations

import polars as pl


def d_expert(d_search: pl.DataFrame, prompts: dict[str, str], max_per_problem: int,
             seed: int = 0) -> pl.DataFrame:
    """Columns: problem_id, prompt, completion, source ('search')."""
    if d_search.is_empty():
        return _empty()
    good = (d_search.filter(pl.col("correct"))
            .unique(subset=["problem_id", "text"], keep="first", maintain_order=True)
            .with_columns(pl.int_range(pl.len()).shuffle(seed).over("problem_id").alias("_r"))
            .filter(pl.col("_r") < max_per_problem))
    return pl.DataFrame({
        "problem_id": good["problem_id"],
        "prompt": [prompts[p] for p in good["problem_id"]],
        "completion": good["text"], "source": ["search"] * good.height}, schema=_SCHEMA)


def hindsight(env, d_search: pl.DataFrame, problems: dict, max_n: int,
              max_per_problem: int, seed: int = 0) -> pl.DataFrame:
    """Legal misses relabeled with the value they reached (training targets only, never a
    val/test problem)."""
    if max_n == 0 or d_search.is_empty() or not hasattr(env, "relabel"):
        return _empty()
    held_out = frozenset(pid for pid, p in problems.items() if p.split != "train")
    misses = d_search.filter(~pl.col("correct") & pl.col("legal"))
    rows = []
    for pid, text in zip(misses["problem_id"], misses["text"]):
        p = problems[pid]
        new = env.relabel(p, text, env.verify(p, text), exclude=held_out)
        if new is not None:
            rows.append((new.problem_id, new.prompt, text))
    if not rows:
        return _empty()
    df = (pl.DataFrame(rows, schema=["problem_id", "prompt", "completion"], orient="row")
          .unique(subset=["problem_id", "completion"], keep="first", maintain_order=True)
          .with_columns(pl.int_range(pl.len()).shuffle(seed).over("problem_id").alias("_r"))
          .filter(pl.col("_r") < max_per_problem).drop("_r")
          .sample(fraction=1.0, shuffle=True, seed=seed).head(max_n))
    return df.with_columns(pl.lit("hindsight").alias("source")).select(_SCHEMA.keys())


def revision_examples(env, d_search: pl.DataFrame, problems: dict, max_n: int,
                      seed: int = 0) -> pl.DataFrame:
    """Sequential revision, learned from the flywheel's own failures: the prompt is a failed
    attempt plus the verifier's feedback, the completion a correct solution of the same
    problem (one per problem, at most `max_n`)."""
    from reasonloop.search.revise import revision_prompt
    if max_n == 0 or d_search.is_empty() or not hasattr(env, "feedback"):
        return _empty()
    pairs = (_pairs(d_search, 1, seed).rename({"chosen": "completion", "rejected": "failed"})
             .sample(fraction=1.0, shuffle=True, seed=seed).head(max_n))
    prompts = []
    for pid, failed in zip(pairs["problem_id"], pairs["failed"]):
        p = problems[pid]
        prompts.append(revision_prompt(p.prompt, failed, env.feedback(p, failed) or "wrong"))
    return pl.DataFrame({"problem_id": pairs["problem_id"], "prompt": prompts,
                         "completion": pairs["completion"],
                         "source": ["revision"] * pairs.height}, schema=_SCHEMA)


def dpo_pairs(d_search: pl.DataFrame, prompts: dict[str, str], max_per_problem: int = 2,
              seed: int = 0) -> pl.DataFrame:
    """(prompt, chosen, rejected): a correct and an incorrect sample of the same problem."""
    if d_search.is_empty():
        return pl.DataFrame(schema={"prompt": pl.String, "chosen": pl.String,
                                    "rejected": pl.String})
    return _pairs(d_search, max_per_problem, seed).with_columns(
        pl.col("problem_id").replace_strict(prompts).alias("prompt")).select(
        "prompt", "chosen", "rejected")


def _pairs(d_search: pl.DataFrame, per_problem: int, seed: int) -> pl.DataFrame:
    """(problem_id, chosen, rejected): distinct correct × incorrect texts of one problem,
    at most `per_problem` per problem, chosen at random (seeded)."""
    pos = d_search.filter(pl.col("correct")).unique(["problem_id", "text"]).select(
        "problem_id", pl.col("text").alias("chosen"))
    neg = d_search.filter(~pl.col("correct")).unique(["problem_id", "text"]).select(
        "problem_id", pl.col("text").alias("rejected"))
    return (pos.join(neg, on="problem_id").sort("problem_id", "chosen", "rejected")
            .with_columns(pl.int_range(pl.len()).shuffle(seed).over("problem_id").alias("_r"))
            .filter(pl.col("_r") < per_problem).drop("_r"))


_SCHEMA = {"problem_id": pl.String, "prompt": pl.String, "completion": pl.String,
           "source": pl.String}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_SCHEMA)
