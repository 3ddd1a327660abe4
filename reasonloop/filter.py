"""Filter: D_search → D_expert, the data the policy learns from (expert iteration).

D_expert = correct trajectories, deduplicated by text, at most `max_per_problem` per problem
(so easy problems do not drown out hard ones). Optional hindsight relabeling turns a *legal*
miss into a correct example of the problem whose target it did reach — the trick that
lifted the prototype 15–20 points; test targets are never relabeled into training.
Also yields DPO pairs (correct vs incorrect for one problem) for the preference phase.
"""

from __future__ import annotations

import polars as pl

from reasonloop.envs.base import step_prefixes
from reasonloop.reward.process import good_step
from reasonloop.search.revise import revision_prompt


def cap_per_problem(df: pl.DataFrame, k: int, seed: int, shortest: str | None = None
                    ) -> pl.DataFrame:
    """At most k rows per problem, a seeded random k of each problem's rows (order kept) —
    or, with `shortest` (a text column), the k shortest, ties broken at random."""
    rank = pl.int_range(pl.len()).shuffle(seed)
    if shortest is not None:
        rank = (pl.col(shortest).str.len_chars() * pl.len() + rank).rank("ordinal") - 1
    rank = rank.over("problem_id")
    return df.with_columns(rank.alias("_r")).filter(pl.col("_r") < k).drop("_r")


def d_expert(d_search: pl.DataFrame, prompts: dict[str, str], max_per_problem: int,
             seed: int = 0, prefer_shorter: bool = False) -> pl.DataFrame:
    """Columns: problem_id, prompt, completion, source ('search')."""
    if d_search.is_empty():
        return _empty()
    good = (d_search.filter(pl.col("correct"))
            .unique(subset=["problem_id", "text"], keep="first", maintain_order=True)
            .pipe(cap_per_problem, max_per_problem, seed, "text" if prefer_shorter else None))
    return pl.DataFrame({
        "problem_id": good["problem_id"],
        "prompt": [prompts[p] for p in good["problem_id"]],
        "completion": good["text"], "source": ["search"] * good.height}, schema=_SCHEMA)


def hindsight(env, d_search: pl.DataFrame, problems: dict, max_n: int,
              max_per_problem: int, seed: int = 0) -> pl.DataFrame:
    """Misses relabeled with the value they reached (training targets only, never a val/test
    problem); the env decides what of a miss is a solution (Countdown: all its steps must be
    legal) and rewrites what the new target changes (a trace's checks)."""
    if max_n == 0 or d_search.is_empty() or not hasattr(env, "relabel"):
        return _empty()
    held_out = frozenset(pid for pid, p in problems.items() if p.split != "train")
    misses = d_search.filter(~pl.col("correct"))
    rows = []
    for pid, text in zip(misses["problem_id"], misses["text"]):
        p = problems[pid]
        found = env.relabel(p, text, env.verify(p, text), exclude=held_out)
        if found is not None:
            new, completion = found
            rows.append((new.problem_id, new.prompt, completion))
    if not rows:
        return _empty()
    df = (pl.DataFrame(rows, schema=["problem_id", "prompt", "completion"], orient="row")
          .unique(subset=["problem_id", "completion"], keep="first", maintain_order=True)
          .pipe(cap_per_problem, max_per_problem, seed)
          .sample(fraction=1.0, shuffle=True, seed=seed).head(max_n))
    return df.with_columns(pl.lit("hindsight").alias("source")).select(_SCHEMA.keys())


def revision_examples(env, d_search: pl.DataFrame, problems: dict, max_n: int,
                      seed: int = 0) -> pl.DataFrame:
    """Sequential revision, learned from the flywheel's own failures: the prompt is a failed
    attempt plus the verifier's feedback, the completion a correct solution of the same
    problem (one per problem, at most `max_n`)."""
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


def repairs(env, d_search: pl.DataFrame, problems: dict, seed: int = 0
            ) -> list[tuple[str, str, str]]:
    """(problem_id, wrong text, the env's correction of it) for the distinct wrong samples
    the env can correct, shuffled (seeded); a correction that does not verify is dropped.
    `corrections` and `correction_pairs` both take this list (`repaired`), so a filter
    stage that uses both asks the env once."""
    if d_search.is_empty() or not callable(getattr(env, "correct", None)):
        return []
    wrong = (d_search.filter(~pl.col("correct")).unique(["problem_id", "text"])
             .sort("problem_id", "text").sample(fraction=1.0, shuffle=True, seed=seed))
    out = []
    for pid, text in wrong.select("problem_id", "text").iter_rows():
        fixed = env.correct(problems[pid], text)
        if fixed is not None and fixed != text and env.verify(problems[pid], fixed).correct:
            out.append((pid, text, fixed))
    return out


def corrections(env, d_search: pl.DataFrame, problems: dict, max_n: int, seed: int = 0,
                repaired: list | None = None) -> pl.DataFrame:
    """BC examples from the policy's failures: a problem it got wrong at least once, with the
    env's correction of a wrong sample as the completion (one per problem, at most `max_n`;
    an env with an oracle only, e.g. Countdown's searcher and solver). D_expert alone holds
    the problems the policy already solves: its hard problems are where it fails."""
    if max_n == 0:
        return _empty()
    if repaired is None:
        repaired = repairs(env, d_search, problems, seed)
    rows = [(pid, problems[pid].prompt, fixed) for pid, _, fixed in repaired]
    if not rows:
        return _empty()
    df = (pl.DataFrame(rows, schema=["problem_id", "prompt", "completion"], orient="row")
          .unique(subset="problem_id", keep="first", maintain_order=True).head(max_n))
    return df.with_columns(pl.lit("correction").alias("source")).select(_SCHEMA.keys())


def correction_pairs(env, d_search: pl.DataFrame, problems: dict, per_problem: int,
                     seed: int = 0, repaired: list | None = None) -> pl.DataFrame:
    """Step pairs with the env's correction as the chosen side (Step-DPO): the prompt carries
    the lines a wrong sample shares with its correction, `chosen` the correction's rest,
    `rejected` the sample's rest — so every wrong sample the env can correct gives a
    preference about the line where it went wrong, not only the rare ones that another
    sample of the same problem got right."""
    rows = []
    if repaired is None:
        repaired = repairs(env, d_search, problems, seed)
    for pid, text, fixed in repaired:
        k = _shared_lines(text, fixed)
        if k < len(text) and k < len(fixed):
            rows.append((pid, problems[pid].prompt + text[:k], fixed[k:], text[k:]))
    if not per_problem or not rows:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    df = (pl.DataFrame(rows, schema=["problem_id", "prompt", "chosen", "rejected"],
                       orient="row").unique(["prompt", "rejected"], maintain_order=True)
          .pipe(cap_per_problem, per_problem, seed))
    return df.with_columns(pl.lit("correction").alias("kind")).select(PAIR_SCHEMA.keys())


def _shared_lines(a: str, b: str) -> int:
    """The length of the whole lines two texts begin with alike."""
    k = 0
    for x, y in zip(a.splitlines(keepends=True), b.splitlines(keepends=True)):
        if x != y or not x.endswith("\n"):
            break
        k += len(x)
    return k


PAIR_SCHEMA = {"problem_id": pl.String, "prompt": pl.String, "chosen": pl.String,
               "rejected": pl.String, "kind": pl.String}


def dpo_pairs(d_search: pl.DataFrame, prompts: dict[str, str], max_per_problem: int = 2,
              seed: int = 0, step_pairs_per_problem: int = 0, step_sep: str = "\n"
              ) -> pl.DataFrame:
    """(prompt, chosen, rejected) for DPO. `outcome` pairs: a correct and an incorrect
    sample of the same problem. `step` pairs (where step labels exist): a correct and an
    incorrect sample that share their first k steps and part at the incorrect one's first
    bad step — the prompt carries the shared prefix, so the preference is about that step."""
    if d_search.is_empty():
        return pl.DataFrame(schema=PAIR_SCHEMA)
    outcome = pl.DataFrame(schema=PAIR_SCHEMA)
    if max_per_problem:
        outcome = _pairs(d_search, max_per_problem, seed).with_columns(
            pl.col("problem_id").replace_strict(prompts).alias("prompt"),
            pl.lit("outcome").alias("kind")).select(PAIR_SCHEMA.keys())
    parts = [outcome]
    if step_pairs_per_problem and "step_rewards" in d_search.columns:
        parts.append(_step_pairs(d_search, prompts, step_pairs_per_problem, seed, step_sep))
    return pl.concat(parts)


def _step_pairs(d_search: pl.DataFrame, prompts: dict[str, str], per_problem: int,
                seed: int, step_sep: str) -> pl.DataFrame:
    good, bad = [], []
    for pid, text, ok, rewards in d_search.select(
            "problem_id", "text", "correct", "step_rewards").iter_rows():
        prefixes = [q for q in step_prefixes(text, step_sep) if text.startswith(q)]
        if ok:
            good += [(pid, q, text[len(q):]) for q in prefixes[:-1]]
            continue
        first_bad = next((i for i, r in enumerate(rewards or []) if not good_step(r)), None)
        if first_bad and first_bad <= len(prefixes):      # a shared prefix of ≥ 1 good step
            q = prefixes[first_bad - 1]
            bad.append((pid, q, text[len(q):]))
    if not good or not bad:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    cols = ["problem_id", "prefix"]
    pos = pl.DataFrame(good, schema=[*cols, "chosen"], orient="row").unique()
    neg = pl.DataFrame(bad, schema=[*cols, "rejected"], orient="row").unique()
    return (pos.join(neg, on=cols).sort(*cols, "chosen", "rejected")
            .pipe(cap_per_problem, per_problem, seed)
            .with_columns((pl.col("problem_id").replace_strict(prompts) + pl.col("prefix"))
                          .alias("prompt"), pl.lit("step").alias("kind"))
            .select(PAIR_SCHEMA.keys()))


def _pairs(d_search: pl.DataFrame, per_problem: int, seed: int) -> pl.DataFrame:
    """(problem_id, chosen, rejected): distinct correct × incorrect texts of one problem,
    at most `per_problem` per problem, chosen at random (seeded)."""
    pos = d_search.filter(pl.col("correct")).unique(["problem_id", "text"]).select(
        "problem_id", pl.col("text").alias("chosen"))
    neg = d_search.filter(~pl.col("correct")).unique(["problem_id", "text"]).select(
        "problem_id", pl.col("text").alias("rejected"))
    return (pos.join(neg, on="problem_id").sort("problem_id", "chosen", "rejected")
            .pipe(cap_per_problem, per_problem, seed))


_SCHEMA = {"problem_id": pl.String, "prompt": pl.String, "completion": pl.String,
           "source": pl.String}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_SCHEMA)
