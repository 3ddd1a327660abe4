"""Retention: what a workspace may delete after many turns, and deleting it safely.

Kept, always: every run's last `keep_last` finished iterations, the iterations of every
version holding an alias (champion, challenger, or any alias a user set), initial policies,
each run's latest learned verifiers, the data files later stages still read (D_expert within
`learn.replay_iterations`, or all of it for ReST-EM; all D_search when verifiers are
refitted), anything of an iteration that has not finished, and every row of DuckDB (the
lineage). Pruned, for the other iterations: the policy checkpoint (trainer checkpoints
inside it), superseded learned verifiers, local data files, and the MLflow run with its
registered version and artifacts — then `dvc gc` drops cache and remote objects that no
kept version's data (nor the workspace's data.dvc) names. Every kept version stays
restorable with `reasonloop models restore`.

Safe against SIGKILL anywhere: each pass plans from what is on disk and in the stores now;
a deletion is written to the `retention` table before it happens; a directory is moved
whole into a trash folder before it is removed, and the next pass empties the trash first;
the .dvc files naming kept data are written before `dvc gc` runs."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reasonloop import faults, runlock
from reasonloop.config import Config
from reasonloop.paths import Paths
from reasonloop.store import data, db, registry, turns


@dataclass(frozen=True)
class Item:
    kind: str          # policy | verifier | data | mlflow
    run_id: str
    iteration: int
    target: str        # a path under the workspace, or an MLflow run id
    bytes: int


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    kept: dict[str, list[int]] = field(default_factory=dict)    # run → kept iterations
    keep_md5: set[str] = field(default_factory=set)             # data versions kept
    names: set[str] = field(default_factory=set)                # registered model names
    dvc: dict[str, int] = field(default_factory=dict)           # what dvc gc would free


def size(path: Path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def _runs(P: Paths) -> dict[str, tuple[Config, list[int]]]:
    """{run_id: (its config, its finished iterations ≥ 1)}."""
    df = db.query(P.db, """SELECT r.run_id, r.config_json, list(i.iteration ORDER BY i.iteration)
                             FILTER (WHERE i.finished_at IS NOT NULL AND i.iteration > 0) AS done
                           FROM runs r LEFT JOIN iterations i USING (run_id) GROUP BY ALL""")
    return {r: (Config.model_validate_json(c), list(d or [])) for r, c, d in df.rows()}


def _aliased(names: set[str]) -> tuple[set[tuple[str, int]], dict]:
    """(run, iteration) of every version with an alias; {(run, iteration): data md5} of every
    registered version."""
    aliased, md5 = set(), {}
    for name in names:
        for v, aliases in registry.versions(name):
            key = (v.tags.get("run_id", ""), int(v.tags.get("iteration", -1)))
            md5[key] = v.tags.get("data_md5", "")
            if aliases:
                aliased.add(key)
    return aliased, md5


def _data_items(cfg: Config, P: Paths, run_id: str, i: int, last: int) -> list[Path]:
    """The local data files of iteration i that no later stage reads."""
    d = P.run_data(run_id, i)
    files = [d / "shards", P.d_pairs(run_id, i)]
    if not cfg.reward.train:        # verifiers refit on every D_search so far
        files.append(P.d_search(run_id, i))
    if cfg.learn.init_from != "base" and i < last + 1 - cfg.learn.replay_iterations:
        files.append(P.d_expert(run_id, i))
    return [f for f in files if f.exists()]


def plan(root: Path, keep_last: int) -> Plan:
    P, out = Paths(Path(root).resolve()), Plan()
    if not P.db.exists():
        return out
    runs = _runs(P)
    names = out.names = {cfg.run.name for cfg, _ in runs.values()}
    has_registry = P.mlflow_db.exists() or registry.USER_TRACKING_URI is not None
    if has_registry:
        registry.setup(P.mlflow_db, P.mlartifacts)
    aliased, md5 = _aliased(names) if has_registry else (set(), {})
    pruned_its = set()
    for run_id, (cfg, done) in runs.items():
        kept = set(done[-keep_last:]) | {i for r, i in aliased if r == run_id}
        out.kept[run_id] = sorted(kept)
        last = done[-1] if done else 0
        latest_fit = {kind: max((i for i in done if P.reward_model(run_id, kind, i).exists()),
                                default=None) for kind in ("prm", "orm")}
        for i in done:
            if i in kept:
                continue
            pruned_its.add((run_id, i))
            found = [("policy", P.policy(run_id, i))]
            found += [("verifier", P.reward_model(run_id, k, i)) for k in ("prm", "orm")
                      if latest_fit[k] != i]
            found += [("data", f) for f in _data_items(cfg, P, run_id, i, last)]
            out.items += [Item(kind, run_id, i, str(path.relative_to(P.root)), size(path))
                          for kind, path in found if path.exists()]
    for name in names if has_registry else ():
        for r in registry.iteration_runs(name):
            if (r["run_id"], r["iteration"]) in pruned_its:
                art = Path(r["artifacts"].removeprefix("file://"))
                out.items.append(Item("mlflow", r["run_id"], r["iteration"], r["mlflow_run"],
                                      size(art) if art.exists() else 0))
    out.keep_md5 = {m for k, m in md5.items() if m and k not in pruned_its}
    out.dvc = data.unused_bytes(P.root, P.dvc_remote, out.keep_md5)
    return out


class _Laps:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self._t = now - self._t, now


def _dvc_sizes(P: Paths) -> dict[str, int]:
    return {"dvc cache": size(P.root / ".dvc" / "cache"), "dvc remote": size(P.dvc_remote)}


def _empty_trash(P: Paths) -> None:
    shutil.rmtree(P.trash, ignore_errors=True)


def collect(root: Path, keep_last: int, dry_run: bool = False,
            progress=lambda msg: None) -> dict:
    """One retention pass (`reasonloop gc`, or the end of a turn). Refused while a run holds
    the workspace. → {planned, freed bytes by kind, kept, dry_run}."""
    P = Paths(Path(root).resolve())
    with runlock.held(P.root, exclusive=True):
        if not dry_run:
            _empty_trash(P)            # what a killed pass had moved there
        lap = _Laps()
        p = plan(P.root, keep_last)
        lap("plan")
        freed: dict[str, int] = {}
        for it in p.items:
            freed[it.kind] = freed.get(it.kind, 0) + it.bytes
        report = {"items": [asdict(i) for i in p.items], "kept": p.kept,
                  "keep_md5": sorted(p.keep_md5), "dry_run": dry_run,
                  "freed": {**freed, **p.dvc}, "seconds": lap.seconds}
        if dry_run:
            return report
        turns.record_deleted(P.db, [asdict(i) for i in p.items])
        faults.point("gc-recorded", 0)
        mlruns = [i for i in p.items if i.kind == "mlflow"]
        progress(f"MLflow: pruning {len(mlruns)} iteration run(s)")
        for k, it in enumerate(mlruns):
            for name in p.names:
                registry.prune_run(name, it.target)
            faults.point("gc-mlflow", k)
        registry.purge([i.target for i in mlruns])
        lap("mlflow")
        files = [i for i in p.items if i.kind != "mlflow"]
        progress(f"files: removing {len(files)} checkpoint(s) and data file(s)")
        P.trash.mkdir(exist_ok=True)
        for k, it in enumerate(files):
            os.replace(P.root / it.target, P.trash / uuid.uuid4().hex)
            faults.point("gc-files", k)
        _empty_trash(P)
        for run_id in p.kept:     # iteration folders left empty
            for d in sorted((P.data / run_id).glob("iter*")):
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        lap("files")
        progress("DVC: dropping cache and remote objects no kept version names")
        data.keep_versions(P.root, P.dvc_keep, p.keep_md5)
        faults.point("gc-dvc", 0)
        before = _dvc_sizes(P)
        if (P.root / ".dvc").is_dir():
            data.gc(P.root)
        after = _dvc_sizes(P)
        dvc_rows = [{"run_id": None, "iteration": None, "kind": k,
                     "target": f"dvc gc {uuid.uuid4().hex[:8]}", "bytes": before[k] - after[k]}
                    for k in before if before[k] > after[k]]
        turns.record_deleted(P.db, dvc_rows)
        report["freed"].update({k: before[k] - after[k] for k in before})
        lap("dvc")
        return report
