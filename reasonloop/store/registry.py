"""MLflow: tracking (params, metrics, plots) and the model registry with lineage.

Every iteration's policy becomes a model version tagged with where it came from (git sha,
config hash, DVC md5, run, iteration, parent version, phase) and its eval scores; alias
`challenger` on the newest, `champion` on the one that won the promotion gate. Local sqlite
store by default (MLFLOW_TRACKING_URI overrides). A plain HF dir is registered with
`create_model_version`: `register_model` on a plain artifact dir fails (DEVELOPERS.md,
"Library quirks")."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from reasonloop.errors import ReasonloopError

CHAMPION, CHALLENGER = "champion", "challenger"
# The user's own choice, read once: mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into
# os.environ itself, so reading it later would pin every workspace to the first one set up.
USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def setup(mlflow_db: Path, artifacts: Path) -> str:
    uri = USER_TRACKING_URI or f"sqlite:///{Path(mlflow_db).resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.environ.setdefault("MLFLOW_ARTIFACTS_DESTINATION", str(Path(artifacts).resolve()))
    return uri


def experiment(name: str, artifacts: Path) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(name, artifact_location=Path(artifacts).resolve().as_uri())


def _q(value) -> str:
    """A value as a quoted literal of MLflow's search filter, which takes no parameters: a
    quote inside could change the filter, so such a value is refused."""
    value = str(value)
    if "'" in value or "\\" in value:
        raise ReasonloopError(f"a quote or backslash in {value!r}: not allowed in MLflow "
                              "model, run or experiment names")
    return f"'{value}'"


def existing_version(name: str, run_id: str, iteration: int) -> str | None:
    """The version already registered for (run, iteration): a resumed run reuses it."""
    try:
        found = MlflowClient().search_model_versions(
            f"name = {_q(name)} AND tags.run_id = {_q(run_id)} AND "
            f"tags.iteration = {_q(iteration)}")
    except MlflowException:
        return None
    return str(found[0].version) if found else None


def log_iteration(name: str, artifacts: Path, run_name: str, params: dict, metrics: dict,
                  model_dir: Path | None, files: list[Path], tags: dict) -> str | None:
    """One MLflow run per iteration; registers the model and tags it; returns its version.
    Idempotent per (run_id, iteration) tag pair: registering twice returns the first."""
    client = MlflowClient()
    if "run_id" in tags and "iteration" in tags:
        done = existing_version(name, str(tags["run_id"]), int(tags["iteration"]))
        if done is not None:   # a crash may have come between registering and the alias
            ch = version_by_alias(name, CHALLENGER)
            if ch is None or int(ch.version) < int(done):
                client.set_registered_model_alias(name, CHALLENGER, done)
            return done
    exp_id = experiment(name, artifacts)
    _drop_unfinished(exp_id, run_name)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({_clean(k): float(v) for k, v in metrics.items() if v is not None})
        for f in files:
            if Path(f).exists():
                mlflow.log_artifact(str(f))
        if model_dir is None:
            return None
        for f in sorted(Path(model_dir).iterdir()):    # the saved model, never trainer state
            if f.is_file():                            # (optimizer moments: 2× the weights)
                mlflow.log_artifact(str(f), artifact_path="model")
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        mv = client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
            tags={**{k: str(v) for k, v in tags.items()},
                  **{_clean(k): f"{v:.4f}" for k, v in metrics.items() if v is not None}})
    version = str(mv.version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def _drop_unfinished(exp_id: str, run_name: str) -> None:
    """An MLflow run of this name left RUNNING by a killed process holds no model version
    (that is created last); delete it so that the rerun's run is the only one."""
    unfinished = f"tags.mlflow.runName = {_q(run_name)} AND attributes.status != 'FINISHED'"
    for r in mlflow.search_runs([exp_id], filter_string=unfinished, output_format="list"):
        MlflowClient().delete_run(r.info.run_id)


def log_report(name: str, artifacts: Path, run_name: str, metrics: dict, files: list[Path],
               tags: dict) -> str:
    """A report as an MLflow run (metrics + files), one per `run_name`: a rerun updates the
    same MLflow run instead of adding another."""
    exp_id = experiment(name, artifacts)
    found = mlflow.search_runs([exp_id], filter_string=f"tags.mlflow.runName = {_q(run_name)}",
                               output_format="list")
    with mlflow.start_run(run_id=found[0].info.run_id if found else None,
                          experiment_id=exp_id, run_name=None if found else run_name,
                          tags=tags) as run:
        mlflow.log_metrics({_clean(k): float(v) for k, v in metrics.items() if v is not None})
        for f in files:
            mlflow.log_artifact(str(f))
    return run.info.run_id


def _clean(key: str) -> str:
    return key.replace("@", "_at_")


def version_by_alias(name: str, alias: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote(name: str, version: str, alias: str = CHAMPION) -> None:
    try:
        MlflowClient().set_registered_model_alias(name, alias, str(version))
    except MlflowException as e:
        raise ReasonloopError(f"cannot promote {name} v{version}: {e.message}") from None


def get_version(name: str, version: str):
    try:
        return MlflowClient().get_model_version(name, str(version))
    except MlflowException:
        return None


def version_tags(name: str, version: str) -> dict:
    return dict(MlflowClient().get_model_version(name, str(version)).tags)


def tag_version(name: str, version: str, tags: dict) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, str(v))


def version_of(ref: str) -> str | None:
    """The registry version a `NAME@alias` / `NAME/VERSION` ref points at (None for a path)."""
    if Path(ref).exists():
        return None
    try:
        if "@" in ref:
            return str(MlflowClient().get_model_version_by_alias(*ref.split("@", 1)).version)
        return ref.rsplit("/", 1)[1] if "/" in ref else None
    except MlflowException:
        return None


def _model_version(ref: str):
    """`NAME@alias` / `NAME/VERSION` → (name, MLflow ModelVersion); MlflowException if absent."""
    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, client.get_model_version_by_alias(name, alias)
    if "/" in ref:
        name, v = ref.rsplit("/", 1)
        return name, client.get_model_version(name, v)
    raise ReasonloopError(f"model not found: {ref} (use a path, NAME@alias or NAME/VERSION)")


def resolve(ref: str) -> str:
    """`NAME@alias`, `NAME/VERSION` or a path → a local model directory."""
    if Path(ref).exists():
        return str(ref)
    if ref.startswith(("/", ".", "~")):       # a path, not a registry ref: no MLflow call
        raise ReasonloopError(f"model not found: no directory {ref}")
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=_model_version(ref)[1].source)
    except MlflowException as e:
        raise ReasonloopError(f"model not found in the registry: {ref} ({e.message})") from None


def list_versions(name: str | None = None) -> list[dict]:
    client = MlflowClient()
    rows = []
    names = [name] if name else [m.name for m in client.search_registered_models()]
    for n in names:
        aliases: dict[str, list[str]] = {}
        try:
            for a, v in client.get_registered_model(n).aliases.items():
                aliases.setdefault(str(v), []).append(a)
        except MlflowException:
            raise ReasonloopError(f"no registered model named {n!r}") from None
        for mv in client.search_model_versions(f"name={_q(n)}"):
            rows.append({"name": n, "version": str(mv.version),
                         "aliases": ",".join(aliases.get(str(mv.version), [])),
                         "iteration": mv.tags.get("iteration", ""),
                         "phase": mv.tags.get("phase", ""),
                         "val_pass@1": mv.tags.get("val_pass_at_1", ""),
                         "test_pass@1": mv.tags.get("test_pass_at_1", ""),
                         "data_md5": mv.tags.get("data_md5", "")[:10],
                         "run_id": mv.tags.get("run_id", "")})
    return sorted(rows, key=lambda r: (r["name"], int(r["version"])))


LINEAGE = ["run_id", "iteration", "phase", "git_sha", "config_hash", "data_md5",
           "parent_version", "champion_before", "promotion", "promotion_p", "promoted_by",
           "promote_reason", "processor", "capability", "train_dtype", "sample_dtype",
           "train_threads", "search_threads"]


def lineage(ref: str) -> dict:
    """Where a version came from and how it scored: `NAME@alias` or `NAME/VERSION`."""
    try:
        name, mv = _model_version(ref)
        aliases = MlflowClient().get_registered_model(name).aliases
    except MlflowException as e:
        raise ReasonloopError(f"model not found in the registry: {ref} "
                              f"({e.message.splitlines()[0]})") from None
    tags = dict(mv.tags)
    return {"model": name, "version": str(mv.version),
            "aliases": sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
            **{k: tags.get(k, "") for k in LINEAGE}, "mlflow_run": mv.run_id,
            "source": mv.source,
            "scores": {k.replace("_at_", "@"): float(v) for k, v in sorted(tags.items())
                       if k.startswith(("val_", "test_")) and _is_number(v)}}


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def versions(name: str) -> list:
    """[(version, its aliases)] of a registered model ([] if there is no such model)."""
    client = MlflowClient()
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for a, v in aliases.items():
        by_version.setdefault(str(v), []).append(a)
    return [(mv, by_version.get(str(mv.version), []))
            for mv in client.search_model_versions(f"name = {_q(name)}")]


def iteration_runs(name: str) -> list[dict]:
    """The experiment's iteration runs (`<run_id>/iterNN`, live or deleted-not-purged), with
    the versions registered from each: what retention may prune."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return []
    rows = []
    for r in mlflow.search_runs([exp.experiment_id], run_view_type=ViewType.ALL,
                                output_format="list"):
        tags = r.data.tags
        if "run_id" in tags and "iteration" in tags and \
                tags.get("mlflow.runName") == f"{tags['run_id']}/iter{int(tags['iteration']):02d}":
            rows.append({"mlflow_run": r.info.run_id, "run_id": tags["run_id"],
                         "iteration": int(tags["iteration"]),
                         "deleted": r.info.lifecycle_stage == "deleted",
                         "artifacts": r.info.artifact_uri})
    return rows


def prune_run(name: str, mlflow_run: str) -> list[str]:
    """Delete the versions registered from an iteration run, then the run (soft: `purge`
    removes it and its artifacts for good). → the deleted versions."""
    client = MlflowClient()
    gone = []
    for mv in client.search_model_versions(f"name = {_q(name)} AND run_id = {_q(mlflow_run)}"):
        client.delete_model_version(name, mv.version)
        gone.append(str(mv.version))
    client.delete_run(mlflow_run)
    return gone


def purge(run_ids: list[str]) -> None:
    """Delete these (soft-deleted) runs for good, metadata and artifacts, the way `mlflow gc`
    does it: the run's artifact repository deletes its files, the tracking store the run.
    Called directly, because importing `mlflow.cli` costs a fresh process 1–2 s a turn; a
    store without a hard delete falls back to `mlflow gc` itself."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import _get_store
    if not run_ids:
        return
    store = _get_store()
    if not hasattr(store, "_hard_delete_run"):
        from mlflow.cli import gc as mlflow_gc
        uri = mlflow.get_tracking_uri()
        mlflow_gc.main(["--backend-store-uri", uri, "--run-ids", ",".join(run_ids)],
                       standalone_mode=False)
        return
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
        except MlflowException:
            continue                    # purged by an earlier pass
        if run.info.lifecycle_stage != "deleted":
            raise ReasonloopError(f"MLflow run {run_id} is not deleted: not purging it")
        get_artifact_repository(run.info.artifact_uri).delete_artifacts()
        store._hard_delete_run(run_id)
        local = Path(run.info.artifact_uri.removeprefix("file://")).parent
        if local.is_dir() and not any(local.iterdir()):
            local.rmdir()                      # the run's own, now empty, folder
