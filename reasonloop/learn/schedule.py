"""Which learner runs this iteration. The roadmap's order is BC first (cheap, stable), then
preferences (DPO), then RL (GRPO); the switch happens when BC stops paying: its val gain over
the last iteration falls below `min_gain`. Only phases listed in `learn.schedule` are used."""

from __future__ import annotations


def phase(schedule: list[str], history: list[dict], min_gain: float = 0.01) -> str:
    """history: per finished iteration {'phase': .., 'val_pass@1': ..}, oldest first."""
    current = history[-1]["phase"] if history and history[-1].get("phase") in schedule \
        else schedule[0]
    idx = schedule.index(current)
    if idx + 1 < len(schedule) and len(history) >= 2:
        gain = (history[-1].get("val_pass@1") or 0) - (history[-2].get("val_pass@1") or 0)
        if gain < min_gain:
            return schedule[idx + 1]
    return current
