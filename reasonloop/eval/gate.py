"""The promotion gate: a challenger replaces the champion only if a paired test on the same
val problems says it is better — not because val pass@1 moved by noise.

McNemar's exact test on discordant problems: b = solved by the champion only, c = solved by
the challenger only; under "no better", c ~ Binomial(b + c, 1/2). One-sided p = P(X ≥ c).
"""

from __future__ import annotations

from math import comb
from pathlib import Path

from reasonloop.store import db


def mcnemar_p(b: int, c: int) -> float:
    """One-sided exact p-value that the challenger (c wins) beats the champion (b wins)."""
    n = b + c
    if n == 0:
        return 1.0
    return sum(comb(n, i) for i in range(c, n + 1)) / 2 ** n


def decide(champion: dict[str, bool], challenger: dict[str, bool], alpha: float) -> dict:
    """champion/challenger: problem_id → solved, on the same val problems."""
    common = champion.keys() & challenger.keys()
    b = sum(champion[p] and not challenger[p] for p in common)
    c = sum(challenger[p] and not champion[p] for p in common)
    p = mcnemar_p(b, c)
    return {"n": len(common), "b": b, "c": c, "p_value": p, "alpha": alpha,
            "promote": bool(common) and c > b and p < alpha}


VAL_OUTCOMES = """SELECT t.problem_id, bool_or(t.correct) AS ok FROM trajectories t
  JOIN problems p USING (problem_id) WHERE p.split = 'val' AND t.method = 'eval:greedy'
  AND t.run_id = $r AND t.iteration = $i GROUP BY 1"""


def promotion(db_path: Path, champion_tags: dict | None, run_id: str, iteration: int,
              score: float, best: float, alpha: float | None, metric: str) -> tuple[bool, dict]:
    """The gate for one registered iteration: McNemar on the val problems both models answered
    greedily when the champion's outcomes are in this store; else (or with alpha None) the
    plain metric comparison. → (promote?, the decision's record)."""
    if champion_tags is None:
        return True, {"decision": "promoted", "reason": "first champion"}
    mine = dict(db.query(db_path, VAL_OUTCOMES, {"r": run_id, "i": iteration}).iter_rows())
    ch_run, ch_it = champion_tags.get("run_id"), champion_tags.get("iteration")
    theirs = dict(db.query(db_path, VAL_OUTCOMES, {"r": ch_run, "i": int(ch_it)}).iter_rows()) \
        if ch_run and ch_it not in (None, "") else {}
    if alpha is None or not theirs or not mine:
        ok = score > best
        return ok, {"decision": "promoted" if ok else "refused",
                    "reason": f"{metric} {score:.3f} vs {best:.3f}"}
    d = decide(theirs, mine, alpha)
    return d["promote"], {"decision": "promoted" if d["promote"] else "refused",
                          **{k: d[k] for k in ("n", "b", "c", "p_value", "alpha")},
                          "reason": f"McNemar: {d['c']} newly solved vs {d['b']} lost, "
                                    f"p={d['p_value']:.3g} (alpha {alpha})"}
