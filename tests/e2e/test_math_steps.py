"""Math steps are paragraphs (blank-line separated): the verifier's steps, PRM prefixes and
labels, and step-level search all use the env's separator, and every engine stops a sample at
it — with a byte-level BPE tokenizer, where "\\n\\n" is not one fixed token."""

from dataclasses import replace

import math_verify  # noqa: E402,F401  (a core dependency: a broken install fails here)

from reasonloop.config import EnvConfig
from reasonloop.envs.base import split_steps, step_prefixes, step_spans
from reasonloop.policy.engines import SamplingParams
from tests.conftest import ROOT

SAMPLE = ROOT / "configs" / "problems" / "arith50.jsonl"
SEP = "\n\n"


def _env():
    from reasonloop.envs.math import MathEnv
    return MathEnv(EnvConfig(name="math", problems_file=SAMPLE))


def test_steps_split_on_blank_lines_untidy_ones_too():
    text = "3 * 4 = 12.\nSo twelve.\n\n \t\n12 + 1 = 13.\n\n\n\\boxed{13}\n"
    assert split_steps(text, SEP) == ["3 * 4 = 12.\nSo twelve.", "12 + 1 = 13.", "\\boxed{13}"]
    assert [text[a:b] for a, b in step_spans(text, SEP)] == split_steps(text, SEP)
    assert step_prefixes(text, SEP)[1] == "3 * 4 = 12.\nSo twelve.\n\n12 + 1 = 13.\n\n"
    assert split_steps(text) == ["3 * 4 = 12.", "So twelve.", "12 + 1 = 13.",
                                 "\\boxed{13}"]                     # lines, as for Countdown
    env = _env()
    p = env.problems()[0]
    assert p.step_sep == env.step_sep == SEP
    assert env.verify(p, text).steps == split_steps(text, SEP)


def test_to_sample_cuts_a_stop_split_over_tokens(bpe_model):
    from reasonloop.policy.engines.base import to_sample
    from reasonloop.policy.init import load_policy
    _, tok = load_policy(bpe_model)
    enc = lambda t: tok(t, add_special_tokens=False)["input_ids"]      # noqa: E731
    head, tail = enc("So 3 + 4 = 7.\n"), enc("\nThen more text")
    ids = head + tail
    assert SEP not in tok.decode(head) and SEP in tok.decode(ids)
    s = to_sample(tok, ids, SamplingParams(stop=(SEP,)))
    assert s.text == "So 3 + 4 = 7.\n\n"
    k = next(i for i in range(len(ids)) if SEP in tok.decode(ids[:i + 1]))
    assert s.n_tokens == k + 1 <= len(head) + 1
    eos = to_sample(tok, ids + [tok.eos_token_id], SamplingParams())
    assert eos.text == tok.decode(ids) and eos.n_tokens == len(ids) + 1


def test_engines_stop_at_the_step_separator(bpe_model):
    import torch

    from reasonloop.policy.engines.hf import HFEngine
    from reasonloop.policy.engines.lean import LeanEngine
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(bpe_model)
    prompts = [p.prompt for p in _env().problems()[:4]]
    step = SamplingParams(temperature=0, max_new_tokens=64, stop=(SEP,))
    hf = HFEngine(model, tok).sample(prompts, 1, step)
    lean = LeanEngine(model, tok, dtype=torch.float32).sample(prompts, 1, step)
    assert [r[0].text for r in hf] == [r[0].text for r in lean]
    assert [r[0].n_tokens for r in hf] == [r[0].n_tokens for r in lean]
    whole = HFEngine(model, tok).sample(prompts, 1, replace(step, stop=()))
    for (one,), (full,) in zip(hf, whole):
        assert SEP not in one.text[:-2]                      # at most one step ...
        assert full.text.startswith(one.text)                # ... the first one
    assert any(r[0].text.endswith(SEP) for r in hf)          # and the model does make steps
    sampled = HFEngine(model, tok).sample(prompts, 4, replace(step, temperature=1.0, seed=3))
    assert all(SEP not in s.text[:-2] and 1 <= s.n_tokens <= 64 for r in sampled for s in r)


def test_step_search_and_mc_labels_use_paragraphs(bpe_model):
    """PRM beam search on math with Monte-Carlo step labels (no oracle for math): each
    proposal is one paragraph, the PRM scores paragraph prefixes."""
    from reasonloop.policy.engines.hf import HFEngine
    from reasonloop.policy.init import load_policy
    from reasonloop.reward.mc import MCPRM, mc_labels
    from reasonloop.search.base import SearchSpec
    from reasonloop.search.methods import SEARCH
    env = _env()
    problems = [p for p in env.problems() if p.split == "train"][:3]
    model, tok = load_policy(bpe_model)
    hf, seen = HFEngine(model, tok), []

    class Recording:
        def sample(self, prompts, n, params, progress=False):
            out = hf.sample(prompts, n, params)
            seen.extend((params.stop, s.text) for r in out for s in r)
            return out

    params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=0)
    orm = lambda p, t: env.verify(p, t).correct                  # noqa: E731
    prm = MCPRM(Recording(), params, m=2, orm=orm)
    rows = SEARCH["beam"](problems, Recording(), params, 4,
                          SearchSpec(prm=prm, orm=orm, width=2, max_steps=4))
    proposals = [t for stop, t in seen if stop == (SEP,)]
    assert proposals and all(SEP not in t[:-2] for t in proposals)
    assert any(t.endswith(SEP) for t in proposals)               # a step, not a whole answer
    assert {k for k, _ in prm.cache} <= {p.problem_id for p in problems}
    assert all(pre.endswith(SEP) for _, pre in prm.cache)        # PRM scored paragraphs
    by_id = {p.problem_id: p for p in problems}
    assert {r["problem_id"] for r in rows} == set(by_id)
    items = [(by_id[r["problem_id"]], r["text"]) for r in rows]
    for (_, text), lab in zip(items, mc_labels(items, hf, params, 2, orm)):
        assert len(lab.soft) == len(split_steps(text, SEP))


def test_learned_prm_reads_paragraph_ends(bpe_model):
    from transformers import AutoTokenizer

    from reasonloop.reward.learned import step_ends
    tok = AutoTokenizer.from_pretrained(bpe_model)
    prompt, text = "Question: x?\n", "2 * 3 = 6.\nSix.\n\n6 + 1 = 7.\n\n\\boxed{7}"
    ids, ends = step_ends(tok, prompt, text, SEP)
    assert len(ends) == 3
    pieces = [tok.decode(ids[: j + 1]) for j in ends]
    assert [x.endswith(c) for x, c in zip(pieces, ["Six.", "7.", "}"])] == [True] * 3
