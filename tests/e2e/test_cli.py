"""Bad input: one clear line, non-zero exit, no traceback, nothing written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMOKE, _clean_env

EXE = [sys.executable, "-m", "reasonloop.cli"]


def _run(args, cwd):
    return subprocess.run(EXE + args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**_clean_env(), "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("extra, expect", [
    (["--set", "search.n=0"], "search.n"),
    (["--set", "policy.path=/no/such/model"], "not a model directory"),
    (["--set", "learn.init_from=sideways"], "learn.init_from"),
])
def test_bad_run_input_fails_cleanly(tmp_path, extra, expect):
    ws = tmp_path / "ws"
    r = _run(["run", "-c", str(SMOKE), "--root", str(ws), *extra], tmp_path)
    assert r.returncode != 0
    assert expect in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    assert not ws.exists()


def test_missing_config_file(tmp_path):
    r = _run(["run", "-c", str(tmp_path / "nope.yaml"), "--root", str(tmp_path / "ws")],
             tmp_path)
    assert r.returncode != 0 and "config file not found" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ws").exists()


def test_sql_formats_and_errors(tmp_path):
    from reasonloop.store import db
    db.init_db(tmp_path / "reasonloop.duckdb")
    r = _run(["sql", "SELECT 1 AS a, 'x' AS b", "--format", "json", "--root", str(tmp_path)],
             tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout) == [{"a": 1, "b": "x"}]
    r = _run(["sql", "SELECT 1 AS a", "--format", "csv", "--root", str(tmp_path)], tmp_path)
    assert r.stdout.splitlines() == ["a", "1"]
    r = _run(["sql", "SELECT 1 AS a, [2, 3] AS l", "--format", "parquet", "--out",
              str(tmp_path / "o.parquet"), "--root", str(tmp_path)], tmp_path)
    import polars as pl
    assert r.returncode == 0 and pl.read_parquet(tmp_path / "o.parquet").to_dicts() == \
        [{"a": 1, "l": [2, 3]}]
    r = _run(["sql", "SELECT 1", "--format", "parquet", "--root", str(tmp_path)], tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: --format parquet needs --out FILE"
    r = _run(["sql", "SELECT * FROM nope", "--root", str(tmp_path)], tmp_path)
    assert r.returncode == 1 and "SQL error" in r.stderr and "Traceback" not in r.stderr
    r = _run(["sql", "SELECT 1", "--root", str(Path(tmp_path) / "empty")], tmp_path)
    assert r.returncode == 1 and "no database" in r.stderr


def test_malformed_problems_jsonl(tmp_path, tiny_model_dir):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{oops\n')
    r = _run(["run", "-c", str(SMOKE), "--root", str(tmp_path / "ws"), "--set", "env.name=math",
              "--set", f"env.problems_file={bad}", "--set", f"policy.path={tiny_model_dir}"],
             tmp_path)
    assert r.returncode == 1 and "p.jsonl:2: not valid JSON" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ws").exists()


@pytest.mark.parametrize("q", ["SELECT count(*) FROM runs", "DESCRIBE trajectories",
                               "SHOW TABLES", "EXPLAIN SELECT 1", "FROM pass_by_iteration",
                               "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
                               "SUMMARIZE SELECT 1 AS x"])
def test_sql_reads_are_allowed(tmp_path, q):
    from typer.testing import CliRunner

    from reasonloop.cli import app
    from reasonloop.store import db
    db.init_db(tmp_path / "reasonloop.duckdb")
    r = CliRunner().invoke(app, ["sql", q, "--root", str(tmp_path)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("q", ["INSERT INTO runs (run_id) VALUES ('x')", "DROP TABLE runs",
                               "UPDATE runs SET git_sha = 'x'", "CREATE TABLE t (a INT)",
                               "ATTACH 'other.db'", "SET threads = 1", "INSTALL httpfs",
                               "SELECT 1; DELETE FROM runs", "EXPORT DATABASE 'out'"])
def test_sql_writes_are_refused(tmp_path, q):
    from typer.testing import CliRunner

    from reasonloop.cli import app
    from reasonloop.store import db
    db.init_db(tmp_path / "reasonloop.duckdb")
    before = (tmp_path / "reasonloop.duckdb").read_bytes()
    r = CliRunner().invoke(app, ["sql", q, "--root", str(tmp_path)])
    assert r.exit_code == 1 and r.stderr.startswith("error: refused: the store is read-only")
    assert (tmp_path / "reasonloop.duckdb").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reasonloop.duckdb"]


@pytest.mark.parametrize("args, expect", [
    (["serve", "--cron", "1 2 3"], "--cron '1 2 3' is not a cron schedule"),
    (["serve", "--cron", "0 3 * * *", "--interval", "5"], "not both"),
    (["serve", "--interval", "-1"], "--interval must be positive"),
    (["ui", "--set", "serve.mlflow_port=0"], "serve.mlflow_port"),
    (["report", "--run", "nope"], "no store at"),
])
def test_operator_commands_fail_in_one_line(tmp_path, args, expect):
    ws = tmp_path / "ws"
    r = _run([*args, "-c", str(SMOKE), "--root", str(ws)] if args[0] != "report"
             else [*args, "--root", str(ws)], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [ln for ln in [
        r.stderr.strip()] if expect in ln], r.stderr
    assert "Traceback" not in r.stdout and not ws.exists()


def test_ui_refuses_a_port_in_use(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _run(["ui", "-c", str(SMOKE), "--root", str(tmp_path), "--set",
                  f"serve.prefect_port={port}"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"error: Prefect: port {port} on 127.0.0.1 is in use (set "
                                f"serve.prefect_port=N, or stop what listens there)")


def test_help_is_short_and_consistent():
    """Every command and subcommand: a one-line summary (a sentence, ≤ 90 characters)
    first, and a working --help."""
    import typer.main
    from typer.testing import CliRunner

    from reasonloop.cli import app
    group = typer.main.get_command(app)
    runner = CliRunner()
    commands = [([name], cmd) for name, cmd in group.commands.items()]
    commands += [(["models", n], c) for n, c in group.commands["models"].commands.items()]
    assert {c[0][0] for c in commands} >= {"run", "sql", "eval", "models", "promote",
                                           "report", "serve", "ui"}
    for path, cmd in commands:
        first = (cmd.help or "").strip().splitlines()[0]
        assert first.endswith(".") and len(first) <= 90, (path, first)
        bare = [p.opts for p in cmd.params
                if getattr(p, "param_type_name", "") == "option" and not p.help]
        assert not bare, (path, bare)                     # every option says what it is
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, path
    top = runner.invoke(app, ["--help"]).output
    assert all(name in top for name in group.commands)


def _without_api(**env) -> dict:
    return {**{k: v for k, v in _clean_env().items() if k != "PREFECT_API_URL"},
            "PYTHONPATH": str(ROOT), **env}


def test_a_prefect_api_that_does_not_answer_fails_in_one_line(tmp_path):
    from reasonloop.servers import free_port
    ws, url = tmp_path / "ws", f"http://127.0.0.1:{free_port()}/api"
    r = subprocess.run(EXE + ["run", "-c", str(SMOKE), "--root", str(ws)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300,
                       env=_without_api(PREFECT_API_URL=url))
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    assert r.stderr.strip() == (f"error: the Prefect API at PREFECT_API_URL={url} does not "
                                "answer: start that server, or unset PREFECT_API_URL to run "
                                "on a temporary one")
    assert not (ws / "reasonloop.duckdb").exists()


def test_a_temporary_server_too_slow_to_start_fails_in_one_line(tmp_path):
    """Prefect's own temporary server gives up after 20 s with a 40-line traceback; ours
    waits serve.start_timeout_s (made tiny here), then says what to do."""
    ws = tmp_path / "ws"
    r = subprocess.run(EXE + ["run", "-c", str(SMOKE), "--root", str(ws), "--set",
                              "serve.start_timeout_s=0.01"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=_without_api())
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Prefect server did not answer "
                                                   "http://127.0.0.1:"), r.stderr
    assert "within 0.01 s" in lines[0] and "raise serve.start_timeout_s" in lines[0]
    assert not (ws / "reasonloop.duckdb").exists()
    import re

    import psutil
    port = re.search(r"http://127.0.0.1:(\d+)", lines[0]).group(1)
    assert not [p for p in psutil.process_iter(["cmdline"])     # the server it started: gone
                if f"--port {port} " in " ".join(p.info["cmdline"] or [])]
