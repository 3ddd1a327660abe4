"""Every artifact path and table name, defined once: no other module spells a file name of
the workspace (DEVELOPERS.md, "Conventions").

All paths hang off one workspace root (`run.root`: the current directory by default,
`REASONLOOP_HOME` or `--root` to move it), so tests run in a temp dir with the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# DuckDB table and view names — SQL is a user interface, keep them plain.
RUNS, ITERATIONS, PROBLEMS, TRAJECTORIES, EVALS, REWARD_MODELS, PROMOTIONS = (
    "runs", "iterations", "problems", "trajectories", "evals", "reward_models", "promotions")


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def identity(self) -> Path:   # this workspace's random id (tasks/common.py cache keys)
        return self.root / ".reasonloop-id"

    @property
    def lock(self) -> Path:      # held by runs (shared) and gc (exclusive): reasonloop/runlock
        return self.root / ".reasonloop.lock"

    @property
    def trash(self) -> Path:     # what gc is deleting: moved here whole, then removed
        return self.root / ".reasonloop-trash"

    @property
    def dvc_keep(self) -> Path:  # a .dvc file per kept data version, so `dvc gc` keeps it
        return self.root / ".reasonloop-keep"

    @property
    def db(self) -> Path:
        return self.root / "reasonloop.duckdb"

    @property
    def data(self) -> Path:  # tracked by DVC as a whole (→ data.dvc)
        return self.root / "data"

    @property
    def dvc_remote(self) -> Path:
        return self.root / ".dvc-storage"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlartifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def run_data(self, run_id: str, iteration: int) -> Path:
        return self.data / run_id / f"iter{iteration:02d}"

    def shard(self, run_id: str, iteration: int, shard: int) -> Path:
        """One generate shard's raw samples (before verify)."""
        return self.run_data(run_id, iteration) / "shards" / f"search-{shard:03d}.parquet"

    def d_search(self, run_id: str, iteration: int) -> Path:
        return self.run_data(run_id, iteration) / "d_search.parquet"

    def d_expert(self, run_id: str, iteration: int) -> Path:
        return self.run_data(run_id, iteration) / "d_expert.parquet"

    def d_pairs(self, run_id: str, iteration: int) -> Path:
        """DPO preference pairs built from this iteration's D_search."""
        return self.run_data(run_id, iteration) / "d_pairs.parquet"

    def init_policy(self, run_id: str) -> Path:
        return self.models / run_id / "init"

    def policy(self, run_id: str, iteration: int) -> Path:
        return self.models / run_id / f"iter{iteration:02d}"

    def reward_model(self, run_id: str, kind: str, iteration: int) -> Path:
        """A learned verifier (kind `prm` or `orm`) fitted at `iteration` of a run."""
        return self.models / run_id / f"{kind}-iter{iteration:02d}"

    def run_reports(self, run_id: str) -> Path:
        return self.reports / run_id


def shown(path: Path | str, base: Path | None = None) -> str:
    """A path as written into results and reports: relative to `base` (the current directory)
    when inside it, else its last part — never the absolute path of the machine it ran on."""
    p, base = Path(path).resolve(), (base or Path.cwd()).resolve()
    return str(p.relative_to(base)) if p.is_relative_to(base) else p.name
