"""Isolation for every test: Prefect, DVC and MLflow state under a per-session temp dir;
nothing touches the user's home or the repo's own workspace."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION = Path(tempfile.mkdtemp(prefix="reasonloop-tests-"))
os.environ.update({
    "PREFECT_HOME": str(_SESSION / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DVC_NO_ANALYTICS": "1",
    "DVC_SITE_CACHE_DIR": str(_SESSION / "dvc-site"),
    "DVC_GLOBAL_CONFIG_DIR": str(_SESSION / "dvc-global"),
    "DVC_SYSTEM_CONFIG_DIR": str(_SESSION / "dvc-system"),
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
})
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("REASONLOOP_HOME", None)

ROOT = Path(__file__).resolve().parents[1]


def _clean_env() -> dict:
    """The environment for CLI subprocesses: without the MLFLOW_TRACKING_URI that mlflow
    writes into this process's environ when an earlier test set up a workspace."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
sys.path.insert(0, str(ROOT))
SMOKE = ROOT / "configs" / "smoke.yaml"


@pytest.fixture
def workspace(tmp_path):
    return tmp_path / "ws"


@pytest.fixture
def smoke_cfg(workspace):
    from reasonloop.config import load_config
    return load_config(SMOKE, [f"run.root={workspace}"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny char-level Llama, briefly BC'd on legal Countdown plays, saved in HF format."""
    import torch

    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    torch.set_num_threads(1)
    cfg = load_config(SMOKE)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 32, 2, 2, seed=0)
    out = tmp_path_factory.mktemp("tiny") / "policy"
    ex = Countdown(cfg.env).warmup_examples(256, seed=0)
    train_sft(model, tok, ex, out, steps=8, batch_size=32, lr=3e-3, bf16=False, seed=0)
    save_policy(model, tok, out, {"stage": "test"})
    return out


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory):
    """A tiny Llama vLLM's CPU attention accepts (head_dim 32; it rejects 16), BC'd briefly."""
    import torch

    from reasonloop.config import load_config
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 64, 2, 2, seed=0)
    out = tmp_path_factory.mktemp("tiny-vllm") / "policy"
    ex = Countdown(load_config(SMOKE).env).warmup_examples(256, seed=0)
    train_sft(model, tok, ex, out, steps=8, batch_size=32, lr=3e-3, bf16=False, seed=0)
    save_policy(model, tok, out, {"stage": "test"})
    return out


@pytest.fixture(scope="session")
def bpe_model(tmp_path_factory):
    """The ~10M Llama with a byte-level BPE tokenizer, warmed up on word problems whose
    solutions are blank-line-separated steps (the real path's model, built here)."""
    from reasonloop.policy.bpe import build
    return build(tmp_path_factory.mktemp("bpe") / "model", n_problems=1000, warmup_steps=30)
