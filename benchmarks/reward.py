"""Benchmark: reward design — Monte-Carlo step labels, the learned PRM and ORM.

    python benchmarks/reward.py [--root /tmp/bench-default] [--model countdown-direct@champion]
        [--run RUN_ID] [--iteration 5] [--problems 300] [--ms 1,4,16] [--limit 500]
        [--skip-mc] [--skip-fit]

1. MC labels vs oracle labels: agreement at m = 1, 4, 16 and the rollout tokens it cost
   (one T=1 trajectory per train problem from the champion).
2. Learned PRM and ORM fitted exactly as the flywheel's fit-verifiers stage does, on a run's
   D_search up to `--iteration` (from the policy that produced that iteration's data):
   step AUC against the oracle labels and ORM AUC (correct vs wrong) on held-out train
   problems, and on the champion's samples on val and on test (targets never trained on).
3. Test time on the champion, on val (targets seen in training) and test (unseen targets):
   beam search with the learned PRM vs the oracle PRM at equal budget, and the learned ORM
   as a (weighted) best-of-N scorer, and as beam's final pick, vs majority vote.
Writes benchmarks/results/reward.md (+ reward_test_time_<split>.png).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from reasonloop.paths import Paths, shown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def mc_agreement(cfg, engine, n_problems: int, ms: list[int]) -> list[str]:
    from reasonloop import workspace
    from reasonloop.policy.engines import SamplingParams
    from reasonloop.reward.mc import agreement, mc_labels
    env = workspace.env_and_problems(cfg)[0]
    train = workspace.split(cfg, "train")[:n_problems]
    params = SamplingParams(temperature=1.0, max_new_tokens=cfg.policy.max_new_tokens, seed=0)
    outs = engine.sample([p.prompt for p in train], 1, params)
    items = [(p, o[0].text) for p, o in zip(train, outs)]
    oracle = [env.verify(p, t).step_rewards for p, t in items]
    n_steps = sum(len(o) for o in oracle)
    orm = lambda p, t: env.verify(p, t).correct  # noqa: E731
    md = ["## 1. Monte-Carlo step labels vs the oracle's", "",
          f"{len(items)} sampled train trajectories, {n_steps} steps; oracle-good steps: "
          f"{sum(sum(o) for o in oracle) / max(1, n_steps):.1%}. A text the verifier accepts "
          "labels its last step 1 without rollouts; every other step is rolled out m times.",
          "", "| m | agreement (hard label) | rollout tokens | tokens/step | seconds |",
          "|---|---|---|---|---|"]
    for m in ms:
        t0 = time.perf_counter()
        labels = mc_labels(items, engine, params, m, orm)
        tok = sum(lab.tokens for lab in labels)
        md.append(f"| {m} | {agreement([lab.hard for lab in labels], oracle):.3f} | {tok} | "
                  f"{tok / n_steps:.0f} | {time.perf_counter() - t0:.1f} |")
    return md


def split_auc(cfg, engine, fitted: dict, split: str, n_problems: int = 200, k: int = 8):
    """AUCs on the champion's own samples (T=1, k per problem) on a split: the PRM's step
    scores vs the oracle's labels, the ORM's score vs correctness."""
    from reasonloop import workspace
    from reasonloop.eval.metrics import auc
    from reasonloop.policy.engines import SamplingParams
    from reasonloop.reward.prm import learned_verifier
    env = workspace.env_and_problems(cfg)[0]
    problems = workspace.split(cfg, split)[:n_problems]
    outs = engine.sample([p.prompt for p in problems], k,
                         SamplingParams(seed=1, max_new_tokens=cfg.policy.max_new_tokens))
    items = [(p, s.text) for p, row in zip(problems, outs) for s in row]
    verdicts = [env.verify(p, t) for p, t in items]
    c = cfg.model_copy(update={"reward": cfg.reward.model_copy(update={
        "prm_model": fitted.get("prm"), "orm_model": fitted.get("orm")})})
    out = {}
    if "prm" in fitted:
        steps = [(y > 0, s) for v, ss in zip(verdicts, learned_verifier(c, "prm").many(items))
                 for y, s in zip(v.step_rewards, ss)]
        out["prm"] = auc([y for y, _ in steps], [s for _, s in steps])
    if "orm" in fitted:
        out["orm"] = auc([v.correct for v in verdicts], learned_verifier(c, "orm").many(items))
    return out


def fit(cfg, run_id: str, iteration: int, engine) -> tuple[list[str], dict]:
    from reasonloop import workspace
    from reasonloop.stages.fit_verifiers import fit_verifiers
    from reasonloop.workspace import Iteration
    policy = workspace.paths(cfg).policy(run_id, iteration - 1) if iteration > 1 else \
        workspace.paths(cfg).init_policy(run_id)
    stats = fit_verifiers(Iteration(cfg, run_id, iteration), str(policy))
    r = cfg.reward
    md = ["## 2. Learned verifiers (the flywheel's fit-verifiers stage)", "",
          f"Run `{run_id}`, D_search of iterations 1–{iteration} (distinct texts), initialised "
          f"from `{Path(policy).name}`; {r.steps} steps × batch {r.batch_size} (ORM: "
          f"{max(1, r.batch_size // 2)} pairs), lr {r.lr}, ≤ {r.max_examples} examples; one "
          "problem in ten held out.", "",
          "Held-out = D_search texts of the held-out train problems; val / test = the "
          "champion's samples (8 per problem, 200 problems) on val (targets seen in train) "
          "and test (held-out targets). PRM AUCs are step-level against the oracle's labels, "
          "ORM AUCs against correctness.", "",
          "| verifier | labels, loss | train pairs/examples | held-out AUC | val AUC | "
          "test AUC (unseen targets) | fit seconds |", "|---|---|---|---|---|---|---|"]
    fitted = {k: str(workspace.paths(cfg).reward_model(run_id, k, iteration)) for k in stats}
    by_split = {sp: split_auc(cfg, engine, fitted, sp) for sp in ("val", "test")}
    for kind, s in stats.items():
        labels = f"{r.prm_labels}, {r.prm_loss}" if kind == "prm" else "outcome, pairwise"
        md.append(f"| {kind.upper()} | {labels} | {s['n_train']} | {s['auc']:.3f} | "
                  f"{by_split['val'][kind]:.3f} | {by_split['test'][kind]:.3f} | "
                  f"{s['seconds']:.0f} |")
    return md, fitted


NAMES = {"beam": "beam (learned PRM)", "weighted_bon": "weighted_bon (learned PRM)",
         "best_of_n": "best_of_n (learned PRM)", "beam_orm": "beam (learned PRM) + ORM pick"}


def test_time(cfg, engine, fitted: dict, split: str, limit: int, budgets: list[int],
              out: Path) -> list[str]:
    from reasonloop import workspace
    from reasonloop.eval.plots import plot_test_time
    from reasonloop.eval.test_time import results_table
    from reasonloop.stages.evaluate import test_time_search
    problems = workspace.split(cfg, split)[:limit]
    oracle, _ = test_time_search(cfg, engine, problems, ["majority", "beam"], budgets)
    learned_cfg = cfg.model_copy(update={"reward": cfg.reward.model_copy(update={
        "prm": "learned", "prm_model": fitted["prm"], "orm_model": fitted.get("orm")})})
    methods = ["beam", "weighted_bon", "best_of_n"] + (
        ["beam_orm", "orm_bon", "orm_weighted"] if "orm" in fitted else [])
    learned, _ = test_time_search(learned_cfg, engine, problems, methods, budgets)
    for r in oracle:
        r["method"] = {"beam": "beam (oracle PRM)"}.get(r["method"], r["method"])
    for r in learned:
        r["method"] = NAMES.get(r["method"], r["method"])
    results = oracle + learned
    png = f"reward_test_time_{split}.png"
    plot_test_time(results, out / png, title=f"learned vs oracle verifiers: {len(problems)} "
                                             f"{split} problems")
    acc = {(r["method"], r["budget"]): r["accuracy"] for r in results}
    gap = {b: acc["beam (oracle PRM)", b] - acc["beam (learned PRM)", b] for b in budgets}
    return [f"## 3. Test time on {split}: learned vs oracle verifiers", "",
            f"{len(problems)} {split} problems, accuracy (generated tokens per problem). "
            "Beam gap (oracle − learned PRM), points: " +
            ", ".join(f"n={b}: {100 * g:+.1f}" for b, g in gap.items()), "",
            results_table(results), "", f"![]({png})", ""]


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="countdown-direct@champion")
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--config", default=str(ROOT / "configs" / "direct.yaml"))
    ap.add_argument("--run", default=None, help="run whose D_search trains the verifiers")
    ap.add_argument("--iteration", type=int, default=5)
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--ms", default="1,4,16")
    ap.add_argument("--limit", type=int, default=500, help="problems per split")
    ap.add_argument("--splits", default="val,test", help="test-time search on these")
    ap.add_argument("--budgets", default="4,16,64")
    ap.add_argument("--skip-mc", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.markdown import Markdown

    from reasonloop import workspace
    from reasonloop.config import load_config
    from reasonloop.policy.engines import load_engine
    from reasonloop.store import db, registry
    root = Path(args.root).resolve()
    cfg = load_config(args.config, args.set + [f"run.root={root}",
                                               "reward.train=[prm, orm]"])
    registry.setup(Paths(root).mlflow_db, Paths(root).mlartifacts)
    engine = load_engine(cfg.policy.engine, registry.resolve(args.model), seed=0)
    workspace.set_threads(cfg)
    run_id = args.run or db.query(workspace.paths(cfg).db, "SELECT max(run_id) AS r FROM runs "
                                  "WHERE run_id NOT LIKE 'eval-%'")["r"][0]
    md = [f"# Reward design — {args.model} ({shown(root)})", "", header(), ""]
    if not args.skip_mc:
        md += mc_agreement(cfg, engine, args.problems, [int(m) for m in args.ms.split(",")])
        md.append("")
    part, fitted = fit(cfg, run_id, args.iteration, engine)
    md += part + [""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for sp in args.splits.split(","):
        md += test_time(cfg, engine, fitted, sp, args.limit,
                        [int(b) for b in args.budgets.split(",")], out)
    (out / "reward.md").write_text("\n".join(md) + "\n")
    Console().print(Markdown("\n".join(md)))


if __name__ == "__main__":
    main()
