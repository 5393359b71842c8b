"""SQLite helpers every engine module shares: a read-only connection, table lookups."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.request import pathname2url


def open_readonly(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection that can never create or change the file (nor a journal beside
    it): for reading the live DB, a backup's copy or a held-back snapshot."""
    return sqlite3.connect(
        f"file:{pathname2url(str(Path(path).absolute()))}?mode=ro", uri=True, timeout=timeout
    )


def table_exists(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def quote_ident(name: str) -> str:
    """An SQL identifier, double-quoted (a CRM field name can hold anything)."""
    return '"' + name.replace('"', '""') + '"'


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({quote_ident(table)})")]
