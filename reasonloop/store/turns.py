"""Turns and retention in the store: one row per scheduled turn (which iterations it ran,
what it cost beyond them, what retention freed), one row per artifact retention deleted.

A turn's row is what lets a crashed turn be resumed as the *same* turn (same iterations, same
start from the champion) instead of a new one; the retention rows are lineage: what was
deleted, when, and how many bytes, so a pruned version is never a mystery."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from reasonloop.store import db  # (db's init_db makes these tables: no name imported here)

TURNS, RETENTION = "turns", "retention"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TURNS} (run_id VARCHAR, turn INTEGER, first_iteration INTEGER,
  last_iteration INTEGER, from_champion BOOLEAN, started_at TIMESTAMP, finished_at TIMESTAMP,
  seconds DOUBLE, iteration_seconds DOUBLE, overhead_s DOUBLE, freed_bytes BIGINT);
CREATE TABLE IF NOT EXISTS {RETENTION} (deleted_at TIMESTAMP, run_id VARCHAR,
  iteration INTEGER, kind VARCHAR, target VARCHAR, bytes BIGINT);
"""


def _tables(con) -> None:
    """Made by the first turn or gc that writes them (a store of `reasonloop run` alone has
    none)."""
    con.execute(SCHEMA)


def unfinished(path: Path, run_id: str) -> tuple[int, int, bool] | None:
    """The run's last turn if it did not finish (a crash): (first, last, from_champion)."""
    if not Path(path).exists() or not db.query(
            path, f"SELECT 1 FROM duckdb_tables() WHERE table_name = '{TURNS}'").height:
        return None
    df = db.query(path, f"SELECT first_iteration, last_iteration, from_champion, finished_at "
                     f"FROM {TURNS} WHERE run_id = $run ORDER BY turn DESC LIMIT 1",
               {"run": run_id})
    if not df.height or df["finished_at"][0] is not None:
        return None
    return int(df["first_iteration"][0]), int(df["last_iteration"][0]), \
        bool(df["from_champion"][0])


def begin(path: Path, run_id: str, first: int, last: int, from_champion: bool
          ) -> tuple[int, bool]:
    """(the turn's number, resumed): a new row, or the unfinished one with the same
    iterations (its rerun after a crash)."""
    with db.connect(path) as con:
        _tables(con)
        con.execute("BEGIN")
        row = con.execute(f"SELECT turn FROM {TURNS} WHERE run_id = ? AND first_iteration = ? "
                          f"AND last_iteration = ? AND finished_at IS NULL",
                          [run_id, first, last]).fetchone()
        if row is None:
            n = con.execute(f"SELECT coalesce(max(turn), 0) + 1 FROM {TURNS} WHERE run_id = ?",
                            [run_id]).fetchone()[0]
            con.execute(f"INSERT INTO {TURNS} (run_id, turn, first_iteration, last_iteration, "
                        f"from_champion, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                        [run_id, n, first, last, from_champion, db.now()])
            con.execute("COMMIT")
            return int(n), False
        con.execute("COMMIT")
    return int(row[0]), True


def finish(path: Path, run_id: str, turn: int, seconds: float, freed_bytes: int,
           resumed: bool = False) -> dict:
    """Close the turn; its overhead is its wall time less the seconds of the iterations it
    ran (what the turn costs beyond its own work: flow start, stores, report, retention).
    A resumed turn's stages partly ran in the attempt that crashed, whose wall time is
    unknown: its overhead stays NULL (and `seconds` is the last attempt's)."""
    with db.connect(path) as con:
        first, last = con.execute(f"SELECT first_iteration, last_iteration FROM {TURNS} "
                                  f"WHERE run_id = ? AND turn = ?", [run_id, turn]).fetchone()
        it_s = con.execute("SELECT coalesce(sum(CAST(seconds->>'total' AS DOUBLE)), 0) FROM "
                           "iterations WHERE run_id = ? AND iteration BETWEEN ? AND ?",
                           [run_id, first, last]).fetchone()[0]
        row = {"seconds": seconds, "iteration_seconds": it_s,
               "overhead_s": None if resumed else seconds - it_s, "freed_bytes": freed_bytes}
        con.execute(f"UPDATE {TURNS} SET finished_at = ?, seconds = ?, iteration_seconds = ?, "
                    f"overhead_s = ?, freed_bytes = ? WHERE run_id = ? AND turn = ?",
                    [db.now(), *row.values(), run_id, turn])
    return {"turn": turn, **row}


def record_deleted(path: Path, rows: list[dict]) -> None:
    """Retention's lineage: {run_id, iteration, kind, target, bytes} per artifact deleted
    (written before it is deleted)."""
    if not rows:
        return
    df = pl.DataFrame(rows, schema={"run_id": pl.String, "iteration": pl.Int32,  # noqa: F841
                                    "kind": pl.String, "target": pl.String, "bytes": pl.Int64})
    with db.connect(path) as con:    # once per (kind, target): a rerun after a kill adds none
        _tables(con)
        con.execute(f"INSERT INTO {RETENTION} SELECT ?, run_id, iteration, kind, target, bytes "
                    f"FROM df ANTI JOIN {RETENTION} r USING (kind, target)", [db.now()])
