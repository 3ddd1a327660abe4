"""Search traces (policy init that teaches searching in the policy's own output): the
generator writes only true traces, the verifier judges traces exactly as the independent
reference does, and hindsight, step labels and feedback work on them."""

import random
import re
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, check, diagnose
from reasonloop.envs.countdown_trace import (
    count_backtracks,
    relabel_text,
    search_trace,
)
from tests.countdown_reference import reference, replay, trace_lines

EASY = Countdown(EnvConfig(n_train=2000, n_val=50, n_test=50))
SOS = Countdown(EnvConfig(n_numbers=4, number_max=99, target_min=10, target_max=100,
                          n_train=300, n_val=20, n_test=20))


@pytest.mark.parametrize("data", ["traces", "goal_traces"])
def test_every_trace_solves_and_every_explored_step_is_legal_from_its_state(data):
    for env, bt in ((EASY, 2), (SOS, 3)):
        for ex in env.warmup_examples(400, seed=1, kind=data, backtracks=bt):
            nums, t, lines = trace_lines(ex)
            assert check(nums, t, ex["completion"]).correct
            assert reference(nums, t, ex["completion"])
            for kind, state, before in replay(nums, lines):
                if kind == "back":
                    assert state in before          # back to a state that appeared earlier
            assert lines[-1] == f"{t} ok"
            checks = [ln for ln in lines if " not " in ln]
            assert len(checks) == count_backtracks(ex["completion"])
            assert all(ln.endswith(f" not {t}") for ln in checks)


@pytest.mark.parametrize("kind", ["traces", "goal_traces"])
def test_the_knob_sets_how_much_the_traces_backtrack(kind):
    mean = {bt: statistics.mean(count_backtracks(e["completion"]) for e in
                                EASY.warmup_examples(600, seed=2, kind=kind, backtracks=bt))
            for bt in (0, 1, 3)}
    assert mean[0] == 0
    assert 0.3 < mean[1] < 0.7 < 1.0 < mean[3] < 2.0


def test_traces_are_not_the_same_search_every_time():
    rng = random.Random(0)
    texts = {"\n".join(search_trace((7, 17, 5), 50, rng, 2)) for _ in range(50)}
    assert len(texts) > 10


def test_goal_traces_aim_like_goal_plays_and_their_dead_ends_miss():
    """Hindsight for traces: the last attempt is a uniformly random play (as a goal play's
    is), so its first step is spread over the legal moves rather than the solver's; every
    dead end ends on a value that is not the target, so the last step of an attempt has to be
    worked out, not copied from the prompt. No dead end ends on a held-out test target: that
    would teach that such a value is never "ok"."""
    ex = EASY.warmup_examples(3000, seed=6, kind="goal_traces", backtracks=2)
    firsts, misses = set(), 0
    for e in ex:
        nums, t, lines = trace_lines(e)
        assert t in EASY.train_targets
        last_back = max((i for i, ln in enumerate(lines) if ln.startswith("back [")), default=-1)
        if last_back < 0:
            firsts.add(lines[0])
        for i, ln in enumerate(lines):
            if " not " in ln:
                misses += 1
                assert int(ln.split()[0]) != t
                assert int(ln.split()[0]) not in EASY.test_targets   # held out: never a leaf
                assert lines[i - 1].endswith(f"[{ln.split()[0]}]")   # the leaf it reached
    assert misses > 2000
    assert len(firsts) > 500
    plays = EASY.warmup_examples(3000, seed=6, kind="goal_plays")
    assert statistics.mean(len(e["completion"]) for e in ex) > \
        1.5 * statistics.mean(len(e["completion"]) for e in plays)


def _mutate_trace(lines: list[str], rng) -> list[str]:
    lines = list(lines)
    i = rng.randrange(len(lines))
    kind = rng.randrange(7)
    steps = [k for k, ln in enumerate(lines) if "=" in ln and "[" in ln]
    if kind == 6 and steps:                             # jump to a convenient state
        last = steps[-1]
        before = [k for k in steps if k < last]
        if before:
            state = lines[before[-1]].split("[")[1][:-1]
            return [f"back [{state}]"] + lines[last:]
    if kind == 0:
        del lines[i]
    elif kind == 1 and lines[i].startswith("back ["):     # back to a state never seen
        nums = lines[i][6:-1].split()
        nums[rng.randrange(len(nums))] = str(rng.randint(1, 200))
        lines[i] = f"back [{' '.join(nums)}]"
    elif kind == 2 and " not " in lines[i]:             # a check that claims success
        lines[i] = lines[i].split(" ")[0] + " ok"
    elif kind == 2 and lines[i].endswith((" no", " ok")):   # ... or flips its verdict
        lines[i] = lines[i][:-2] + ("ok" if lines[i].endswith("no") else "no")
    elif kind == 3:                                     # a digit changed anywhere
        pos = [k for k, ch in enumerate(lines[i]) if ch.isdigit()]
        if pos:
            k = rng.choice(pos)
            lines[i] = lines[i][:k] + str((int(lines[i][k]) + 1) % 10) + lines[i][k + 1:]
    elif kind == 4:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines = lines[:i]                               # cut short
    return lines


@given(st.integers(0, 10**6))
@settings(max_examples=300, deadline=None)
def test_the_verifier_judges_traces_exactly_as_the_reference(seed):
    rng = random.Random(seed)
    env = SOS if seed % 3 == 0 else EASY
    kind = "dfs_traces" if seed % 4 == 1 else "traces"
    ex = env.warmup_examples(1, seed=seed, kind=kind, backtracks=3)[0]
    nums, t, lines = trace_lines(ex)
    for _ in range(rng.randint(1, 3)):
        lines = _mutate_trace(lines, rng) or lines
    text = "\n".join(lines) + "\n"
    v = check(nums, t, text)
    assert v.correct == reference(nums, t, text)
    assert (diagnose(nums, t, text) is None) == v.correct


def _rejected(nums, t, text, why):
    assert not check(nums, t, text).correct
    assert not reference(nums, t, text)
    assert why in diagnose(nums, t, text)


def test_a_trace_that_lies_about_its_exploration_is_rejected():
    good = "13*14=182 [2 182]\n2+182=184 [184]\n184 not 40\nback [13 14 2]\n" \
           "13*2=26 [14 26]\n14+26=40 [40]\n40 ok\n"
    assert check((13, 14, 2), 40, good).correct
    lies = {"back [13 14 3]": "did not appear before",     # a state it never had
            "184 ok": "is not the target",                 # a failed check called success
            "184 not 41": "the target is 40",              # a check against another target
            "183 not 40": "is not the one number left"}    # a check of a number it lacks
    for line, why in lies.items():
        kind = line.split(" ")[0] if line.startswith("back") else line.split(" ")[1]
        old = {"back": "back [13 14 2]", "ok": "184 not 40", "not": "184 not 40"}[kind]
        if line.startswith("183"):
            old = "184 not 40"
        _rejected((13, 14, 2), 40, good.replace(old, line), why)
    compare = good.replace("184 not 40", "184 vs 40 no").replace("40 ok", "40 vs 40 ok")
    diff = good.replace("184 not 40", "184-40=144 no").replace("40 ok", "40-40=0 ok")
    lies = {compare: [("184 vs 40 no", "184 vs 40 ok", "is not the target"),
                      ("184 vs 40 no", "184 vs 41 no", "the target is 40"),
                      ("40 vs 40 ok", "40 vs 40 no", "the target is 40"),
                      ("40 vs 40 ok", "40 vs 41 ok", "the target is 40"),
                      ("40 vs 40 ok", "40 vs 40 yes", "not of the form")],
            diff: [("184-40=144 no", "184-40=144 ok", "is not the target"),
                   ("184-40=144 no", "184-41=143 no", "subtracts 184 and the target"),
                   ("184-40=144 no", "184-40=145 no", "is 144 not 145"),
                   ("184-40=144 no", "40-184=144 no", "is -144 not 144"),
                   ("40-40=0 ok", "40-40=0 no", "the target is 40")]}
    for form, swaps in lies.items():                     # the comparing and difference checks
        assert check((13, 14, 2), 40, form).correct and reference((13, 14, 2), 40, form)
        for old, line, why in swaps:
            _rejected((13, 14, 2), 40, form.replace(old, line), why)
    # returning to an earlier state that is not the start is fine too
    deeper = "16-12=4 [10 4]\n10+4=14 [14]\n14 not 40\nback [10 4]\n10*4=40 [40]\n40 ok\n"
    assert check((10, 16, 12), 40, deeper).correct and reference((10, 16, 12), 40, deeper)


def test_step_labels_on_a_trace_mark_the_dead_end_and_the_way_back():
    text = "13*14=182 [2 182]\n2+182=184 [184]\n184 not 40\nback [13 14 2]\n" \
           "13*2=26 [14 26]\n14+26=40 [40]\n40 ok\n"
    v = check((13, 14, 2), 40, text)
    assert v.step_rewards == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


@given(st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_hindsight_on_a_trace_gives_a_true_trace_for_the_value_it_reached(seed):
    rng = random.Random(seed)
    ex = EASY.warmup_examples(1, seed=seed, kind="traces", backtracks=3)[0]
    nums, t, lines = trace_lines(ex)
    cut = lines[:rng.randint(1, len(lines))]
    text = "\n".join(cut) + ("\n" if rng.random() < 0.5 else "")
    found = relabel_text(nums, t, text)
    leaves = [ln for ln in cut if "=" in ln and ln.endswith("]") and " " not in
              ln.split("[")[1]]
    if not leaves:
        assert found is None
        return
    new, relabelled = found
    assert new == int(leaves[-1].split("[")[1][:-1])
    assert reference(nums, new, relabelled) and check(nums, new, relabelled).correct
    norm = [re.sub(r" (not \d+|ok)$", " check", ln) for ln in relabelled.rstrip().split("\n")]
    assert norm == [re.sub(r" (not \d+|ok)$", " check", ln) for ln in cut[:len(norm)]]


def test_relabel_into_train_targets_only_returns_the_rewritten_text():
    p = next(p for p in EASY.problems() if p.split == "train")
    nums, t = tuple(p.meta["numbers"]), p.meta["target"]
    found = 0
    for seed in range(200):
        ex = EASY.warmup_examples(1, seed=seed, kind="traces", backtracks=2)[0]
        trace = search_trace(nums, t, random.Random(seed), 2)
        if "back [" not in "\n".join(trace):
            continue
        miss = "\n".join(trace[:trace.index(next(ln for ln in trace if " not " in ln)) + 1])
        got = EASY.relabel(p, miss, EASY.verify(p, miss))
        if got is None:
            continue
        new, text = got
        found += 1
        assert new.meta["target"] in EASY.train_targets and text.endswith(" ok\n")
        assert EASY.verify(new, text).correct and not EASY.verify(p, text).correct
        del ex
    assert found > 0


def test_hindsight_turns_a_false_ok_into_a_true_trace_and_skips_wrong_steps():
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=22 [22]\n22 ok\n") == \
        (22, "3*5=15 [7 15]\n15+7=22 [22]\n22 ok\n")
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=22 [22]\n22 not 12\n"
                        "back [3 5 7]\n3+5=8 [7 8]\n8+7=15 [15]\n15 ok\n") == \
        (15, "3*5=15 [7 15]\n15+7=22 [22]\n22 not 15\nback [3 5 7]\n3+5=8 [7 8]\n"
             "8+7=15 [15]\n15 ok\n")
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=22 [22]\n22 vs 12 no\n"
                        "back [3 5 7]\n3+5=8 [7 8]\n8+7=15 [15]\n15 vs 12 ok\n") == \
        (15, "3*5=15 [7 15]\n15+7=22 [22]\n22 vs 15 no\nback [3 5 7]\n3+5=8 [7 8]\n"
             "8+7=15 [15]\n15 vs 15 ok\n")                # in the form it was written in
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=22 [22]\n22-12=10 no\n"
                        "back [3 5 7]\n3+5=8 [7 8]\n8+7=15 [15]\n15-12=3 no\n") == \
        (15, "3*5=15 [7 15]\n15+7=22 [22]\n22-15=7 no\nback [3 5 7]\n3+5=8 [7 8]\n"
             "8+7=15 [15]\n15-15=0 ok\n")
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=23 [23]\n23 ok\n") is None
    assert relabel_text((3, 5, 7), 12, "3*5=15 [7 15]\n15+7=22 [22]\n22 ok\nback [9]\n") \
        == (22, "3*5=15 [7 15]\n15+7=22 [22]\n22 ok\n")


def test_a_direct_policy_is_taught_traces_by_continuing_its_init(tiny_model_dir, tmp_path):
    """`policy.init_from`: the given policy's weights and tokenizer are the start, its
    positions stretch to the trace context, the BC on traces moves it, and the given dir is
    left as it was."""
    import hashlib

    import torch

    from reasonloop.config import load_config
    from reasonloop.policy.init import init_policy, load_policy
    from reasonloop.workspace import env
    from tests.conftest import SMOKE
    given_md5 = hashlib.md5((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    cfg = load_config(SMOKE, [f"run.root={tmp_path}", f"policy.init_from={tiny_model_dir}",
                              "policy.init_data=traces", "policy.context=256",
                              "policy.max_new_tokens=200", "policy.init_examples=64",
                              "policy.init_steps=2", "policy.init_batch_size=8",
                              "policy.hidden_size=64"])        # ignored: the given one's shape
    out = init_policy(cfg, env(cfg), tmp_path / "init")
    before, tok0 = load_policy(tiny_model_dir)
    after, tok = load_policy(out)
    assert after.config.max_position_embeddings == 256 > before.config.max_position_embeddings
    assert after.config.hidden_size == before.config.hidden_size == 32
    assert tok.get_vocab() == tok0.get_vocab()
    moved = [not torch.equal(a, b) for a, b in zip(before.state_dict().values(),
                                                   after.state_dict().values())]
    assert any(moved)
    assert hashlib.md5((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest() == \
        given_md5

