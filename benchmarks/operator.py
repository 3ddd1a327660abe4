"""The operator's numbers: time from `reasonloop ui` to both UIs answering, and the time to
build the run report of a finished run (5 iterations by default).

    python benchmarks/operator.py [--root WS --run ID] [--repeats 3] [--out benchmarks/results]

Without --root, a 5-iteration smoke run is made in a temp workspace first. Prints a table
and writes results/operator.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasonloop.paths import Paths  # noqa: E402
from reasonloop.servers import free_port, healthy, port_free  # noqa: E402
from reasonloop.store import db  # noqa: E402


def time_ui(ws: Path, home: Path) -> dict:
    """Wall seconds from spawning `reasonloop ui` until both health endpoints answer (seen
    from outside), and the time to stop both after SIGINT."""
    pp, mp = free_port(), free_port()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "reasonloop.cli", "ui", "--root", str(ws),
                             "-c", str(ROOT / "configs" / "smoke.yaml"),
                             "--set", f"serve.prefect_port={pp}",
                             "--set", f"serve.mlflow_port={mp}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    up = {}
    while len(up) < 2 and time.perf_counter() - t0 < 180:
        for name, url in (("prefect", f"http://127.0.0.1:{pp}/api/health"),
                          ("mlflow", f"http://127.0.0.1:{mp}/health")):
            if name not in up and healthy(url):
                up[name] = time.perf_counter() - t0
        time.sleep(0.1)
    t1 = time.perf_counter()
    proc.send_signal(2)
    rc = proc.wait(60)
    return {"prefect_s": up.get("prefect"), "mlflow_s": up.get("mlflow"),
            "both_s": max(up.values()) if len(up) == 2 else None,
            "stop_s": time.perf_counter() - t1, "rc": rc,
            "ports_freed": port_free("127.0.0.1", pp) and port_free("127.0.0.1", mp)}


def time_report(ws: Path, run_id: str) -> dict:
    from reasonloop.stages.register import report
    from reasonloop.workspace import stored_config
    cfg = stored_config(Paths(ws).db, run_id, root=ws)
    t0 = time.perf_counter()
    rep = report(cfg, run_id)
    total = time.perf_counter() - t0
    n = db.query(Paths(ws).db, "SELECT count(*) AS n FROM trajectories WHERE "
                 "run_id = $r", {"r": run_id})["n"][0]
    return {"build_s": rep["seconds"], "with_mlflow_s": total, "iterations":
            rep["iterations"].height - 1, "trajectories": n, "plots": len(rep["pngs"]),
            "html_kb": rep["html"].stat().st_size / 1024}


def main() -> None:
    from reasonloop.compute import header
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path)
    ap.add_argument("--run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rl-operator-"))
    ws = a.root
    if ws is None:
        ws = tmp / "ws"
        subprocess.run([sys.executable, "-m", "reasonloop.cli", "run", "-c",
                        str(ROOT / "configs" / "smoke.yaml"), "--root", str(ws), "-n", "5"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    ws = ws.resolve()
    from reasonloop.workspace import latest_run
    run_id = a.run or latest_run(Paths(ws).db)
    uis = [time_ui(ws, tmp / f"prefect-{i}") for i in range(a.repeats)]
    reps = [time_report(ws, run_id) for _ in range(a.repeats)]
    med = lambda rows, k: statistics.median(r[k] for r in rows)    # noqa: E731
    lines = [f"# Operator numbers — {time.strftime('%Y-%m-%d')}", "", header(), "",
             f"`reasonloop ui` ({a.repeats} starts, fresh Prefect home each; seconds from "
             "spawning the command until each health endpoint answers)", "",
             "| start | Prefect UI | MLflow UI | both | stop after Ctrl-C | exit | ports freed |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {r['prefect_s']:.1f} | {r['mlflow_s']:.1f} | {r['both_s']:.1f} | "
              f"{r['stop_s']:.1f} | {r['rc']} | {r['ports_freed']} |" for i, r in enumerate(uis)]
    lines += ["", f"median both: **{med(uis, 'both_s'):.1f} s**", "",
              f"Report of run `{run_id}` ({reps[0]['iterations']} iterations, "
              f"{reps[0]['trajectories']:,} trajectories, {reps[0]['plots']} plots, "
              f"{reps[0]['html_kb']:.0f} KiB page)", "",
              "| build | HTML + PNGs (s) | + MLflow logging (s) |", "|---|---|---|"]
    lines += [f"| {i + 1} | {r['build_s']:.2f} | {r['with_mlflow_s']:.2f} |"
              for i, r in enumerate(reps)]
    lines += ["", f"median: **{med(reps, 'build_s'):.2f} s** page, "
                  f"**{med(reps, 'with_mlflow_s'):.2f} s** with MLflow"]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "operator.md").write_text(text)


if __name__ == "__main__":
    main()
