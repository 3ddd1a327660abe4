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
