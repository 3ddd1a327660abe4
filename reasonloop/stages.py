"""The five stages of one flywheel iteration as plain functions (Prefect-free).

Each stage reads its inputs from the workspace (DuckDB, Parquet, model dirs), writes its
outputs there, and is idempotent: run it twice and the second run adds nothing. That, plus
Prefect's per-(run, iteration, stage) cache in `tasks/`, is what makes a crashed run resume.
"""

from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import polars as pl
import torch

from reasonloop import compute, faults
from reasonloop import filter as filt
from reasonloop.config import Config
from reasonloop.envs.base import Problem
from reasonloop.paths import Paths
from reasonloop.policy.engines import SamplingParams, load_engine
from reasonloop.reward.outcome import score_rows
from reasonloop.search.base import SearchSpec
from reasonloop.search.methods import SEARCH
from reasonloop.store import db

# Seconds of real work (sampling, scoring, training) per stage, so that the flow can report
# how much of an iteration is bookkeeping (Prefect, DuckDB, DVC, MLflow).
COMPUTE_S: dict[tuple, float] = {}


def paths(cfg: Config) -> Paths:
    return Paths(Path(cfg.run.root).resolve())


@lru_cache(maxsize=4)
def _env_and_problems(env_json: str, policy_path: str | None):
    from reasonloop.config import EnvConfig
    ecfg = EnvConfig.model_validate_json(env_json)
    if ecfg.name == "countdown":
        from reasonloop.envs.countdown import Countdown
        env = Countdown(ecfg)
    else:
        from transformers import AutoTokenizer

        from reasonloop.envs.math import MathEnv
        tok = AutoTokenizer.from_pretrained(policy_path) if policy_path else None
        env = MathEnv(ecfg, tok)          # prompts in the model's chat template, if any
    problems = env.problems()
    return env, problems, {p.problem_id: p for p in problems}


def env_and_problems(cfg: Config):
    path = str(cfg.policy.path) if cfg.policy.path and cfg.env.name == "math" else None
    return _env_and_problems(cfg.env.model_dump_json(), path)


def split(cfg: Config, name: str) -> list[Problem]:
    return [p for p in env_and_problems(cfg)[1] if p.split == name]


def git_sha(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def set_threads(cfg: Config) -> None:
    """Sampling threads: a generate shard's share of the CPUs (reasonloop/compute.py)."""
    torch.set_num_threads(compute.resolve(cfg).search_threads)


# ---------------------------------------------------------------- run start -------------
def start_run(cfg: Config, run_id: str) -> dict:
    """DuckDB schema + problems + the run row; DVC repo with a local remote; MLflow store."""
    from reasonloop.store import data, registry
    P = paths(cfg)
    env, problems, _ = env_and_problems(cfg)
    db.init_db(P.db)
    added = db.insert_problems(P.db, env.name, problems)
    db.record_run(P.db, run_id, cfg.to_json(), cfg.hash(), git_sha(P.root),
                  compute.resolve(cfg).record())
    P.data.mkdir(parents=True, exist_ok=True)
    data.ensure_remote(P.root, P.dvc_remote)
    registry.setup(P.mlflow_db, P.mlartifacts)
    return {"problems": len(problems), "new_problems": added}


def latest_run(db_path: Path) -> str | None:
    """The workspace's most recent run (None: no store yet, or no run in it)."""
    if not Path(db_path).exists():
        return None
    df = db.query(db_path, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    return df["run_id"][0] if df.height else None


def stored_config(db_path: Path, run_id: str, **run_updates) -> Config | None:
    """The config a run started with (its `run` section updated, e.g. root), so a resume or a
    rebuilt report sees what the run saw. None: no such run."""
    if not Path(db_path).exists():
        return None
    df = db.query(db_path, "SELECT config_json FROM runs WHERE run_id = $run", {"run": run_id})
    if not df.height:
        return None
    cfg = Config.model_validate_json(df["config_json"][0])
    return cfg.model_copy(update={"run": cfg.run.model_copy(update=run_updates)})


# ---------------------------------------------------------------- Step 1: search --------
def search_spec(cfg: Config, engine=None, progress: bool = False, trace: list | None = None,
                run_id: str | None = None, iteration: int | None = None) -> SearchSpec:
    """The verifiers search may consult — the PRM from `reward.prm` (the env's oracle step
    labels, Monte-Carlo labels from rollouts of `engine`, or the learned PRM fitted at or
    before `iteration` of `run_id`), the ORM = the env's exact verifier, a learned ORM's
    score when one exists — and the `search.*` knobs."""
    from reasonloop.reward.fit import label_prm, learned_verifier
    env = env_and_problems(cfg)[0]
    s = cfg.search

    def orm(p, text):
        return env.verify(p, text).correct
    prm = label_prm(cfg, cfg.reward.prm, engine, orm) if cfg.reward.prm != "learned" else \
        learned_verifier(cfg, "prm", run_id, iteration) or \
        label_prm(cfg, cfg.reward.prm_labels, engine, orm)   # none fitted yet: its labels
    return SearchSpec(prm=prm, orm=orm, orm_score=learned_verifier(cfg, "orm", run_id, iteration),
                      feedback=getattr(env, "feedback", None), width=s.beam_width,
                      expand=s.mcts_expand, c_puct=s.mcts_c_puct, value=s.mcts_value,
                      token_budget=s.mcts_token_budget, rounds=s.revise_rounds,
                      progress=progress, trace=trace)


def pick_problems(cfg: Config, run_id: str, iteration: int) -> list[Problem]:
    """Sample allocation: problems this run has never searched first (fresh problems beat a
    memorised pool), then ones it searched but never solved, then the rest."""
    train = split(cfg, "train")
    seen = db.query(paths(cfg).db, f"""
        SELECT problem_id, bool_or(correct) AS solved FROM trajectories
        WHERE run_id = '{run_id}' AND iteration < {iteration} AND method NOT LIKE 'eval:%'
        GROUP BY 1""")
    solved = dict(zip(seen["problem_id"], seen["solved"])) if seen.height else {}
    rng = random.Random(cfg.run.seed * 1000 + iteration)
    order = list(train)
    rng.shuffle(order)
    if cfg.search.prefer_unsolved:
        order.sort(key=lambda p: 0 if p.problem_id not in solved else
                   (1 if not solved[p.problem_id] else 2))
    return order[: cfg.search.problems_per_iteration]


def shard_path(cfg: Config, run_id: str, iteration: int, shard: int) -> Path:
    return paths(cfg).run_data(run_id, iteration) / "shards" / f"search-{shard:03d}.parquet"


def generate_shard(cfg: Config, run_id: str, iteration: int, policy: str, shard: int) -> str:
    """Training-time search over one shard of this iteration's problems → raw samples."""
    out = shard_path(cfg, run_id, iteration, shard)
    if out.exists():
        return str(out)
    t0 = time.perf_counter()
    set_threads(cfg)
    problems = pick_problems(cfg, run_id, iteration)[shard::cfg.search.shards]
    engine = load_engine(cfg.policy.engine, policy, seed=cfg.run.seed,
                         dtype=cfg.policy.dtype)
    params = SamplingParams(temperature=cfg.search.temperature, top_p=cfg.search.top_p,
                            max_new_tokens=cfg.policy.max_new_tokens,
                            seed=hash((cfg.run.seed, iteration, shard)) % 2**31)
    rows = SEARCH[cfg.search.method](problems, engine, params, cfg.search.n,
                                     search_spec(cfg, engine, True, None, run_id, iteration - 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pl.DataFrame(rows, schema={"problem_id": pl.String, "method": pl.String,
                               "sample_idx": pl.Int32, "text": pl.String,
                               "n_tokens": pl.Int32}).write_parquet(tmp)
    tmp.rename(out)   # atomic: a crash never leaves half a shard
    if shard == 0:
        faults.point("generate", iteration)   # the other shards may still be sampling
    COMPUTE_S[("generate", run_id, iteration, shard)] = time.perf_counter() - t0
    return str(out)


# ---------------------------------------------------------------- Step 2: verify --------
def verify(cfg: Config, run_id: str, iteration: int, shard_files: list[str],
           policy: str | None = None) -> dict:
    """ORM (outcome) + PRM (step) rewards for every trajectory → DuckDB + D_search. The step
    rewards come from `reward.prm` (oracle labels; MC labels from rollouts of `policy`; the
    learned PRM fitted before this iteration)."""
    out = paths(cfg).d_search(run_id, iteration)
    if out.exists():     # written last and atomically: this iteration was verified already
        d_search = pl.read_parquet(out)
        return _search_stats(d_search, db.insert_trajectories(paths(cfg).db, d_search))
    env, _, by_id = env_and_problems(cfg)
    rows = pl.concat([pl.read_parquet(f) for f in sorted(shard_files)]).to_dicts()
    t0 = time.perf_counter()
    scored = score_rows(env, by_id, rows, cfg.reward.shaping, cfg.policy.max_new_tokens)
    if cfg.reward.prm != "oracle":
        from reasonloop.search.base import scores_of
        mc = "mc" in (cfg.reward.prm, cfg.reward.prm_labels)     # only MC labels roll out
        engine = load_engine(cfg.policy.engine, policy, seed=cfg.run.seed,
                             dtype=cfg.policy.dtype) if policy and mc else None
        prm = search_spec(cfg, engine, run_id=run_id, iteration=iteration - 1).prm
        for s, steps in zip(scored, scores_of(prm, [(by_id[s["problem_id"]], s["text"])
                                                   for s in scored])):
            s["step_rewards"] = [float(x) for x in steps]
    COMPUTE_S[("verify", run_id, iteration)] = time.perf_counter() - t0
    # created_at = when the shards were sampled: the same on a rerun, in DuckDB and D_search
    sampled = datetime.fromtimestamp(max(Path(f).stat().st_mtime for f in shard_files), UTC)
    df = db.trajectories_frame(run_id, iteration, scored, sampled.replace(tzinfo=None))
    added = db.insert_trajectories(paths(cfg).db, df)
    faults.point("verify", iteration)         # rows stored, D_search not yet written
    d_search = df.with_columns(pl.Series("legal", [s["legal"] for s in scored]),
                               pl.Series("answer", [s["answer"] for s in scored]))
    d_search.write_parquet(out.with_suffix(".tmp"))
    out.with_suffix(".tmp").rename(out)
    return _search_stats(d_search, added)


def _search_stats(d_search: pl.DataFrame, added: int) -> dict:
    solved = d_search.filter(pl.col("correct"))["problem_id"].n_unique()
    n_tok = int(d_search["n_tokens"].sum())
    return {"n_search": d_search.height, "inserted": added, "solved": solved,
            "problems": d_search["problem_id"].n_unique(),
            "sample_acc": float(d_search["correct"].mean()),
            "legal": float(d_search["legal"].mean()), "tokens": n_tok,
            "solved_per_1k_tokens": 1000 * solved / max(1, n_tok)}


# ---------------------------------------------------------------- Step 3: filter --------
def filter_expert(cfg: Config, run_id: str, iteration: int) -> dict:
    """D_search → D_expert (correct, deduped, capped; + hindsight) and, when a DPO phase is
    scheduled, preference pairs (d_pairs.parquet); then `dvc add/push`."""
    from reasonloop.store import data
    env, _, by_id = env_and_problems(cfg)
    P = paths(cfg)
    d_search = pl.read_parquet(P.d_search(run_id, iteration))
    prompts = {pid: by_id[pid].prompt for pid in d_search["problem_id"].unique()}
    expert = filt.d_expert(d_search, prompts, cfg.filter.max_per_problem, cfg.run.seed)
    if cfg.filter.revision_examples:
        expert = pl.concat([expert, filt.revision_examples(
            env, d_search, by_id, cfg.filter.revision_examples, cfg.run.seed + iteration)])
    if cfg.filter.hindsight:
        hs = filt.hindsight(env, d_search, by_id, cfg.filter.max_hindsight,
                            cfg.filter.max_per_problem, cfg.run.seed + iteration)
        expert = pl.concat([expert, hs])
    expert.write_parquet(P.d_expert(run_id, iteration))
    pairs = {}
    if uses_dpo(cfg):
        d = cfg.learn.dpo
        dp = filt.dpo_pairs(d_search, prompts, d.pairs_per_problem, cfg.run.seed + iteration,
                            d.step_pairs_per_problem, env.step_sep)
        dp.write_parquet(P.d_pairs(run_id, iteration))
        pairs = {"n_pairs": dp.height, "n_step_pairs": int((dp["kind"] == "step").sum())}
    faults.point("filter", iteration)         # D_expert written, not yet versioned by DVC
    md5 = data.snapshot(P.root, P.data, push=cfg.run.dvc_push)
    db.update_iteration(P.db, run_id, iteration, data_md5=md5, n_expert=expert.height,
                        n_search=d_search.height, **pairs)
    return {"n_expert": expert.height, "n_hindsight": int((expert["source"] == "hindsight").sum()),
            "n_revision": int((expert["source"] == "revision").sum()), "data_md5": md5, **pairs}


def uses_dpo(cfg: Config) -> bool:
    return "dpo" in (cfg.learn.phases or cfg.learn.schedule)


# ---------------------------------------------------------------- Step 4: learn ---------
def train(cfg: Config, run_id: str, iteration: int, start_from: str, phase: str) -> dict:
    """BC, DPO or GRPO from `start_from` → this iteration's policy (learn/step.py)."""
    from reasonloop.learn.step import train as learn
    return learn(cfg, run_id, iteration, start_from, phase)


# ---------------------------------------------------------------- Step 5: evaluate ------
def evaluate_model(cfg: Config, model_path: str, search: bool = False, run_id: str | None = None,
                   iteration: int | None = None) -> tuple[dict, list[dict]]:
    """Greedy pass@1 on val/test and sampled pass@k, maj@k (+ test-time search on the test
    split when `search`) → (metrics, trajectory rows)."""
    from reasonloop.eval.evaluate import evaluate
    from reasonloop.eval.test_time import to_metrics
    set_threads(cfg)
    env = env_and_problems(cfg)[0]
    engine = load_engine(cfg.policy.engine, model_path, seed=cfg.run.seed,
                         dtype=cfg.policy.dtype)
    e = cfg.eval
    metrics, rows = evaluate(env, engine, {"val": split(cfg, "val"), "test": split(cfg, "test")},
                             k=e.k, n_samples=e.n_samples, temperature=e.temperature,
                             n_sampled=e.n_sampled_problems,
                             max_new_tokens=cfg.policy.max_new_tokens, seed=cfg.run.seed)
    if search and e.search_methods:
        problems = split(cfg, "test")[: e.search_problems]
        results, more = test_time_search(cfg, engine, problems, e.search_methods,
                                         e.search_budgets, run_id, iteration)
        metrics.update(to_metrics(results, "test"))
        rows += more
    return metrics, rows


def test_time_search(cfg: Config, engine, problems: list[Problem], methods: list[str],
                     budgets: list[int], run_id: str | None = None,
                     iteration: int | None = None) -> tuple[list[dict], list[dict]]:
    """Every method × budget on `problems`, same seed → (results, scored rows)."""
    from reasonloop.eval.test_time import run_test_time
    from reasonloop.search.methods import needs_orm
    spec = search_spec(cfg, engine, True, None, run_id, iteration)
    if spec.orm_score is None and (skip := needs_orm(methods)):
        print(f"test-time search: no learned ORM fitted yet, skipping {', '.join(skip)}")
        methods = [m for m in methods if m not in skip]
    params = SamplingParams(temperature=cfg.search.temperature, top_p=cfg.search.top_p,
                            max_new_tokens=cfg.policy.max_new_tokens, seed=cfg.run.seed)
    return run_test_time(env_and_problems(cfg)[0], engine, problems, methods, budgets,
                         spec, params, cfg.search.prm_aggregation)


def evaluate_policy(cfg: Config, run_id: str, iteration: int, policy: str) -> dict:
    t0 = time.perf_counter()
    every = cfg.eval.search_every
    search = iteration == cfg.run.iterations or (every > 0 and iteration % every == 0)
    metrics, rows = evaluate_model(cfg, policy, search, run_id, iteration)
    COMPUTE_S[("evaluate", run_id, iteration)] = time.perf_counter() - t0
    db.insert_trajectories(paths(cfg).db, db.trajectories_frame(run_id, iteration, rows))
    faults.point("evaluate", iteration)       # eval rows stored, the task not yet finished
    return metrics


class Laps:
    """Wall seconds per stage: `lap("train")` closes the lap that started at the last call
    and records the stage as done in `iterations.stage_done` (where a run stands, by SQL)."""

    def __init__(self, cfg: Config, run_id: str, iteration: int):
        self.seconds: dict[str, float] = {"total": 0.0}
        self._t = time.perf_counter()
        self._where = (paths(cfg).db, run_id, iteration)

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._t
        self.seconds["total"] += now - self._t
        self._t = now
        db.update_iteration(*self._where, stage_done=stage)


def compute_seconds(run_id: str, iteration: int) -> dict[str, float]:
    """Per stage; parallel shards count once (their longest), as they overlap in time."""
    out: dict[str, float] = {}
    for key, sec in COMPUTE_S.items():
        if key[1] == run_id and key[2] == iteration:
            out[key[0]] = max(out.get(key[0], 0.0), sec)
    return out
