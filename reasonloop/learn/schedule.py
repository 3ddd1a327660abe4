"""Which learner runs an iteration. The roadmap's order (as in Llama 2/3): BC first (cheap,
stable), then preferences (DPO), then RL (GRPO). A phase ends when it stops paying — the val
pass@1 gain of its last iteration is below `learn.plateau` — or after `learn.max_iterations`
iterations. `learn.phases` fixes the phase of every iteration instead (the last repeats)."""

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
    if len(history) >= 2:
        gain = (history[-1].get("val_pass@1") or 0) - (history[-2].get("val_pass@1") or 0)
        if gain < learn.plateau:
            return schedule[idx + 1]
    return last
