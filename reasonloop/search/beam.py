"""Step-level beam search guided by a PRM (the roadmap's "search with a process reward").

Sample one *step* (up to a newline) `n // width` times from each of `width` beams, score every
new prefix with the PRM, keep the best `width`, repeat until the beams finish. Compared with
best-of-N at the same number of samples, the PRM prunes a wrong first step before any tokens
are spent finishing it — which is how it finds solutions to problems the policy rarely
solves on its own. The PRM is a parameter: `prm(problem, text) -> step scores`
(the env's oracle labels for now; a learned PRM later).
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams

MAX_STEPS = 16


def beam(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
         progress: bool = False, prm=None, width: int = 4) -> list[dict]:
    """Rows like best_of_n's: one per final beam, `n_tokens` = all tokens spent on it
    (its share of the pruned expansions included), so methods compare at equal compute."""
    if prm is None:
        raise ValueError("beam search needs a PRM")
    width = max(1, min(width, n))
    expand = max(1, n // width)
    step = replace(params, stop=("\n",))
    by_id = {p.problem_id: p for p in problems}
    beams = {p.problem_id: [""] for p in problems}             # live prefixes
    done: dict[str, list[tuple[float, str]]] = {p.problem_id: [] for p in problems}
    spent = dict.fromkeys(by_id, 0)                            # tokens per problem
    bar = tqdm(total=MAX_STEPS, desc="beam search (steps)", disable=not progress, leave=False)
    for depth in range(MAX_STEPS):
        todo = [(pid, prefix) for pid, live in beams.items() for prefix in live]
        if not todo:
            break
        # the root is one beam: give it the whole budget, so the first step gets n proposals
        outs = engine.sample([by_id[pid].prompt + prefix for pid, prefix in todo],
                             n if depth == 0 else expand, replace(step, seed=params.seed + depth))
        cands: dict[str, dict[str, tuple[float, bool]]] = {}
        for (pid, prefix), row in zip(todo, outs):
            spent[pid] += sum(s.n_tokens for s in row)
            for s in row:
                text = prefix + s.text
                # a sample that did not stop at a newline hit EOS (or the budget): finished
                finished = not s.text.endswith("\n") or depth == MAX_STEPS - 1
                scores = prm(by_id[pid], text)
                cands.setdefault(pid, {})[text] = (scores[-1] if scores else 0.0, finished)
        beams = {}
        for pid, cs in cands.items():
            best = sorted(cs.items(), key=lambda kv: -kv[1][0])[:width]   # stable: policy order
            done[pid] += [(score, text) for text, (score, fin) in best if fin]
            beams[pid] = [text for text, (_, fin) in best if not fin]
        bar.update(1)
    bar.close()
    rows = []
    for p in problems:
        final = sorted(done[p.problem_id], key=lambda st: -st[0])[:width] or \
            [(0.0, t) for t in beams.get(p.problem_id, [])[:1]] or [(0.0, "")]
        for i, (_, text) in enumerate(final):
            rows.append({"problem_id": p.problem_id, "method": "beam", "sample_idx": i,
                         "text": text, "n_tokens": round(spent[p.problem_id] / len(final))})
    return rows
