"""The flywheel: policy init, then N × (search → verify → filter → learn → evaluate).

This file is the table of contents (o1 roadmap, arXiv 2412.14135). Every step is one
Prefect task over functions in `reasonloop/`; each is cached per (run, iteration, stage) and
idempotent, so rerunning a crashed run resumes where it stopped.
"""

from __future__ import annotations

from prefect import flow, unmapped

from reasonloop import stages, stopping
from reasonloop.config import Config
from reasonloop.learn.schedule import phase as next_phase
from reasonloop.policy.engines import close_engines
from reasonloop.store import db
from tasks.evaluate import champion, evaluate, register, report
from tasks.filter import filter_expert
from tasks.generate import generate_shard
from tasks.runner import prefect_api, task_runner
from tasks.setup import start_run
from tasks.train import init, train
from tasks.verify import fit_verifiers, verify


@flow(name="flywheel")
def flywheel(cfg: Config, run_id: str, from_champion: int | None = None) -> list[dict]:
    stopping.reclaim()          # Ctrl-C / SIGTERM stop the run within seconds
    start_run(cfg, run_id)

    # Step 0 — policy initialization: a tiny Llama BC'd on legal plays (or a given model).
    base = policy = init(cfg, run_id)
    metrics = evaluate(cfg, run_id, 0, base)
    register(cfg, run_id, 0, base, metrics, "init", None)
    history = [{"iteration": 0, "phase": "init", **metrics}]

    for it in range(1, cfg.run.iterations + 1):
        # The learner of this iteration: BC → DPO → GRPO, switched when a phase plateaus.
        phase, lap = next_phase(cfg.learn, history, it), stages.Laps(cfg, run_id, it)
        if it == from_champion:   # a scheduled turn goes on from the best model so far
            policy = champion(cfg) or policy
        search, verifiers, expert = {}, {}, {}
        if phase != "grpo":     # GRPO searches online, inside its trainer (Step 4)
            # Step 1 — search: training-time search with the current policy → D_search.
            shards = generate_shard.map(unmapped(cfg), unmapped(run_id), unmapped(it),
                                        unmapped(policy), range(cfg.search.shards)).result()
            lap("generate")
            # Step 2 — verify: ORM outcome reward + PRM step rewards, every trajectory
            # stored; then fit the learned PRM/ORM on D_search (when reward.train asks).
            search = verify(cfg, run_id, it, shards, policy)
            lap("verify")
            verifiers = fit_verifiers(cfg, run_id, it, policy)
            lap("fit-verifiers")
            # Step 3 — filter: D_expert = correct, deduped, capped per problem (+hindsight);
            # DPO pairs (correct vs wrong; shared prefix parting at the first bad step).
            expert = filter_expert(cfg, run_id, it)
            lap("filter")
        # Step 4 — learn: BC on D_expert (from the previous policy, or from the base: ReST-EM),
        # DPO on the pairs or GRPO online on the train split (from the previous policy).
        start = base if cfg.learn.init_from == "base" and phase == "bc" else policy
        learned = train(cfg, run_id, it, start, phase)
        policy = learned["path"]
        lap("train")
        # Step 5 — evaluate, register as challenger, promote to champion if better on val.
        metrics = evaluate(cfg, run_id, it, policy)
        reg = register(cfg, run_id, it, policy, metrics, phase,
                       expert.get("data_md5") or learned.get("data_md5"))
        lap("evaluate")

        seconds = db.finish_iteration(stages.paths(cfg).db, run_id, it, {
            **lap.seconds, "compute": stages.compute_seconds(run_id, it)})
        history.append({"iteration": it, "phase": phase, **metrics, **search, **expert,
                        **{f"{k}_auc": v["auc"] for k, v in verifiers.items() if "auc" in v},
                        "version": reg["version"], "promoted": reg["promoted"],
                        "seconds": seconds})
        print(f"iteration {it} ({phase}): test pass@1 {metrics['test_pass@1']:.3f}  "
              f"val {metrics['val_pass@1']:.3f}  |D_search| "
              f"{search.get('n_search', learned.get('n_sampled', 0))}  "
              f"|D_expert| {expert.get('n_expert', 0)}  {seconds['total']:.0f}s")
    # The report: train- and test-time scaling, distributions, D_search/D_expert, promotions.
    report(cfg, run_id)
    close_engines()          # a vLLM engine kept between stages ends with the run
    return history


def run(cfg: Config, run_id: str, from_champion: int | None = None) -> list[dict]:
    """The flywheel on a Prefect API that answers, with its shards on the task runner the
    config names (threads, Ray, Dask): paths are made absolute, since a worker process need
    not share our working directory."""
    root = cfg.run.model_copy(update={"root": cfg.run.root.resolve()})
    with prefect_api(cfg.serve.start_timeout_s):
        return flywheel.with_options(task_runner=task_runner(cfg.run))(
            cfg.model_copy(update={"run": root}), run_id, from_champion)
