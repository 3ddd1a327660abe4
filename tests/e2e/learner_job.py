"""A short BC or DPO run in its own process, for the checkpoint-resume tests:
`python tests/e2e/learner_job.py sft|dpo MODEL_DIR OUT_DIR` → OUT_DIR/final.pt (the weights)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reasonloop.config import EnvConfig, LearnConfig  # noqa: E402
from reasonloop.envs.countdown import Countdown  # noqa: E402
from reasonloop.learn.dpo import train_dpo  # noqa: E402
from reasonloop.learn.sft import train_sft  # noqa: E402
from reasonloop.policy.init import load_policy  # noqa: E402


def main(kind: str, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    model, tok = load_policy(model_dir)
    out = Path(out)
    if kind == "sft":
        ex = Countdown(EnvConfig()).warmup_examples(64, seed=1)
        train_sft(model, tok, ex, out, steps=8, batch_size=8, lr=1e-3, bf16=False, seed=0,
                  save_every=3)
    else:
        pairs = [{"prompt": f"{i}>", "chosen": f"{i}+1\n", "rejected": f"{i}*2\n"}
                 for i in range(40)]
        dcfg = LearnConfig(dpo={"steps": 8, "batch_size": 4, "lr": 1e-3}).dpo
        train_dpo(model, tok, pairs, out, dcfg=dcfg, bf16=False, seed=0, save_every=3)
    torch.save(dict(model.state_dict()), out / "final.pt")


if __name__ == "__main__":
    main(*sys.argv[1:4])
