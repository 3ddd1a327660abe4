"""Where a run computes decides its numeric type and its threads.

Why: a bf16 matmul is ~2× faster than fp32 on a CPU with native bf16 (AVX512_BF16, AMX, Arm's
BF16) and 10–20× *slower* on one without (AVX2 only: torch emulates it). Which processor a
machine has is not the user's choice, so `auto` (the default of `learn.bf16`,
`policy.dtype`, `learn.threads`, `run.threads`) looks at the machine; an explicit value
still wins. Results computed in different numeric types are different results: the choice
is recorded with every run (DuckDB `runs`) and every model version (MLflow tags).
"""

from __future__ import annotations

import math
import os
import platform
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

# CPU flags (Linux /proc/cpuinfo) that mean bf16 arithmetic in hardware: x86 AVX512_BF16 and
# AMX (Intel Sapphire Rapids on, AMD Zen 4 on), Arm's BF16 extension (Neoverse V1/N2 on).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class Machine:
    processor: str                 # "AMD EPYC", "Intel(R) Xeon(R) Platinum 8481C", …
    capability: str                # torch's CPU kernel level: "AVX2", "AVX512", "SVE256", …
    bf16_flags: tuple[str, ...]    # which of BF16_CPU_FLAGS the CPU reports
    cpus: int                      # CPUs this process may use (affinity and cgroup quota)
    gpu: str | None = None         # CUDA device 0's name, None without one
    gpu_bf16: bool = False

    @property
    def bf16_native(self) -> bool:
        return self.gpu_bf16 if self.gpu else bool(self.bf16_flags)

    def describe(self) -> str:
        where = f"GPU {self.gpu}" if self.gpu else f"{self.processor}, {self.cpus} CPUs"
        bf16 = "native bf16" if self.bf16_native else "no native bf16"
        flags = "+" + "+".join(f.upper() for f in self.bf16_flags) if self.bf16_flags else ""
        return f"{where} ({self.capability}{flags}, {bf16})"


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; ("", {}) where there is none (macOS)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return "", set()


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """The first processor's model name and feature flags (x86 `flags`, Arm `Features`)."""
    name, flags = "", set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not name:
            name = val.strip()
        elif key in ("flags", "features") and not flags:    # x86: flags, Arm: Features
            flags = set(val.split())
    return name, flags


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (a
    container given 2 of a host's 64 CPUs sees 64 in os.cpu_count())."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                                  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


@lru_cache(maxsize=1)
def machine() -> Machine:
    name, flags = _cpuinfo()
    gpu, gpu_bf16 = None, False
    if torch.cuda.is_available():
        gpu, gpu_bf16 = torch.cuda.get_device_name(0), bool(torch.cuda.is_bf16_supported())
    return Machine(processor=name or platform.processor() or platform.machine(),
                   capability=torch.backends.cpu.get_cpu_capability(),
                   bf16_flags=tuple(f for f in BF16_CPU_FLAGS if f in flags),
                   cpus=usable_cpus(), gpu=gpu, gpu_bf16=gpu_bf16)


def bf16(setting: bool | str, m: Machine | None = None) -> bool:
    """Train in bf16? `auto`: only where the hardware has it; True/False as given."""
    if setting == "auto":
        return (m or machine()).bf16_native
    return bool(setting)


def sample_dtype(setting: str, m: Machine | None = None) -> torch.dtype:
    """The lean sampler's dtype: `auto` → bf16 where native, else fp32."""
    if setting == "auto":
        setting = "bf16" if (m or machine()).bf16_native else "fp32"
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[setting]


def threads(setting: int | str, share: int = 1, m: Machine | None = None) -> int:
    """`auto`: the usable CPUs split between `share` things running at once."""
    if setting == "auto":
        return max(1, (m or machine()).cpus // max(1, share))
    return int(setting)


def scorer_placement(m: Machine | None = None) -> tuple[str, torch.dtype]:
    """Where a learned verifier scores: the GPU in bf16 where there is one (a 0.5B scorer in
    fp32 on 2 CPU threads took hours over an iteration's D_search), else the CPU in fp32."""
    m = m or machine()
    if m.gpu:
        return "cuda", torch.bfloat16 if m.gpu_bf16 else torch.float16
    return "cpu", torch.float32


def save_dtype(trained_bf16: bool, m: Machine | None = None) -> torch.dtype:
    """The dtype a trained policy is saved in: on a GPU, bf16 when it trained in bf16 (half
    the disk of fp32, and what vLLM loads anyway); on a CPU, fp32 — the lean sampler and the
    HF engine compute in fp32 there, and a tiny policy is small."""
    m = m or machine()
    return torch.bfloat16 if m.gpu and trained_bf16 else torch.float32


def gpu_free_gib() -> float | None:
    """Free memory on CUDA device 0 in GiB (None without a GPU): what a stage found free."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.mem_get_info(0)[0] / 2**30, 2)


@contextmanager
def imports_frozen():
    """Inside: what existed on entry (modules, classes: what the imports made) is out of
    every collection's view. With ~700k such objects a `gc.collect()` took ~0.4 s, and
    `release_memory` runs one after each stage: 30% of a tiny iteration's time. On exit
    they are back in view, so what died in a cycle meanwhile is still collected."""
    import gc
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_memory() -> None:
    """Hand memory back after an in-process stage (a trainer, a scorer): collect what Python
    still holds and empty CUDA's cache, so the next stage's vLLM engine finds its share free."""
    import gc
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Compute:
    """A config's settings resolved on this machine: what the run actually computes with."""
    machine: Machine
    bf16: bool
    sample_dtype: torch.dtype
    train_threads: int
    search_threads: int

    def record(self) -> dict[str, str | int | bool]:
        """Flat fields for DuckDB `runs`, MLflow tags and benchmark headers."""
        m = asdict(self.machine)
        return {"processor": m["processor"], "capability": m["capability"],
                "bf16_native": self.machine.bf16_native, "gpu": m["gpu"] or "",
                "cpus": m["cpus"], "train_dtype": "bf16" if self.bf16 else "fp32",
                "sample_dtype": "bf16" if self.sample_dtype == torch.bfloat16 else "fp32",
                "train_threads": self.train_threads, "search_threads": self.search_threads}

    def describe(self) -> str:
        r = self.record()
        return (f"{self.machine.describe()}; train {r['train_dtype']} × {self.train_threads} "
                f"threads, sampling {r['sample_dtype']} × {self.search_threads} per shard")


def resolve(cfg, m: Machine | None = None) -> Compute:
    """The run's numeric types and thread counts. Generate shards share the CPUs when they
    run in this process's thread pool; training has the machine to itself."""
    m = m or machine()
    shards = cfg.search.shards if cfg.run.runner == "threads" else 1
    return Compute(machine=m, bf16=bf16(cfg.learn.bf16, m),
                   sample_dtype=sample_dtype(cfg.policy.dtype, m),
                   train_threads=threads(cfg.learn.threads, 1, m),
                   search_threads=threads(cfg.run.threads, shards, m))


def header() -> str:
    """The line every benchmark table starts with: results are only comparable on it."""
    return (f"machine: {machine().describe()}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")
