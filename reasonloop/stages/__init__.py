"""The stages of the flywheel as plain functions, one module each (Prefect-free).

    start          DuckDB schema + problems, run row, DVC remote, MLflow store
    init           policy initialization (once per run)
    generate       Step 1  search → raw samples, one shard at a time
    verify         Step 2  ORM + PRM rewards → DuckDB trajectories, D_search
    fit_verifiers  Step 2b learned PRM/ORM fitted on D_search (`reward.train`)
    filter         Step 3  D_search → D_expert (+ DPO pairs), versioned by DVC
    train          Step 4  BC / DPO / GRPO with TRL (launch: the same under accelerate)
    evaluate       Step 5  pass@1, pass@k, maj@k, test-time search
    register       Step 5b MLflow version, promotion gate, run report
    search_eval    test-time search on a registered model, outside a run (`reasonloop eval`)
    progress       where an iteration stands (stage_done) and what its stages took

Every stage of an iteration takes a `workspace.Iteration` (run-level ones: the config and
the run id), reads its inputs from the workspace (DuckDB, Parquet, model dirs), writes its
outputs there, returns what it did with the seconds of real work it took, and is
idempotent: run it twice and the second run adds nothing. That, plus
Prefect's per-(run, iteration, stage) cache in `tasks/`, is what makes a crashed run resume.
"""
