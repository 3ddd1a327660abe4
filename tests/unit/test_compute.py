"""`auto` numeric type and threads: decided by the machine, an explicit setting wins."""

import pytest
import torch

from reasonloop import compute
from reasonloop.config import load_config
from reasonloop.errors import ConfigError

AVX2 = compute.Machine("AMD EPYC", "AVX2", (), cpus=2)
SPR = compute.Machine("Intel Xeon Platinum 8481C", "AVX512", ("avx512_bf16", "amx_bf16"),
                      cpus=8)
ZEN4 = compute.Machine("AMD EPYC 9654", "AVX512", ("avx512_bf16",), cpus=4)
GRAVITON3 = compute.Machine("aarch64", "SVE256", ("bf16",), cpus=4)


@pytest.mark.parametrize("m, native", [(AVX2, False), (SPR, True), (ZEN4, True),
                                       (GRAVITON3, True)])
def test_auto_picks_bf16_only_where_the_cpu_has_it(m, native):
    assert compute.bf16("auto", m) is native
    assert compute.sample_dtype("auto", m) == (torch.bfloat16 if native else torch.float32)


def test_a_gpu_decides_by_its_own_bf16_support():
    assert compute.bf16("auto", compute.Machine("x", "AVX2", (), 2, "NVIDIA H200", True))
    assert not compute.bf16("auto", compute.Machine("x", "AVX512", ("amx_bf16",), 2,
                                                    "Tesla T4", False))


def test_an_explicit_setting_wins():
    assert compute.bf16(True, AVX2) is True and compute.bf16(False, SPR) is False
    assert compute.sample_dtype("fp32", SPR) == torch.float32
    assert compute.sample_dtype("bf16", AVX2) == torch.bfloat16
    assert compute.threads(3, m=AVX2) == 3


def test_threads_follow_the_usable_cpus():
    assert compute.threads("auto", m=SPR) == 8
    assert compute.threads("auto", share=2, m=SPR) == 4
    assert compute.threads("auto", share=4, m=AVX2) == 1       # never 0


def test_resolve_a_config_on_a_machine():
    cfg = load_config(None, ["search.shards=2"])
    c = compute.resolve(cfg, SPR)
    assert (c.bf16, c.sample_dtype, c.train_threads, c.search_threads) == (
        True, torch.bfloat16, 8, 4)
    c = compute.resolve(load_config(None, ["learn.bf16=true", "policy.dtype=fp32",
                                           "learn.threads=1", "run.threads=2"]), AVX2)
    assert (c.bf16, c.sample_dtype, c.train_threads, c.search_threads) == (
        True, torch.float32, 1, 2)
    r = compute.resolve(cfg, AVX2).record()
    assert r["train_dtype"] == r["sample_dtype"] == "fp32" and r["capability"] == "AVX2"
    assert "AVX2" in compute.resolve(cfg, AVX2).describe()
    # Ray / Dask shards run in their own processes: each may use the machine
    assert compute.resolve(load_config(None, ["run.runner=dask"]), SPR).search_threads == 8


def test_bad_settings_fail_in_one_line():
    for bad in ("learn.bf16=maybe", "policy.dtype=fp16", "learn.threads=0", "run.threads=x"):
        with pytest.raises(ConfigError) as e:
            load_config(None, [bad])
        assert "\n" not in str(e.value) and bad.split("=")[0] in str(e.value)


def test_cpuinfo_flags_x86_and_arm():
    x86 = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
           "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
           "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    name, flags = compute.parse_cpuinfo(x86)
    assert name.startswith("Intel(R) Xeon") and {"avx512_bf16", "amx_bf16"} <= flags
    _, flags = compute.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert "bf16" in flags
    assert compute.parse_cpuinfo("") == ("", set())


def test_this_machine_is_described():
    m = compute.machine()
    assert m.capability == torch.backends.cpu.get_cpu_capability()
    assert 1 <= m.cpus <= (torch.get_num_threads() + 256)
    assert m.describe() in compute.header()


def test_the_lean_sampler_runs_in_the_chosen_dtype(tiny_model_dir):
    from reasonloop.policy.engines import load_engine
    assert load_engine("lean", tiny_model_dir, dtype="fp32").dtype == torch.float32
    assert load_engine("lean", tiny_model_dir, dtype="bf16").dtype == torch.bfloat16
    assert load_engine("lean", tiny_model_dir).dtype == compute.sample_dtype("auto")


def test_imports_frozen_hides_old_objects_from_collections_and_collects_new_cycles():
    """Within a run the per-stage `gc.collect()` skips what existed before it (fast) but
    still frees cycles the run made; on exit nothing stays frozen."""
    import gc
    import weakref

    from reasonloop.compute import imports_frozen

    class Node:
        pass

    before = gc.get_freeze_count()
    with imports_frozen():
        assert gc.get_freeze_count() > before
        a, b = Node(), Node()
        a.other, b.other = b, a             # a cycle made inside the run, then dropped
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    assert gc.get_freeze_count() == 0
