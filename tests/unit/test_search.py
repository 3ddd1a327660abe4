"""Search methods on a real (if non-neural) policy: uniformly random legal Countdown steps.
It makes the PRM's effect measurable without training a network first."""

import random

import torch

from reasonloop.config import EnvConfig
from reasonloop.envs.countdown import Countdown, format_step, moves
from reasonloop.policy.engines import SamplingParams
from reasonloop.policy.engines.base import Sample
from reasonloop.reward.process import oracle_prm
from reasonloop.search.base import SearchSpec
from reasonloop.search.methods import SEARCH
from tests.unit.test_countdown import parse_prompt


class RandomLegalPolicy:
    """An Engine: continues a Countdown prompt (+ step prefix) with random legal steps."""

    def sample(self, prompts, n, params, progress=False):
        rng = random.Random(params.seed)
        out = []
        for prompt in prompts:
            head, *steps = prompt.split("\n")
            state = parse_prompt(head + "\n")[0]
            if steps and steps[-1] == "":
                steps = steps[:-1]
            fixes = [i for i, ln in enumerate(steps) if ln.startswith("fix: ")]
            if fixes:                    # a revision prompt: start over after the feedback
                steps = steps[fixes[-1] + 1:]
            if steps:
                state = tuple(int(x) for x in steps[-1].split("[")[1].rstrip("]").split())
            row = []
            for _ in range(n):
                s, text = tuple(state), ""
                while len(s) > 1:
                    a, op, b, c, _ = rng.choice(list(moves(s)))
                    rest = list(s)
                    rest.remove(a)
                    rest.remove(b)
                    s = (*rest, c)
                    text += format_step(a, op, b, c, s) + "\n"
                    if "\n" in params.stop:
                        break
                row.append(Sample(text, max(1, len(text))))
            out.append(row)
        return out


def _solved(env, problems, rows):
    by = {p.problem_id: p for p in problems}
    return {r["problem_id"] for r in rows if env.verify(by[r["problem_id"]], r["text"]).correct}


def test_prm_beam_beats_best_of_n_at_equal_samples():
    env = Countdown(EnvConfig(n_train=300))
    train = [p for p in env.problems() if p.split == "train"][:150]
    params = SamplingParams(temperature=1.0, seed=0)
    spec = SearchSpec(prm=oracle_prm(env), width=4)
    bon = SEARCH["best_of_n"](train, RandomLegalPolicy(), params, 16, spec)
    bm = SEARCH["beam"](train, RandomLegalPolicy(), params, 16, spec)
    s_bon, s_beam = _solved(env, train, bon), _solved(env, train, bm)
    assert len(s_beam) > len(s_bon) + 20, (len(s_bon), len(s_beam))
    assert all(r["method"] == "beam" and r["n_tokens"] > 0 for r in bm)
    per_problem = {}
    for r in bm:
        per_problem[r["problem_id"]] = per_problem.get(r["problem_id"], 0) + 1
    assert max(per_problem.values()) <= 4 and set(per_problem) == {p.problem_id for p in train}
    again = SEARCH["beam"](train, RandomLegalPolicy(), params, 16, spec)
    assert [r["text"] for r in again] == [r["text"] for r in bm]


def test_stop_token_ends_samples_after_one_step(tiny_model_dir):
    from reasonloop.policy.engines.hf import HFEngine
    from reasonloop.policy.engines.lean import LeanEngine
    from reasonloop.policy.init import load_policy
    model, tok = load_policy(tiny_model_dir)
    p = SamplingParams(temperature=0, max_new_tokens=40, stop=("\n",))
    prompts = ["12 5 3>51\n", "7 7 2>49\n", "12 5 3>51\n12*5=60 [3 60]\n"]
    lean = LeanEngine(model, tok, dtype=torch.float32).sample(prompts, 1, p)
    hf = HFEngine(model, tok).sample(prompts, 1, p)
    assert [r[0].text for r in lean] == [r[0].text for r in hf]
    assert [r[0].n_tokens for r in lean] == [r[0].n_tokens for r in hf]
    assert all(r[0].text.count("\n") <= 1 for r in lean)
    full = LeanEngine(model, tok, dtype=torch.float32).sample(
        prompts[:1], 1, SamplingParams(temperature=0, max_new_tokens=40))
    assert full[0][0].text.startswith(lean[0][0].text.rstrip("\n"))


def test_lean_engine_drops_finished_rows_without_changing_outputs(tmp_path):
    """Rows that finished leave the batch (lean.py); the rest decode exactly as before:
    greedy output equals HF generate's, for a batch whose samples end at different steps
    (an untrained model's argmax wanders; a few stop characters end it at random places)."""
    from reasonloop.policy.engines.hf import HFEngine
    from reasonloop.policy.engines.lean import LeanEngine
    from reasonloop.policy.init import build_tiny_llama, load_policy, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    save_policy(build_tiny_llama(tok, 64, 2, 2, seed=3), tok, tmp_path)
    model, tok = load_policy(tmp_path)
    env = Countdown(EnvConfig(n_train=300))
    prompts = [p.prompt for p in env.problems()]
    n = len(tok(prompts[0])["input_ids"])
    prompts = [q for q in prompts if len(tok(q)["input_ids"]) == n][:40]   # one batch
    p = SamplingParams(temperature=0, max_new_tokens=40, stop=tuple("0123"))
    lean = LeanEngine(model, tok, dtype=torch.float32).sample(prompts, 1, p)
    hf = HFEngine(model, tok).sample(prompts, 1, p)
    assert [r[0].text for r in lean] == [r[0].text for r in hf]
    assert [r[0].n_tokens for r in lean] == [r[0].n_tokens for r in hf]
    assert len({r[0].n_tokens for r in lean}) > 3        # they did end at different steps
