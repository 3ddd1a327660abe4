"""Step-level beam search guided by a PRM, and diverse verifier tree search (DVTS).

Both grow solutions one *step* (up to the env's step separator) at a time and let the PRM
prune: a wrong first step is dropped before any tokens are spent finishing it, which is how
step search solves problems the policy rarely solves on its own (the roadmap's "search with
a process reward").

- beam: one tree per problem; keep the `width` best prefixes, sample n // width next steps
  from each (the root gets all n proposals).
- DVTS (Beeching et al., HF search-and-learn): n // width independent sub-trees, each keeping
  only its best prefix and sampling `width` next steps; the root's n proposals are split among
  them. Independent trees keep diversity where one beam collapses onto one answer.

The PRM is a parameter (`spec.prm`, from `reward/prm.py`): the env's oracle step labels,
Monte-Carlo labels, or the PRM fitted on D_search.
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.search.base import SearchSpec, last_scores, one_step, share


def beam(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
         spec: SearchSpec) -> list[dict]:
    width = max(1, min(spec.width, n))
    return tree_search(problems, engine, params, n, spec, trees=1, keep=width,
                       expand=max(1, n // width), method="beam")


def dvts(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
         spec: SearchSpec) -> list[dict]:
    trees = max(1, n // max(1, spec.width))
    return tree_search(problems, engine, params, n, spec, trees=trees, keep=1,
                       expand=max(1, n // trees), method="dvts")


def tree_search(problems, engine, params, n, spec, *, trees: int, keep: int, expand: int,
                method: str) -> list[dict]:
    """`trees` sub-trees per problem, each keeping its `keep` best live prefixes; at most n
    step proposals per problem per depth. Finished prefixes (the sample hit EOS, not a
    step separator) leave the beam; the best finished ones are returned, best first."""
    if spec.prm is None:
        raise ValueError(f"{method} search needs a PRM")
    sep, step = one_step(problems, params)          # one step per proposal
    by_id = {p.problem_id: p for p in problems}
    live = {(p.problem_id, 0): [""] for p in problems}        # (problem, tree) → prefixes
    done: dict[str, list[tuple[float, str]]] = {pid: [] for pid in by_id}
    spent = dict.fromkeys(by_id, 0)
    bar = tqdm(total=spec.max_steps, desc=f"{method} (steps)", disable=not spec.progress,
               leave=False)
    for depth in range(spec.max_steps):
        todo = [(key, prefix) for key, prefixes in live.items() for prefix in prefixes]
        if not todo:
            break
        outs = engine.sample([by_id[pid].prompt + prefix for (pid, _), prefix in todo],
                             n if depth == 0 else expand, replace(step, seed=params.seed + depth))
        proposals = []
        for ((pid, tree), prefix), row in zip(todo, outs):
            spent[pid] += sum(s.n_tokens for s in row)
            for i, s in enumerate(row):
                # the root's n proposals are dealt out to the sub-trees in order
                key = (pid, i * trees // len(row)) if depth == 0 else (pid, tree)
                finished = not s.text.endswith(sep) or depth == spec.max_steps - 1
                proposals.append((key, finished, prefix + s.text))
        scores = last_scores(spec, [(by_id[k[0]], text) for k, _, text in proposals])
        cands: dict[tuple, list[tuple[float, bool, str]]] = {}
        for (key, finished, text), score in zip(proposals, scores):    # one batched PRM call
            cands.setdefault(key, []).append((score, finished, text))
        live = {}
        for key, cs in cands.items():
            seen, uniq = set(), []
            for c in cs:                      # duplicates would waste a beam slot
                if c[2] not in seen:
                    seen.add(c[2])
                    uniq.append(c)
            kept = sorted(uniq, key=lambda c: -c[0])[:keep]       # stable: policy order on ties
            if spec.trace is not None:
                spec.trace.append({"method": method, "problem_id": key[0], "depth": depth,
                                   "candidates": [(c[0], c[2]) for c in uniq],
                                   "kept": [(c[0], c[2]) for c in kept]})
            done[key[0]].extend((c[0], c[2]) for c in kept if c[1])
            if rest := [c[2] for c in kept if not c[1]]:
                live[key] = rest
        bar.update(1)
    bar.close()
    rows = []
    for p in problems:
        final = sorted(done[p.problem_id], key=lambda st: -st[0])[:keep * trees] or [(0.0, "")]
        for i, ((_, text), tok) in enumerate(zip(final, share(spent[p.problem_id], len(final)))):
            rows.append({"problem_id": p.problem_id, "method": method, "sample_idx": i,
                         "text": text, "n_tokens": tok})
    return rows
