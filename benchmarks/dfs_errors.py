"""Benchmark reading: where a DFS-trace policy's greedy outputs go wrong.

    python benchmarks/dfs_errors.py WORKSPACE [WORKSPACE ...] [--iteration 0] [--form diff]

For each workspace (a `reasonloop run --root`, e.g. of `configs/default.yaml`), reads the greedy
evaluation outputs of one iteration from its DuckDB file and names, for each wrong one, the
first line that leaves the reference search (`countdown_trace.departure`): a `wrong` line
is arithmetic or a state the verifier rejects, `another` a legal line the search does not
write there (for the last step: not the closest one). Arithmetic errors call for more
training or an easier format; procedure errors for different traces. Prints one markdown
table, a row per workspace and split. The run must not be holding the file (DuckDB allows one
writer process).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("wrong earlier step", "another earlier step", "wrong last step", "another last step",
         "wrong check", "wrong back", "another back", "another check", "malformed line",
         "stopped")


def count(store: Path, iteration: int, form: str) -> dict[str, Counter]:
    """{split: Counter of departures, 'correct' included}."""
    from reasonloop.envs.countdown_trace import departure
    from reasonloop.store import db
    rows = db.query(store, "SELECT p.split, p.meta, t.text FROM trajectories t JOIN problems p "
                           "USING (problem_id) WHERE t.method = 'eval:greedy' "
                           "AND t.iteration = $it", {"it": iteration})
    out: dict[str, Counter] = {}
    for split, meta, text in rows.iter_rows():
        m = json.loads(meta)
        out.setdefault(split, Counter())[departure(m["numbers"], m["target"], text, form)
                                         or "correct"] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspaces", nargs="+", type=Path)
    ap.add_argument("--iteration", type=int, default=0)
    ap.add_argument("--form", default="diff", help="the check form the traces were written in")
    a = ap.parse_args()
    print(f"greedy outputs of iteration {a.iteration}: the first line that leaves the "
          "reference search\n")
    cols = ("correct",) + KINDS
    print("| workspace | split | problems | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for ws in a.workspaces:
        store = ws / "reasonloop.duckdb"
        if not store.exists():
            sys.exit(f"error: no {store}")
        for split, seen in sorted(count(store, a.iteration, a.form).items()):
            print(f"| {ws.name} | {split} | {seen.total()} | "
                  + " | ".join(str(seen[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
