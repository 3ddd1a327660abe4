"""The flywheel: policy init, then N × (search → verify → filter → learn → evaluate).

This file is the table of contents (o1 roadmap, arXiv 2412.14135). Every step is one
Prefect task over a stage in `reasonloop/stages/`; each is cached per (run, iteration, stage)
and idempotent, so rerunning a crashed run resumes where it stopped.
"""

from __future__ import annotations

from prefect import flow, unmapped

from reasonloop import runlock, stopping
from reasonloop.compute import imports_frozen
from reasonloop.config import Config
from reasonloop.learn.schedule import phase as next_phase
from reasonloop.policy.engines import close_engines
from reasonloop.stages.progress import Laps, init_row
from reasonloop.workspace import Iteration
from tasks.runner import prefect_api, task_runner
from tasks.stages import (
    champion,
    earlier_iterations,
    evaluate,
    filter_expert,
    fit_verifiers,
    generate_shard,
    init_policy,
    register,
    report,
    start_run,
    train,
    verify_search,
)


@flow(name="flywheel")
def flywheel(cfg: Config, run_id: str, from_champion: int | None = None) -> list[dict]:
    stopping.reclaim()          # Ctrl-C / SIGTERM stop the run within seconds
    start_run(cfg, run_id)

    # Step 0 — policy initialization: a tiny Llama BC'd on legal plays (or a given model).
    base = policy = init_policy(cfg, run_id)
    if from_champion is None:
        ev = evaluate(Iteration(cfg, run_id, 0), base)
        register(Iteration(cfg, run_id, 0), base, ev, "init", None)
        history = [init_row(ev)]
    else:   # a scheduled turn reads the iterations before it from the stores: no replay
        history, policy = earlier_iterations(cfg, run_id, from_champion)

    for i in range(from_champion or 1, cfg.run.iterations + 1):
        it = Iteration(cfg, run_id, i)
        # The learner of this iteration: BC → DPO → GRPO, switched when a phase plateaus.
        phase, lap = next_phase(cfg.learn, history, i), Laps(it)
        if i == from_champion:    # a scheduled turn goes on from the best model so far
            policy = champion(cfg) or policy
        search, verifiers, expert = None, {}, None
        if phase != "grpo":     # GRPO searches online, inside its trainer (Step 4)
            # Step 1 — search: training-time search with the current policy → D_search.
            shards = generate_shard.map(unmapped(it), unmapped(policy),
                                        range(cfg.search.shards)).result()
            lap("generate", shards)
            # Step 2 — verify: ORM outcome reward + PRM step rewards, every trajectory
            # stored; then fit the learned PRM/ORM on D_search (when reward.train asks).
            search = verify_search(it, [s.path for s in shards], policy)
            lap("verify", search)
            verifiers = fit_verifiers(it, policy)
            lap("fit-verifiers", verifiers)
            # Step 3 — filter: D_expert = correct, deduped, capped per problem (+hindsight);
            # DPO pairs (correct vs wrong; shared prefix parting at the first bad step).
            expert = filter_expert(it)
            lap("filter", expert)
        # Step 4 — learn: BC on D_expert (from the previous policy, or from the base: ReST-EM),
        # DPO on the pairs or GRPO online on the train split (from the previous policy).
        start = base if cfg.learn.init_from == "base" and phase == "bc" else policy
        learned = train(it, start, phase)
        policy = learned["path"]
        lap("train", learned)
        # Step 5 — evaluate, register as challenger, promote to champion if better on val.
        ev = evaluate(it, policy)
        md5 = expert.data_md5 if expert else learned.get("data_md5")   # GRPO versions its own
        reg = register(it, policy, ev, phase, md5)
        lap("evaluate", ev)
        history.append(lap.finish(phase, ev, reg, search, expert, verifiers, learned))
    # The report: train- and test-time scaling, distributions, D_search/D_expert, promotions.
    report(cfg, run_id)
    close_engines()          # a vLLM engine kept between stages ends with the run
    return history


def run(cfg: Config, run_id: str, from_champion: int | None = None) -> list[dict]:
    """The flywheel on a Prefect API that answers, with its shards on the task runner the
    config names (threads, Ray, Dask): paths are made absolute, since a worker process need
    not share our working directory. The workspace lock keeps `reasonloop gc` out meanwhile."""
    root = cfg.run.model_copy(update={"root": cfg.run.root.resolve()})
    with runlock.held(root.root), prefect_api(cfg.serve.start_timeout_s), imports_frozen():
        return flywheel.with_options(task_runner=task_runner(cfg.run))(
            cfg.model_copy(update={"run": root}), run_id, from_champion)
