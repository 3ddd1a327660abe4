"""The run report people look at: one self-contained HTML page (PNGs inlined, and written
beside it) built from the DuckDB store alone — train-time and test-time scaling, reward and
length distributions, D_search / D_expert growth, phases, promotions, and example
trajectories (the best one, and a typical failure)."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import polars as pl

from reasonloop.errors import ReasonloopError
from reasonloop.eval import report_plots, scaling
from reasonloop.eval.plots import plot_test_time
from reasonloop.store import db

TRAINING = db.SEARCH_ROWS      # D_search (and GRPO's samples), not evaluation


def iterations(db_path: Path, run_id: str) -> pl.DataFrame:
    return db.query(db_path, """
        SELECT i.iteration, i.phase, p.val_pass1, p.test_pass1, p.test_passk, p.test_majk,
          i.n_search, i.n_expert, (i.seconds->>'$.total')::DOUBLE AS seconds,
          (SELECT max(model_version) FROM evals e WHERE e.run_id = i.run_id
             AND e.iteration = i.iteration) AS version,
          (SELECT max(decision) FROM promotions g WHERE g.run_id = i.run_id
             AND g.iteration = i.iteration) AS gate
        FROM iterations i LEFT JOIN pass_by_iteration p
          ON p.run_id = i.run_id AND p.iteration = i.iteration
        WHERE i.run_id = $run ORDER BY i.iteration""", {"run": run_id})


# Per-iteration distributions show the last WINDOW iterations: after a hundred nights the
# report (written at the end of every turn) would otherwise read and draw every one of them.
WINDOW = 12


def trajectories(db_path: Path, run_id: str) -> pl.DataFrame:
    """Training trajectories of the last WINDOW iterations with one reward each: shaped,
    else mean PRM step, else ORM."""
    df = db.query(db_path, f"""
        SELECT iteration, correct, n_tokens, shaped_reward, outcome_reward,
          list_avg(step_rewards) AS step_mean
        FROM trajectories WHERE run_id = $run AND {TRAINING} AND iteration > (
          SELECT max(iteration) FROM iterations WHERE run_id = $run) - {WINDOW}""",
                  {"run": run_id})
    kind = next((k for k in ("shaped_reward", "step_mean", "outcome_reward")
                 if df.height and df[k].null_count() < df.height), "outcome_reward")
    return df.with_columns(pl.col(kind).alias("reward"), pl.lit(kind).alias("reward_kind"))


def growth(db_path: Path, run_id: str) -> pl.DataFrame:
    return db.query(db_path, f"""
        SELECT i.iteration, coalesce(t.n, 0) AS n_search, coalesce(i.n_expert, 0) AS n_expert
        FROM iterations i LEFT JOIN (SELECT iteration, count(*) AS n FROM trajectories
                                     WHERE run_id = $run AND {TRAINING} GROUP BY 1) t
          ON t.iteration = i.iteration
        WHERE i.run_id = $run AND i.iteration > 0 ORDER BY i.iteration""", {"run": run_id})


def test_time(db_path: Path, run_id: str) -> tuple[int | None, dict[str, list[dict]]]:
    """Accuracy vs tokens per search method, at the latest iteration that searched."""
    df = db.query(db_path, """
        SELECT iteration, split, method, budget,
          max(value) FILTER (WHERE metric = 'accuracy') AS accuracy,
          max(value) FILTER (WHERE metric = 'tokens') AS tokens
        FROM evals WHERE run_id = $run AND metric IN ('accuracy', 'tokens')
        GROUP BY ALL ORDER BY split, method, budget""", {"run": run_id})
    if not df.height:
        return None, {}
    last = df["iteration"].max()
    df = df.filter(pl.col("iteration") == last)
    return last, {s: df.filter(pl.col("split") == s).to_dicts()
                  for s in df["split"].unique(maintain_order=True)}


def examples(db_path: Path, run_id: str) -> list[dict]:
    """The last iteration's best trajectory (correct, highest reward, shortest) and a
    typical failure (a wrong one of median length)."""
    base = f"""SELECT t.iteration, t.method, t.text, t.steps, t.step_rewards, t.correct,
        t.n_tokens, coalesce(t.shaped_reward, t.outcome_reward) AS reward, p.prompt
        FROM trajectories t JOIN problems p USING (problem_id)
        WHERE t.run_id = $run AND t.{TRAINING}
          AND t.iteration = (SELECT max(iteration) FROM trajectories
                             WHERE run_id = $run AND {TRAINING})"""
    best = db.query(db_path, f"{base} AND t.correct ORDER BY reward DESC NULLS LAST, "
                             "t.n_tokens, t.traj_id LIMIT 1", {"run": run_id})
    wrong = db.query(db_path, f"{base} AND NOT t.correct ORDER BY t.n_tokens, t.traj_id",
                     {"run": run_id})
    out = [{"label": "best", **best.row(0, named=True)}] if best.height else []
    if wrong.height:
        out.append({"label": "typical failure", **wrong.row(wrong.height // 2, named=True)})
    return out


def build(db_path: Path, run_id: str, out_dir: Path, model: str | None = None) -> dict:
    """Write out_dir/report.html (+ PNGs) for one run → {'html', 'pngs', 'seconds', ...}."""
    t0 = time.perf_counter()
    if not db.query(db_path, "SELECT 1 FROM runs WHERE run_id = $run", {"run": run_id}).height:
        raise ReasonloopError(f"no run {run_id!r} in {db_path}")
    its = iterations(db_path, run_id)
    proms = db.query(db_path, """SELECT decided_at, version, champion_version, decision,
        iteration, p_value, who, reason FROM promotions WHERE run_id = $run
        ORDER BY decided_at""", {"run": run_id})
    promoted = {r["iteration"] for r in proms.to_dicts() if r["decision"] == "promoted"}
    pngs = {"train_time": report_plots.train_time(
        its, promoted, out_dir / "train_time.png", f"train-time scaling — {run_id}")}
    scal = scaling.report(db_path, run_id, out_dir)
    pngs["scaling"] = scal["png"]
    last, tt = test_time(db_path, run_id)
    for split, results in tt.items():
        pngs[f"test_time_{split}"] = plot_test_time(
            results, out_dir / f"test_time_{split}.png",
            f"test-time scaling — iteration {last}, {split} split")
    traj = trajectories(db_path, run_id)
    if traj.height:
        pngs["distributions"] = report_plots.distributions(
            traj, out_dir / "distributions.png",
            f"D_search — {run_id} (the last {WINDOW} iterations)")
        pngs["growth"] = report_plots.data_growth(
            growth(db_path, run_id), out_dir / "data_growth.png",
            f"D_search / D_expert growth — {run_id}")
    body = _body(run_id, model, its, proms, pngs, scal, examples(db_path, run_id), tt)
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>reasonloop "
        f"{html.escape(run_id)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
    return {"html": out_dir / "report.html", "body": body, "pngs": pngs, "iterations": its,
            "promotions": proms, "fits": scal["fits"], "scaling_md": scal["md"],
            "markdown": scal["markdown"], "seconds": time.perf_counter() - t0}


# ---- HTML ------------------------------------------------------------------------------

CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap}.ok{color:#2e7d32}.bad{color:#c62828}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}.muted{color:#777}"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" data-file="{Path(path).name}" ' \
           f'src="data:image/png;base64,{data}">'


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):                      # p-values stay readable: 7.47e-13
        return f"{v:.3g}" if 0 < abs(v) < 1e-3 else f"{v:.3f}"
    return html.escape(str(v))


def _table(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.rows())
    return f"<table><tr>{head}</tr>{body}</table>"


def _example(e: dict) -> str:
    steps = e.get("steps") or []
    rewards = e.get("step_rewards") or []
    rows = "".join(f"<tr><td>{i + 1}</td><td style='text-align:left'><code>{html.escape(s)}"
                   f"</code></td><td>{_cell(rewards[i] if i < len(rewards) else None)}</td></tr>"
                   for i, s in enumerate(steps))
    verdict = '<span class="ok">correct</span>' if e["correct"] else \
        '<span class="bad">wrong</span>'
    return (f"<h3>{html.escape(e['label'])}: iteration {e['iteration']}, {html.escape(e['method'])}"
            f", {verdict}, {e['n_tokens']} tokens, reward {_cell(e['reward'])}</h3>\n"
            # each <pre> opens a line: Markdown (the Prefect artifact) keeps its blank lines
            f"<pre>{html.escape(e['prompt'])}</pre>\n<pre>{html.escape(e['text'])}</pre>\n"
            + (f"<table><tr><th>step</th><th>text</th><th>PRM</th></tr>{rows}</table>"
               if rows else ""))


def _body(run_id, model, its, proms, pngs, scal, exs, tt) -> str:
    """The page's body: also what the Prefect artifact shows (its markdown renders HTML)."""
    last = its.filter(pl.col("test_pass1").is_not_null()).tail(1).to_dicts()
    head = (f"test pass@1 <b>{_cell(its['test_pass1'][0])}</b> → <b>{_cell(last[0]['test_pass1'])}"
            f"</b> over {its.height - 1} iterations" if last and its.height else "no evals yet")
    phases = " → ".join(f"{p} (from iteration {i})" for i, p in _phase_changes(its))
    fits = "".join(f"<li>{html.escape(f['phase'])}: test pass@1 = {f['a']:.3f} + {f['b']:.3f}"
                   f"·log10({html.escape(f['axis'])}), R² {f['r2']:.2f} ({f['n']} points)</li>"
                   for f in scal["fits"])
    test_time_imgs = "".join(_img(pngs[f"test_time_{s}"], f"test-time scaling {s}") for s in tt)
    parts = [
        f"<h1>reasonloop run {html.escape(run_id)}</h1>",
        f"<p>{head}. Model <code>{html.escape(model or '')}</code>. Phases: {phases}. "
        f"<span class='muted'>Written {time.strftime('%Y-%m-%d %H:%M:%S')}.</span></p>",
        "<h2 id='train-time'>Train-time scaling</h2>",
        _img(pngs["train_time"], "pass@1 by iteration"), _table(its),
        _img(pngs["scaling"], "pass@1 vs iterations, training and generated tokens"),
        f"<ul>{fits}</ul>",
        "<h2 id='test-time'>Test-time scaling</h2>",
        test_time_imgs or "<p class='muted'>No test-time search in this run "
                          "(eval.search_methods is empty).</p>",
        "<h2 id='distributions'>Reward and length distributions</h2>",
        _img(pngs["distributions"], "reward and length distributions")
        if "distributions" in pngs else "<p class='muted'>No trajectories yet.</p>",
        "<h2 id='growth'>D_search / D_expert growth</h2>",
        _img(pngs["growth"], "D_search and D_expert growth") if "growth" in pngs else "",
        "<h2 id='promotions'>Promotions</h2>",
        _table(proms) if proms.height else "<p class='muted'>No gate decisions yet.</p>",
        "<h2 id='examples'>Example trajectories</h2>",
        "".join(_example(e) for e in exs) or "<p class='muted'>None yet.</p>",
    ]
    return "\n".join(parts)


def _phase_changes(its: pl.DataFrame) -> list[tuple[int, str]]:
    out, prev = [], None
    for r in its.to_dicts():
        if r["phase"] != prev:
            out.append((r["iteration"], r["phase"]))
            prev = r["phase"]
    return out
