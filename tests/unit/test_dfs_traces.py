"""The systematic search written out (`policy.init_data: dfs_traces`): every first step in
order until one solves, each leaf checked by its difference to the target, dead ends closed
by their closest leaf, retries, and the long contexts such traces need."""

import random

import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, check
from reasonloop.envs.countdown_trace import departure, dfs_trace, ordered_moves
from tests.countdown_reference import reference, replay, trace_lines

EASY = Countdown(EnvConfig(n_train=2000, n_val=50, n_test=50))


def _reach(nums: list[int]) -> set[int]:
    """Every value the numbers can finish with, by brute force (independent of the env)."""
    if len(nums) == 1:
        return set(nums)
    out = set()
    for i in range(len(nums)):
        for j in range(len(nums)):
            if i != j:
                a, b = nums[i], nums[j]
                rest = [x for k, x in enumerate(nums) if k not in (i, j)]
                vals = [a + b, a * b] + ([a - b] if a >= b else []) + \
                    ([a // b] if b and a % b == 0 else [])
                for v in vals:
                    out |= _reach(rest + [v])
    return out


def test_dfs_traces_search_every_first_step_in_order_until_one_solves():
    """The systematic search: every trace verifies and ends solved; every `back` returns to
    a state that appeared; the first steps tried are the ordered moves from the start, in
    order, none skipped, up to the one that solves; every failed branch ends on the last step
    closest to the target (so the solution is never passed over); the same problem gives
    the same trace."""
    exs = EASY.warmup_examples(400, seed=3, kind="dfs_traces")
    branches = 0
    for ex in exs:
        nums, t, lines = trace_lines(ex)
        assert t in EASY.train_targets
        assert check(nums, t, ex["completion"]).correct
        assert reference(nums, t, ex["completion"])
        assert dfs_trace(nums, t) == lines                       # deterministic
        walked = replay(nums, lines)
        assert all(state in before for kind, state, before in walked if kind == "back")
        starts = [ln for i, ln in enumerate(lines) if i == 0 or lines[i - 1].startswith("back")]
        order = [f"{a}{op}{b}={c}" for a, op, b, c, _ in ordered_moves(nums)]
        assert [s.split(" ")[0] for s in starts] == order[: len(starts)]
        assert [ln for ln in lines if " not " in ln or " vs " in ln] == []   # other forms
        for i, ln in enumerate(lines):
            if ln.endswith(" no"):
                branches += 1
                leaf = int(lines[i - 1].split("[")[1][:-1])
                assert ln == f"{max(leaf, t)}-{min(leaf, t)}={abs(leaf - t)} no"   # diff form
                assert leaf not in EASY.test_targets
                left = sorted(int(x) for x in lines[i - 2].split("[")[1][:-1].split())
                assert t not in _reach(left)              # a true dead end
                x, y = left                               # ... closed by its closest leaf
                hi, lo = max(x, y), min(x, y)
                leaves = [x + y, x * y, hi - lo] + ([hi // lo] if lo and hi % lo == 0 else [])
                assert abs(leaf - t) == min(abs(v - t) for v in leaves)
        assert lines[-1] == f"{t}-{t}=0 ok"
        assert dfs_trace(nums, t, form="plain")[-1] == f"{t} ok"
        assert dfs_trace(nums, t, form="compare")[-1] == f"{t} vs {t} ok"
    assert branches > len(exs)                                   # they do search


def test_init_data_dfs_traces_is_what_policy_init_trains_on():
    from reasonloop.config import load_config
    from reasonloop.policy.init import warmup
    cfg = load_config("configs/direct.yaml", ["policy.init_data=dfs_traces"])
    for ex in warmup(cfg, EASY, 30, seed=4):
        nums, t, lines = trace_lines(ex)
        assert lines == dfs_trace(nums, t)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_dfs_retries_check_a_miss_then_go_back_to_the_two_numbers(share):
    """A retry: the solving branch first writes its closest miss, checks it, goes back to
    its two numbers and writes the solution; the rest is the deterministic search. The knob
    sets how many solving branches retry."""
    rng, retried, could = random.Random(7), 0, 0
    for ex in EASY.warmup_examples(300, seed=9, kind="dfs_traces"):
        nums, t, plain = trace_lines(ex)
        lines = dfs_trace(nums, t, retries=share, rng=rng)
        text = "\n".join(lines) + "\n"
        assert check(nums, t, text).correct and reference(nums, t, text)
        two = plain[-2].split("[")[0]                   # the solving branch's last step ...
        pair = plain[-3].split("[")[1][:-1] if len(plain) > 2 else " ".join(map(str, nums))
        x, y = map(int, pair.split())
        hi, lo = max(x, y), min(x, y)
        could += any(v != t for v in [x + y, x * y, hi - lo])          # a miss to retry
        if lines == plain:
            continue
        retried += 1
        miss, verdict, back = lines[len(plain) - 2: len(plain) + 1]
        assert lines[:len(plain) - 2] == plain[:-2] and lines[-2:] == plain[-2:]
        z = int(miss.split("=")[1].split()[0])
        assert verdict == f"{max(z, t)}-{min(z, t)}={abs(z - t)} no" and two not in miss
        assert back == f"back [{pair}]"                 # ... back to the two numbers it had
    assert retried == {0.0: 0, 1.0: could}.get(share, retried)
    assert share != 0.5 or 0.35 * could < retried < 0.65 * could
    from reasonloop.config import load_config
    from reasonloop.policy.init import warmup
    cfg = load_config("configs/direct.yaml",
                      ["policy.init_data=dfs_traces", f"policy.trace_retries={share}"])
    exs = warmup(cfg, EASY, 100, seed=4)
    backs2 = sum(ln.startswith("back [") and len(ln.split()) == 3
                 for ex in exs for ln in trace_lines(ex)[2])
    assert backs2 == 0 if share == 0 else 0.3 * share * len(exs) < backs2 <= len(exs)


def test_long_trace_contexts_build_policies_with_sdpa_attention():
    """Eager attention keeps 64 × heads × L² scores: at traces' ~450 tokens SDPA was faster."""
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import CHARS, build_char_tokenizer
    tok = build_char_tokenizer(CHARS)
    short, long = (build_tiny_llama(tok, 16, 1, 2, 0, max_len=n) for n in (128, 704))
    assert short.config._attn_implementation == "eager"
    assert long.config._attn_implementation == "sdpa"


def test_dfs_traces_search_four_numbers_depth_first():
    """Four numbers: a dead end backs up to the three-number state it left, and a spent
    three-number state to the start."""
    lines = dfs_trace((3, 7, 11, 13), 19)
    assert check((3, 7, 11, 13), 19, "\n".join(lines) + "\n").correct
    sizes = [len(ln.split()) - 1 for ln in lines if ln.startswith("back [")]
    assert set(sizes) == {3, 4}       # into a spent three-number state, then to the start
    firsts = [ln for ln in lines if "=" in ln and "[" in ln and len(ln.split("[")[1].split()) == 3]
    assert sizes.count(4) == len(firsts) - 1    # every first step but the winning one left
    with pytest.raises(ValueError):
        dfs_trace((1, 1, 1), 97)


def test_departure_names_the_first_line_that_leaves_the_reference_search():
    nums, t = [9, 15, 12], 72
    ref = dfs_trace(nums, t)
    assert ref[:2] == ["15+9=24 [12 24]", "24+12=36 [36]"] and ref[4] == "15*9=135 [12 135]"

    def at(i: int, line: str) -> str:
        return "\n".join([*ref[:i], line, *ref[i + 1:]]) + "\n"

    assert departure(nums, t, "\n".join(ref)) is None
    assert departure(nums, t, "15-9=6 [12 6]\n12*6=72 [72]\n72-72=0 ok") is None  # correct
    assert departure(nums, t, at(0, "15*9=135 [12 135]")) == "another earlier step"
    assert departure(nums, t, at(0, "15+9=25 [12 25]")) == "wrong earlier step"
    assert departure(nums, t, at(1, "24*12=288 [288]")) == "another last step"  # not closest
    assert departure(nums, t, at(1, "24+12=35 [35]")) == "wrong last step"
    assert departure(nums, t, at(2, "72-36=35 no")) == "wrong check"
    assert departure(nums, t, at(3, "back [9 15 13]")) == "wrong back"
    assert departure(nums, t, at(3, "back [12 24]")) == "another back"  # seen: legal
    assert departure(nums, t, at(0, "15 plus 9")) == "malformed line"
    assert departure(nums, t, "\n".join(ref[:5])) == "stopped"
