"""Prefect cache keys: one per workspace, config, run, iteration and stage — and a workspace
deleted and made again at the same path is a new workspace (its results are gone)."""
import shutil
from concurrent.futures import ThreadPoolExecutor

from reasonloop.config import load_config
from tasks.common import stage_key
from tests.conftest import SMOKE


def test_a_workspace_made_again_at_its_path_gets_new_keys(tmp_path):
    cfg = load_config(SMOKE, [f"run.root={tmp_path / 'ws'}"])
    key = stage_key("start-run")
    first = key(None, {"cfg": cfg, "run_id": "r"})
    assert key(None, {"cfg": cfg, "run_id": "r"}) == first          # stable while it lives
    assert key(None, {"cfg": cfg, "run_id": "other"}) != first
    shutil.rmtree(tmp_path / "ws")
    assert key(None, {"cfg": cfg, "run_id": "r"}) != first          # not a cache hit


def test_shards_keying_at_once_agree_on_one_workspace_id(tmp_path):
    cfg = load_config(SMOKE, [f"run.root={tmp_path / 'fresh'}"])
    key = stage_key("start-run")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: key(None, {"cfg": cfg, "run_id": "r"}), range(32)))
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == [".reasonloop-id"]
