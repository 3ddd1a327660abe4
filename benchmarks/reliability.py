"""Reliability at the direct recipe's size (configs/direct.yaml): the scenario of
tests/e2e/test_resume.py with real BC data (the smoke policy solves nothing, so there BC
trains 0 steps) and a real GRPO phase.

A reference run goes straight through with a transient failure in every stage while
`reasonloop sql` / `models` read in a loop; a second run is SIGKILLed mid-stage at each
fault point in turn and rerun each time. Prints (and writes results/reliability.md): kills
survived per point, duplicates, differences from the reference, reader errors and latency.

    python benchmarks/reliability.py [--problems 300] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_resume import TRANSIENT, _cli, _read_loop  # noqa: E402

from reasonloop.paths import Paths  # noqa: E402
from reasonloop.store import db  # noqa: E402

SAVE = 20
KILLS = ["generate:1", "verify:1", "filter:1", f"train-step:{SAVE}", "evaluate:1",
         "register:1", f"train-step:{SAVE}"]       # the last one inside iteration 2's GRPO


def run_args(ws: Path, problems: int) -> list[str]:
    sets = {"search.problems_per_iteration": problems, "search.n": 8, "learn.steps": 60,
            "learn.save_every": SAVE, "learn.phases": "[bc,grpo]", "learn.grpo.steps": 40,
            "learn.grpo.prompts_per_step": 8, "learn.grpo.num_generations": 4,
            "eval.search_methods": "[]", "run.iterations": 2, "run.name": "countdown-rel"}
    return ["run", "-c", str(ROOT / "configs" / "direct.yaml"), "--root", str(ws),
            "--run-id", "r", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]


def compare(ref: Path, got: Path) -> dict:
    q = ("SELECT traj_id, iteration, method, text, correct FROM trajectories "
         "ORDER BY traj_id")
    a, b = db.query(Paths(ref).db, q), db.query(Paths(got).db, q)
    key = "SELECT count(*) - count(DISTINCT (run_id, iteration, problem_id, method, " \
          "sample_idx)) AS d FROM trajectories"
    joined = a.join(b, on="traj_id", how="inner", suffix="_k")
    it = "SELECT iteration, n_expert FROM iterations ORDER BY 1"
    m = "SELECT * FROM pass_by_iteration ORDER BY iteration"
    return {"trajectories (reference)": a.height, "trajectories (killed)": b.height,
            "same ids": set(a["traj_id"]) == set(b["traj_id"]),
            "same texts": int((joined["text"] == joined["text_k"]).sum()),
            "duplicates": int(db.query(Paths(got).db, key)["d"][0]),
            "same D_expert sizes": db.query(Paths(ref).db, it).equals(
                db.query(Paths(got).db, it)),
            "same metrics": db.query(Paths(ref).db, m).equals(
                db.query(Paths(got).db, m))}


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between reads")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="reliability-"))
    (tmp / "ref").mkdir()
    (tmp / "kill").mkdir()
    ref, ws = tmp / "ref" / "ws", tmp / "kill" / "ws"

    stop, reads, run = threading.Event(), [], {}
    reader = threading.Thread(target=_read_loop, args=(ref, stop, reads, run, a.pause))
    reader.start()
    t0 = time.perf_counter()
    done = _cli(run_args(ref, a.problems), tmp / "ref", run, REASONLOOP_TRANSIENT=TRANSIENT)
    ref_s = time.perf_counter() - t0
    stop.set()
    reader.join()
    assert done.returncode == 0, done.stderr[-3000:]
    retried = sum(done.stderr.count(f"transient failure {s.split(':')[1]} at {s.split(':')[0]}:")
                  for s in TRANSIENT.split(","))

    rows, t0 = [], time.perf_counter()
    for spec in KILLS:
        t1 = time.perf_counter()
        k = _cli(run_args(ws, a.problems), tmp / "kill", REASONLOOP_CRASH_AT=spec)
        rows.append({"kill point": spec, "exit": k.returncode,
                     "killed there": f"SIGKILL at {spec}" in k.stderr,
                     "seconds": round(time.perf_counter() - t1, 1)})
        print(rows[-1], flush=True)
    final = _cli(run_args(ws, a.problems), tmp / "kill")
    kill_s = time.perf_counter() - t0
    assert final.returncode == 0, final.stderr[-3000:]

    lat = sorted(r["seconds"] for r in reads)
    res = {**compare(ref, ws), "kills survived": sum(r["exit"] == -9 and r["killed there"]
                                                     for r in rows),
           "transient failures retried": f"{retried} of {len(TRANSIENT.split(','))} stages",
           "reader calls": len(reads), "reader errors": sum(r["rc"] != 0 for r in reads),
           "reader p50 s": round(statistics.median(lat), 2) if lat else None,
           "reader p95 s": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
           "listening": ", ".join(sorted(run.get("listen", set()))),
           "reference run s": round(ref_s, 0), "killed run, all launches s": round(kill_s, 0)}
    md = ["# Reliability at default size", "", header(), "",
          f"`python benchmarks/reliability.py --problems {a.problems}`: default config, 2 "
          "iterations (BC, then GRPO), 60 BC steps, 40 GRPO steps, checkpoints every "
          f"{SAVE} steps.", "", _md(rows), "",
          _md([{"measure": k, "value": v} for k, v in res.items()])]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "reliability.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def _md(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


if __name__ == "__main__":
    main()
