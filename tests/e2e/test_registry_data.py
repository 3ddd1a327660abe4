"""MLflow registry with lineage, and DVC snapshots — the real libraries, in a temp dir."""

import polars as pl
import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.store import data, registry


def test_register_tags_alias_promote_resolve(tmp_path, tiny_model_dir):
    registry.setup(tmp_path / "mlflow.db", tmp_path / "mlartifacts")
    tags = {"run_id": "r1", "iteration": 1, "git_sha": "abc", "config_hash": "h",
            "data_md5": "m"}
    v1 = registry.log_iteration("cd", tmp_path / "mlartifacts", "r1/iter01", {"a": 1},
                                {"val_pass@1": 0.2}, tiny_model_dir, [], tags)
    v2 = registry.log_iteration("cd", tmp_path / "mlartifacts", "r1/iter02", {"a": 1},
                                {"val_pass@1": 0.3}, tiny_model_dir, [], {**tags, "iteration": 2})
    assert (v1, v2) == ("1", "2")
    again = registry.log_iteration("cd", tmp_path / "mlartifacts", "r1/iter02", {"a": 1},
                                   {"val_pass@1": 0.3}, tiny_model_dir, [],
                                   {**tags, "iteration": 2})
    assert again == "2" and len(registry.list_versions("cd")) == 2   # resume: no duplicate
    ch = registry.version_by_alias("cd", registry.CHALLENGER)
    assert str(ch.version) == "2" and ch.tags["iteration"] == "2" and ch.tags["data_md5"] == "m"
    assert ch.tags["val_pass_at_1"] == "0.3000"
    registry.promote("cd", v1)
    assert str(registry.version_by_alias("cd", registry.CHAMPION).version) == "1"
    local = registry.resolve("cd@champion")
    assert (pytest.importorskip("pathlib").Path(local) / "config.json").exists()
    rows = registry.list_versions("cd")
    assert [r["aliases"] for r in rows] == ["champion", "challenger"]
    with pytest.raises(ReasonloopError):
        registry.promote("cd", "99")
    with pytest.raises(ReasonloopError):
        registry.resolve("nope@champion")


def test_a_registered_version_holds_the_model_not_trainer_state(tmp_path, tiny_model_dir):
    """A policy dir a crash left checkpoints in (optimizer moments: 2x the weights) is
    registered with its model files only."""
    import shutil
    from pathlib import Path
    model = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, model)
    (model / "_trainer" / "checkpoint-50").mkdir(parents=True)
    (model / "_trainer" / "checkpoint-50" / "optimizer.pt").write_bytes(b"x" * 1000)
    registry.setup(tmp_path / "mlflow.db", tmp_path / "mlartifacts")
    v = registry.log_iteration("cd", tmp_path / "mlartifacts", "r1/iter01", {}, {}, model, [],
                               {"run_id": "r1", "iteration": 1})
    got = Path(registry.resolve(f"cd/{v}"))
    assert sorted(f.name for f in got.iterdir()) == sorted(
        f.name for f in Path(tiny_model_dir).iterdir() if f.is_file())
    assert (got / "model.safetensors").read_bytes() == \
        (Path(tiny_model_dir) / "model.safetensors").read_bytes()


def test_dvc_snapshot_tracks_changes_and_pushes(tmp_path):
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    data.ensure_remote(root, root / ".dvc-storage")
    pl.DataFrame({"a": [1, 2]}).write_parquet(root / "data" / "x.parquet")
    md5a = data.snapshot(root, root / "data")
    assert md5a.endswith(".dir") and (root / "data.dvc").exists()
    assert any((root / ".dvc-storage").rglob("*")), "push wrote nothing to the remote"
    pl.DataFrame({"a": [1, 2, 3]}).write_parquet(root / "data" / "y.parquet")
    md5b = data.snapshot(root, root / "data")
    assert md5b != md5a and data.data_md5(root / "data.dvc") == md5b
    assert "url = ../.dvc-storage" in (root / ".dvc" / "config").read_text()
