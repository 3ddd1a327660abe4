"""Monte-Carlo tree search over reasoning steps (AlphaZero-style PUCT, as in the roadmap's
"tree search" for LLM reasoning: rStar, TS-LLM, AlphaMath).

Nodes are step prefixes. One *simulation*: select a path from the root by PUCT
(Q + c·P·√N_parent / (1 + N)); expand the leaf by sampling `spec.expand` next steps (the
prior P of a distinct step = the share of proposals that were it; a node whose children all
look no better than itself is widened with another batch); value the leaf by the PRM's
score of it (its children start from theirs), or by one rollout to the end judged by the
ORM (`spec.value`); back the
value up the path. The budget `n` is the number of simulations per problem (so the root's
visit count is exactly n), optionally cut by `spec.token_budget`. Simulations run in lock-step
over all problems, so every expansion is one batched `engine.sample` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from reasonloop.envs.base import Problem
from reasonloop.policy.engines.base import Engine, SamplingParams
from reasonloop.search.base import SearchSpec, last_scores, one_step, share


@dataclass(eq=False)
class Node:
    text: str                   # the completion prefix (whole steps)
    proposals: int = 1          # times the policy proposed this step: prior ∝ proposals
    v0: float = 0.0             # the PRM's score when the node was created
    visits: int = 0
    value_sum: float = 0.0
    finished: bool = False      # the policy ended here (EOS) or the depth limit was hit
    depth: int = 0
    expansions: int = 0         # batches of next steps sampled here
    children: list[Node] = field(default_factory=list)

    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.v0


def widen(node: Node) -> bool:
    """Progressive widening: sample more next steps at a visited node when none of its
    children looks better than the node itself, at most 1 + √N batches — without
    it, one unlucky first batch of k proposals fixes the tree's shape for good."""
    if node.finished or not node.children:
        return False
    allowed = 1 + int(math.sqrt(node.visits))
    return node.expansions < allowed and max(ch.q() for ch in node.children) <= node.q()


def select(root: Node, c_puct: float) -> list[Node]:
    """Descend by PUCT to a node to expand (a leaf, or one to widen) or a finished one;
    ties go to the first child."""
    path = [root]
    node = root
    while node.children and not node.finished and not widen(node):
        sq = math.sqrt(node.visits)
        total = sum(ch.proposals for ch in node.children)
        node = max(node.children, key=lambda ch: ch.q() + c_puct * ch.proposals / total * sq
                   / (1 + ch.visits))
        path.append(node)
    return path


def mcts(problems: list[Problem], engine: Engine, params: SamplingParams, n: int,
         spec: SearchSpec) -> list[dict]:
    if spec.prm is None:
        raise ValueError("MCTS needs a PRM (for values, or at least for ranking answers)")
    if spec.value == "rollout" and spec.orm is None:
        raise ValueError("MCTS with rollout values needs an ORM (the env's verifier)")
    sep, step = one_step(problems, params)          # one step per expansion
    by_id = {p.problem_id: p for p in problems}
    roots = {pid: Node("") for pid in by_id}
    spent = dict.fromkeys(by_id, 0)
    rollouts: dict[str, list[tuple[float, str]]] = {pid: [] for pid in by_id}
    for sim in tqdm(range(n), desc="mcts (simulations)", disable=not spec.progress, leave=False):
        active = [pid for pid in by_id
                  if spec.token_budget is None or spent[pid] < spec.token_budget]
        if not active:
            break
        paths = {pid: select(roots[pid], spec.c_puct) for pid in active}
        grow = [pid for pid in active if not paths[pid][-1].finished]
        outs = engine.sample([by_id[pid].prompt + paths[pid][-1].text for pid in grow],
                             spec.expand, replace(step, seed=params.seed + sim)) if grow else []
        values = {pid: paths[pid][-1].v0 for pid in active}      # the PRM's value of the leaf
        fresh: list[tuple[Problem, Node]] = []
        for pid, row in zip(grow, outs):
            leaf, p = paths[pid][-1], by_id[pid]
            spent[pid] += sum(s.n_tokens for s in row)
            leaf.expansions += 1
            known = {ch.text: ch for ch in leaf.children}
            for s in row:
                full = leaf.text + s.text
                if full in known:            # proposed again: more prior mass
                    known[full].proposals += 1
                    continue
                known[full] = Node(full, finished=not s.text.endswith(sep)
                                   or leaf.depth + 1 >= spec.max_steps, depth=leaf.depth + 1)
                leaf.children.append(known[full])
                fresh.append((p, known[full]))
        for (_, node), v in zip(fresh, last_scores(spec, [(p, nd.text) for p, nd in fresh])):
            node.v0 = v                                          # one batched PRM call
        if spec.value == "rollout" and grow:
            # one rollout from each new leaf: its outcome is the value, its text a candidate
            leaves = [paths[pid][-1] for pid in grow]
            outs = engine.sample([by_id[pid].prompt + lf.text for pid, lf in zip(grow, leaves)],
                                 1, replace(params, seed=params.seed + 7919 + sim))
            for pid, lf, row in zip(grow, leaves, outs):
                full = lf.text + row[0].text
                spent[pid] += row[0].n_tokens
                values[pid] = 1.0 if spec.orm(by_id[pid], full) else 0.0
                rollouts[pid].append((values[pid], full))
        for pid in active:                                       # backup
            for node in paths[pid]:
                node.visits += 1
                node.value_sum += values[pid]
    if spec.trace is not None:
        spec.trace.extend({"method": "mcts", "problem_id": pid, "root_visits": r.visits,
                           "root_expansions": r.expansions,
                           "child_visits": [c.visits for c in r.children]}
                          for pid, r in roots.items())
    rows = []
    for p in problems:
        final = _answers(roots[p.problem_id], rollouts[p.problem_id])[:max(1, n)]
        for i, ((_, text), tok) in enumerate(zip(final, share(spent[p.problem_id], len(final)))):
            rows.append({"problem_id": p.problem_id, "method": "mcts", "sample_idx": i,
                         "text": text, "n_tokens": tok})
    return rows


def _answers(root: Node, rollouts: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Finished leaves and rollouts, best first (score, then visits); distinct texts. With
    nothing finished, the most-visited path (an unfinished, hence wrong, answer)."""
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.finished:
            found.append((node.v0, node.visits, node.text))
        stack.extend(reversed(node.children))
    found += [(v, 0, t) for v, t in rollouts]
    found.sort(key=lambda f: (-f[0], -f[1]))
    seen, out = set(), []
    for v, _, text in found:
        if text not in seen:
            seen.add(text)
            out.append((v, text))
    if not out:
        node = root
        while node.children:
            node = max(node.children, key=lambda ch: ch.visits)
        out = [(0.0, node.text)]
    return out
