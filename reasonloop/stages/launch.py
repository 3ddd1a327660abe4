"""Multi-GPU training: the train stage under `accelerate launch` (`learn.launcher: accelerate`).

The flow's train task writes the stage's arguments to a job file and starts
`accelerate launch --config_file <learn.accelerate_config> -m reasonloop.stages.train JOB`.
Every rank runs the same TRL trainer (DDP, or FSDP/DeepSpeed as that file says; gloo DDP on
CPUs), the config's batch size split over the ranks; rank 0 alone saves the policy and writes
the stores. The task then reads the saved policy's stats, as after an in-process stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reasonloop.errors import ReasonloopError

LAUNCHED = "REASONLOOP_LAUNCHED"     # set for the ranks: they train, they do not launch again


def inside() -> bool:
    return os.environ.get(LAUNCHED) == "1"


def is_main() -> bool:
    """Rank 0 (or no launcher at all): the one process that saves and writes."""
    return int(os.environ.get("RANK", "0")) == 0


def launch(cfg, run_id: str, iteration: int, start_from: str, phase: str, out: Path) -> dict:
    """Run the train stage on `accelerate launch`; its stats, read from the saved policy."""
    if not cfg.learn.accelerate_config.is_file():
        raise ReasonloopError(f"learn.accelerate_config not found: {cfg.learn.accelerate_config}")
    out.parent.mkdir(parents=True, exist_ok=True)
    job = out.parent / f"{out.name}.launch.json"
    job.write_text(json.dumps({"config": cfg.model_dump(mode="json"), "run_id": run_id,
                               "iteration": iteration, "start_from": str(start_from),
                               "phase": phase}))
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch",
           "--config_file", str(cfg.learn.accelerate_config)]
    if cfg.learn.num_processes:
        cmd += ["--num_processes", str(cfg.learn.num_processes)]
    cmd += ["-m", "reasonloop.stages.train", str(job)]
    done = subprocess.run(cmd, env={**os.environ, LAUNCHED: "1"})
    saved = out / "reasonloop.json"
    if done.returncode != 0 or not saved.exists():
        raise ReasonloopError(f"accelerate launch of the {phase} stage failed "
                              f"(exit {done.returncode}); its output is above")
    job.unlink()
    return json.loads(saved.read_text())["train"]
