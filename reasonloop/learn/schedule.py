"""Which learner runs an iteration. The roadmap's order (as in Llama 2/3): BC first (cheap,
stable), then preferences (DPO), then RL (GRPO). A phase ends when it stops paying — none of
its last `learn.patience` iterations beat the val pass@1 from before them by `learn.plateau` —
or after `learn.max_iterations` iterations. `learn.phases` fixes the phase of every iteration
instead (the last repeats). Val pass@1 on a few hundred problems moves by a few points from
noise alone, so a patience of 1 can end a phase on one unlucky evaluation."""

from __future__ import annotations


def phase(learn, history: list[dict], iteration: int) -> str:
    """history: per finished iteration {'phase': .., 'val_pass@1': ..}, oldest first
    (iteration 0, the initial policy, has phase 'init')."""
    if learn.phases:
        return learn.phases[min(iteration, len(learn.phases)) - 1]
    schedule = learn.schedule
    last = history[-1]["phase"] if history else None
    if last not in schedule:
        return schedule[0]
    idx = schedule.index(last)
    if idx + 1 == len(schedule):
        return last
    in_phase = 0
    for h in reversed(history):
        if h["phase"] != last:
            break
        in_phase += 1
    if learn.max_iterations is not None and in_phase >= learn.max_iterations:
        return schedule[idx + 1]
    k = learn.patience
    if in_phase >= k and len(history) > k:
        vals = [h.get("val_pass@1") or 0 for h in history]
        if max(vals[-k:]) - vals[-k - 1] < learn.plateau:
            return schedule[idx + 1]
    return last
