"""The shrink guard (CONTRACT.md "Shrink guard"): a snapshot whose list tables lost too many rows
against the live DB is held back beside it instead of swapped in."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from salesmap_tui.config import SHRINK_MIN_ROWS, SHRINK_TABLES
from salesmap_tui.engine.sqlite_util import open_readonly, table_names


@dataclass(frozen=True)
class Shrink:
    table: str
    before: int  # rows in the live DB
    after: int  # rows in the new snapshot

    @property
    def fraction(self) -> float:
        return (self.before - self.after) / self.before if self.before else 0.0

    def describe(self) -> str:
        return f"{self.table} {self.before} → {self.after} rows (-{self.fraction:.0%})"


def table_rows(db: Path, tables: tuple[str, ...] = SHRINK_TABLES) -> dict[str, int]:
    """Rows of each of `tables` present in the SQLite file `db` ({} if it cannot be read)."""
    if not db.is_file():
        return {}
    try:
        conn = open_readonly(db)
    except sqlite3.Error:
        return {}
    try:
        present = table_names(conn)
        return {
            t: int(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
            for t in tables
            if t in present
        }
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


def shrunk_tables(
    before: dict[str, int],
    after: dict[str, int],
    max_shrink: float,
    min_rows: int = SHRINK_MIN_ROWS,
    tables: tuple[str, ...] = SHRINK_TABLES,
) -> list[Shrink]:
    """The list tables that lost more than `max_shrink` of their rows and at least `min_rows`."""
    if max_shrink >= 1:
        return []
    out = []
    for table in tables:
        old = before.get(table, 0)
        new = after.get(table, 0)
        if old <= 0:
            continue
        shrink = Shrink(table, old, new)
        if old - new >= min_rows and shrink.fraction > max_shrink:
            out.append(shrink)
    return out


def shrink_reason(shrinks: list[Shrink], max_shrink: float) -> str:
    return f"held back by the shrink guard (--max-shrink {max_shrink:g}): " + ", ".join(
        s.describe() for s in shrinks
    )
