"""GSM8K-style arithmetic word problems, written by the project (no dataset download): a
deterministic generator of question / worked solution / answer. It ships the sample file
`configs/problems/arith50.jsonl` and gives the text a local BPE model is trained on.

Solutions are in GSM8K's format — steps separated by blank lines (the PRM's steps), then
`#### N` — plus the `\\boxed{N}` the math env's prompt asks for.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells"]


def _bags(r: random.Random, who: str, item: str):
    a, b, c = r.randint(2, 30), r.randint(2, 9), r.randint(2, 12)
    return (f"{who} has {a} {item}. {who} buys {b} bags with {c} {item} in each bag. "
            f"How many {item} does {who} have now?",
            [f"The bags hold {b} * {c} = {b * c} {item}.", f"{a} + {b * c} = {a + b * c}."],
            a + b * c)


def _share(r: random.Random, who: str, item: str):
    k, each, left = r.randint(2, 8), r.randint(2, 9), r.randint(1, 9)
    total = k * each + left
    return (f"{who} has {total} {item} and gives {each} to each of {k} friends. How many "
            f"{item} are left?",
            [f"{who} gives away {k} * {each} = {k * each} {item}.",
             f"{total} - {k * each} = {left}."], left)


def _weeks(r: random.Random, who: str, item: str):
    d, w, extra = r.randint(2, 9), r.randint(2, 5), r.randint(1, 20)
    return (f"{who} collects {d} {item} every day for {w} weeks, then finds {extra} more. "
            f"How many {item} does {who} collect in all?",
            [f"{w} weeks are {w} * 7 = {w * 7} days.",
             f"In those days {who} collects {w * 7} * {d} = {w * 7 * d} {item}.",
             f"{w * 7 * d} + {extra} = {w * 7 * d + extra}."], w * 7 * d + extra)


def _price(r: random.Random, who: str, item: str):
    n, p = r.randint(2, 9), r.randint(2, 15)
    paid = ((n * p) // 10 + 1) * 10 + r.choice([0, 10, 20])
    return (f"{item.capitalize()} cost {p} dollars each. {who} buys {n} of them and pays with "
            f"{paid} dollars. How much change does {who} get?",
            [f"{n} {item} cost {n} * {p} = {n * p} dollars.",
             f"The change is {paid} - {n * p} = {paid - n * p} dollars."], paid - n * p)


def _half(r: random.Random, who: str, item: str):
    h = r.randint(3, 40)
    more = r.randint(1, 15)
    return (f"{who} had {2 * h} {item} and lost half of them, then got {more} more. How many "
            f"{item} does {who} have?",
            [f"Half of {2 * h} is {2 * h} / 2 = {h}.", f"{h} + {more} = {h + more}."],
            h + more)


TEMPLATES = [_bags, _share, _weeks, _price, _half]


def generate(n: int, seed: int = 0) -> list[dict]:
    """n problems: {question, answer (GSM8K style: steps, blank lines, #### N), solution,
    final}."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        q, steps, final = TEMPLATES[i % len(TEMPLATES)](r, r.choice(NAMES), r.choice(ITEMS))
        solution = "\n\n".join([*steps, f"The answer is \\boxed{{{final}}}."])
        out.append({"question": q, "answer": "\n\n".join(steps) + f"\n#### {final}",
                    "solution": solution, "final": final})
    return out


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) +
                            "\n" for r in rows))
    return path


if __name__ == "__main__":   # regenerate the shipped sample
    write_jsonl(generate(50, seed=8), Path("configs/problems/arith50.jsonl"))
