"""Sequential revision (Snell et al. 2024; the roadmap's "sequential search"): the policy
sees its failed attempt plus the verifier's feedback and tries again, up to R rounds.

Budget n = attempts per problem: n // R independent chains of up to R attempts (fewer chains
than one → one chain of n attempts). A chain stops as soon as the ORM accepts its attempt.
The revision prompt is plain text the policy learns from the flywheel's own failures (the
filter stage's `revision` examples: failed attempt + feedback → a correct solution):

    12 5 3>51            the problem prompt
    12*5=60 [3 60]       the failed attempt
    60-3=57 [57]
    fix: result 57 but target 51
    ...                  the new attempt (what the policy generates)
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.search.base import SearchSpec

MAX_ATTEMPT_CHARS = 200     # a runaway attempt is cut, so revision prompts stay short


def revision_prompt(prompt: str, attempt: str, feedback: str) -> str:
    attempt = attempt[:MAX_ATTEMPT_CHARS].rstrip("\n")
    return f"{prompt}{attempt}\nfix: {feedback}\n" if attempt else f"{prompt}fix: {feedback}\n"


def revise(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
           spec: SearchSpec) -> list[dict]:
    """Every attempt is a row (sample_idx = chain * R + round), with exactly its own tokens."""
    if spec.feedback is None:
        raise ValueError("revision needs verifier feedback (an env with `feedback`)")
    chains = max(1, n // spec.rounds)
    rounds = max(1, min(spec.rounds, n // chains))
    by_id = {p.problem_id: p for p in problems}
    first = engine.sample([p.prompt for p in problems], chains, params)
    rows, live = [], []
    for p, row in zip(problems, first):
        for c, s in enumerate(row):
            rows.append(_row(p, c * rounds, s))
            live.append((p.problem_id, c, s.text))
    for r in tqdm(range(1, rounds), desc="revise (rounds)", disable=not spec.progress,
                  leave=False):
        todo = []
        for pid, c, text in live:
            fb = spec.feedback(by_id[pid], text)      # None: the verifier accepts it
            if fb is not None:
                todo.append((pid, c, revision_prompt(by_id[pid].prompt, text, fb)))
        if spec.trace is not None:
            spec.trace.extend({"method": "revise", "problem_id": pid, "round": r, "prompt": pr}
                              for pid, _, pr in todo)
        if not todo:
            break
        outs = engine.sample([pr for _, _, pr in todo], 1, replace(params, seed=params.seed + r))
        live = []
        for (pid, c, _), row in zip(todo, outs):
            rows.append(_row(by_id[pid], c * rounds + r, row[0]))
            live.append((pid, c, row[0].text))
    return rows


def _row(p: Problem, idx: int, s) -> dict:
    return {"problem_id": p.problem_id, "method": "revise", "sample_idx": idx,
            "text": s.text, "n_tokens": s.n_tokens}
