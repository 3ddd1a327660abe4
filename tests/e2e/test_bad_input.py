"""The bad-input catalogue: every case gets exactly one line on stderr (`error: ...`), a
non-zero exit, no traceback — and every store in the workspace stays byte for byte as it
was. Configs, problem files, model dirs, stores, CLI refs."""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT, SMOKE, _clean_env

NAME = "countdown-smoke"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_dir):
    """A workspace with every store in it: DuckDB (problems, a run), DVC, MLflow with a
    registered champion."""
    from reasonloop.config import load_config
    from reasonloop.stages.start import start_run
    from reasonloop.store import registry
    root = tmp_path_factory.mktemp("bad") / "ws"
    cfg = load_config(SMOKE, [f"run.root={root}"])
    start_run(cfg, "r")
    v = registry.log_iteration(NAME, root / "mlartifacts", "r/iter00", {}, {"val_pass@1": 0.1},
                               tiny_model_dir, [], {"run_id": "r", "iteration": 0})
    registry.promote(NAME, v)
    return root


def _digest(*dirs: Path) -> dict:
    out = {}
    for d in dirs:
        for p in sorted(Path(d).rglob("*")) if Path(d).exists() else []:
            out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mismatched_model(tmp: Path, model: Path) -> Path:
    """The tiny model with a tokenizer that has more tokens than its embedding has rows."""
    from reasonloop.policy.tokenizer import build_char_tokenizer
    out = tmp / "mismatch"
    shutil.copytree(model, out)
    tok = build_char_tokenizer()
    tok.add_tokens([f"<extra{i}>" for i in range(64)])
    tok.save_pretrained(out)
    return out


def _foreign_duckdb(tmp: Path) -> Path:
    root = tmp / "foreign"
    root.mkdir()
    con = duckdb.connect(str(root / "reasonloop.duckdb"))
    con.execute("CREATE TABLE sales (id INT, amount DOUBLE); INSERT INTO sales VALUES (1, 2.5)")
    con.close()
    return root


def _other_file_as(tmp: Path, name: str) -> Path:
    root = tmp / f"other-{name}"
    root.mkdir()
    (root / name).write_text("id,amount\n1,2.5\n")
    return root


RUN, EVAL = ["run", "-c", str(SMOKE)], ["eval", "-c", str(SMOKE)]
CD_OK = '{"numbers": [3, 5], "target": 8}\n'

# (id, expected fragment of the message, args builder: (tmp, ws, model) -> args)
CASES = [
    # configs
    ("unknown key", "search.nn", lambda t, w, m: [*RUN, "--set", "search.nn=3"]),
    ("unknown key in yaml", "widht", lambda t, w, m: [
        "run", "-c", _write(t / "c.yaml", "search:\n  widht: 4\n")]),
    ("unknown section", "serch", lambda t, w, m: [
        "run", "-c", _write(t / "c.yaml", "serch:\n  n: 4\n")]),
    ("wrong type", "search.n", lambda t, w, m: [*RUN, "--set", "search.n=many"]),
    ("wrong type in yaml", "run.iterations", lambda t, w, m: [
        "run", "-c", _write(t / "c.yaml", "run:\n  iterations: [1, 2]\n")]),
    ("negative budget", "search.n", lambda t, w, m: [*RUN, "--set", "search.n=-4"]),
    ("zero iterations", "run.iterations", lambda t, w, m: [*RUN, "-n", "0"]),
    ("negative learning rate", "learn.lr", lambda t, w, m: [*RUN, "--set", "learn.lr=-0.001"]),
    ("missing config file", "config file not found", lambda t, w, m: [
        "run", "-c", t / "nope.yaml"]),
    ("config not yaml", "not valid YAML", lambda t, w, m: [
        "run", "-c", _write(t / "c.yaml", "search: [unclosed\n")]),
    ("config not a mapping", "mapping", lambda t, w, m: [
        "run", "-c", _write(t / "c.yaml", "- a\n- b\n")]),
    ("override without =", "section.key=value", lambda t, w, m: [*RUN, "--set", "search.n"]),
    ("unknown learning phase", "learn.schedule", lambda t, w, m: [
        *RUN, "--set", "learn.schedule=[bc,ppo]"]),
    ("alpha out of range", "eval.promote_alpha", lambda t, w, m: [
        *RUN, "--set", "eval.promote_alpha=1.5"]),
    ("problems file for countdown", "math' only", lambda t, w, m: [
        *RUN, "--set", f"env.problems_file={_write(t / 'p.jsonl', CD_OK)}"]),
    # problem files
    ("malformed jsonl", "p.jsonl:2", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems",
        _write(t / "p.jsonl", CD_OK + "{oops\n")]),
    ("missing field", "target", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems",
        _write(t / "p.jsonl", '{"numbers": [3, 5]}\n')]),
    ("unsolvable countdown", "not solvable", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems",
        _write(t / "p.jsonl", '{"numbers": [1, 2], "target": 99}\n')]),
    ("out-of-range countdown", "1..1000000", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems",
        _write(t / "p.jsonl", '{"numbers": [0, -5], "target": 3}\n')]),
    ("empty problems file", "no problems", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems", _write(t / "p.jsonl", "")]),
    ("missing problems file", "problems file not found", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "best_of_n", "--problems", t / "none.jsonl"]),
    ("math jsonl without answers", "p.jsonl:1", lambda t, w, m: [
        *RUN, "--set", "env.name=math", "--set", f"policy.path={m}", "--set",
        f"env.problems_file={_write(t / 'p.jsonl', json.dumps({'question': '1+1?'}) + chr(10))}"]),
    # model dirs
    ("missing model dir", "not a model directory", lambda t, w, m: [
        *RUN, "--set", "policy.path=/no/such/model"]),
    ("not a model", "cannot load model", lambda t, w, m: [
        *RUN, "--set", f"policy.path={_write(t / 'config.json', '{}').parent}"]),
    ("tokenizer mismatch", "do not match", lambda t, w, m: [
        *RUN, "--set", f"policy.path={_mismatched_model(t, m)}"]),
    ("eval of a missing model", "model not found", lambda t, w, m: [
        *EVAL, "-m", t / "gone"]),
    # stores
    ("another program's duckdb", "another program", lambda t, w, m: [
        *RUN, "--root", _foreign_duckdb(t)]),
    ("a csv named reasonloop.duckdb", "not a DuckDB database", lambda t, w, m: [
        *RUN, "--root", _other_file_as(t, "reasonloop.duckdb")]),
    ("a csv named mlflow.db", "not an MLflow SQLite store", lambda t, w, m: [
        *RUN, "--root", _other_file_as(t, "mlflow.db")]),
    ("workspace is a file", "is a file", lambda t, w, m: [
        *RUN, "--root", _write(t / "afile", "x")]),
    ("nothing to resume", "nothing to resume", lambda t, w, m: [
        "run", "--resume", "--root", t / "empty"]),
    # CLI refs and queries
    ("unknown alias (eval)", "model not found", lambda t, w, m: [*EVAL, "-m", f"{NAME}@nope"]),
    ("unknown alias (show)", "model not found", lambda t, w, m: [
        "models", "show", f"{NAME}@nope"]),
    ("unknown version (promote)", "cannot promote", lambda t, w, m: ["promote", NAME, "99"]),
    ("unknown model name", "no registered model", lambda t, w, m: ["models", "list", "nope"]),
    ("sql write", "read-only", lambda t, w, m: ["sql", "DELETE FROM runs"]),
    ("sql copy to a file", "read-only", lambda t, w, m: [
        "sql", f"COPY runs TO '{t / 'out.csv'}'"]),
    ("sql syntax", "SQL error", lambda t, w, m: ["sql", "SELEC 1"]),
    ("unknown search method", "unknown --methods", lambda t, w, m: [
        *EVAL, "-m", m, "--methods", "telepathy"]),
]


def _check(code: int, stderr: str, stdout: str, expect: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code != 0, stdout[-1000:]
    assert "Traceback" not in stderr + stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert expect in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, ws, tmp_path, tiny_model_dir, monkeypatch):
    from reasonloop.cli import app
    _, expect, build = case
    args = [str(a) for a in build(tmp_path, ws, tiny_model_dir)]
    if "--root" not in args:
        args += ["--root", str(ws)]
    monkeypatch.chdir(tmp_path)
    before = _digest(ws, tmp_path)
    r = CliRunner().invoke(app, args, terminal_width=400)
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), \
        repr(r.exception)
    _check(r.exit_code, r.stderr, r.stdout, expect)
    assert _digest(ws, tmp_path) == before          # every store as it was, nothing new


def _subprocess(args, cwd, preexec=None, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "reasonloop.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec, env={**_clean_env(), "PYTHONPATH": str(ROOT)})


def test_read_only_workspace(ws, tmp_path):
    """A workspace the user cannot write (root ignores modes: drop CAP_DAC_OVERRIDE)."""
    ro = tmp_path / "ro"
    shutil.copytree(ws, ro)
    before = _digest(ro)
    ro.chmod(0o555)
    prefix = ("setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override") \
        if os.geteuid() == 0 else ()
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    try:
        r = _subprocess([*RUN, "--root", ro], tmp_path, prefix=prefix)
    finally:
        ro.chmod(0o755)
    _check(r.returncode, r.stderr, r.stdout, "not writable")
    assert _digest(ro) == before


def test_full_disk(ws, tmp_path):
    """No room: every write over 256 KiB fails (RLIMIT_FSIZE, as on a full disk)."""
    before = _digest(ws)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
    r = _subprocess([*RUN, "--root", ws], tmp_path, preexec=small_files)
    _check(r.returncode, r.stderr, r.stdout, "disk full")
    assert _digest(ws) == before
