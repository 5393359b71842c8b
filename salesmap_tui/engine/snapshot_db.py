"""The snapshot DB's own tables: `manifest` (rows, columns, pages, errors per table) and
`run_info` (the run that made it), written by a run and read back by every later one."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from salesmap_tui.engine.sqlite_util import open_readonly, table_exists

MANIFEST_SQL = (
    "CREATE TABLE IF NOT EXISTS manifest "
    "(table_name TEXT PRIMARY KEY, rows INTEGER, cols INTEGER, pages INTEGER, errors TEXT)"
)
RUN_INFO_SQL = (
    "CREATE TABLE IF NOT EXISTS run_info (run_tag TEXT PRIMARY KEY, started_at TEXT, "
    "finished_at TEXT, status TEXT, base_url TEXT, tool_version TEXT)"
)

ManifestRow = tuple[str, int, int, int, str]  # table, rows, cols, pages, errors (JSON list)


def read_manifest_rows(db_path: Path) -> dict[str, int]:
    """Rows per table from a snapshot's manifest (the previous run's), for progress and ETA."""
    return {name: t["rows"] for name, t in tables_of(db_path).items()}


def tables_of(db_path: Path) -> dict[str, dict[str, int]]:
    """`{table: {"rows": n, "cols": n}}` from a snapshot's manifest ({} when it has none)."""
    if not db_path.is_file():
        return {}
    tables: dict[str, dict[str, int]] = {}
    try:
        conn = open_readonly(db_path)
        try:
            if table_exists(conn, "manifest"):
                for name, rows, cols in conn.execute("SELECT table_name, rows, cols FROM manifest"):
                    tables[str(name)] = {"rows": int(rows or 0), "cols": int(cols or 0)}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    return tables


def run_info_of(db_path: Path) -> dict[str, Any]:
    """The run_info row of a snapshot DB ({} when there is none or the file is unreadable)."""
    if not db_path.is_file():
        return {}
    try:
        conn = open_readonly(db_path)
        try:
            if not table_exists(conn, "run_info"):
                return {}
            cur = conn.execute("SELECT * FROM run_info LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return {}
            return {d[0]: v for d, v in zip(cur.description, row, strict=True)}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def run_tag_of(db_path: Path) -> str | None:
    """The run tag of the data a snapshot DB holds (None: not one of ours, or unreadable)."""
    tag = run_info_of(db_path).get("run_tag")
    return None if tag is None else str(tag)


def integrity_problem(db: Path) -> str | None:
    """None when `PRAGMA integrity_check` passes; else what is wrong, in one line."""
    try:
        conn = open_readonly(db)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{db} cannot be read as SQLite: {exc}"
    if [tuple(r) for r in rows] != [("ok",)]:
        return f"{db} fails the integrity check: {rows[0][0]}"
    return None


def start_run_info(
    conn: sqlite3.Connection, run_tag: str, started_at: str, base_url: str, version: str
) -> None:
    """The temp DB's run_info row, `running` until the manifest is written."""
    conn.execute(RUN_INFO_SQL)
    conn.execute(
        "INSERT OR IGNORE INTO run_info VALUES (?, ?, NULL, 'running', ?, ?)",
        (run_tag, started_at, base_url, version),
    )
    conn.commit()


def write_manifest(
    conn: sqlite3.Connection, run_tag: str, rows: list[ManifestRow], status: str, finished_at: str
) -> tuple[Any, ...]:
    """The manifest rows and the run_info's end, in one commit; the run_info row written."""
    conn.execute(MANIFEST_SQL)
    conn.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute(
        "UPDATE run_info SET finished_at = ?, status = ? WHERE run_tag = ?",
        (finished_at, status, run_tag),
    )
    conn.commit()
    return tuple(conn.execute("SELECT * FROM run_info").fetchone() or ())
