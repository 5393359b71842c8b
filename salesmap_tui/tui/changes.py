"""Did something change? Rows per table across runs, reduced to sparklines and the moves that
stand out. Plain Python (no Textual): the history screen draws what this computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salesmap_tui.engine.endpoints import SNAPSHOT_ENDPOINTS
from salesmap_tui.engine.webform import TABLE as WEBFORM_TABLE

SPARKS = "▁▂▃▄▅▆▇█"
# the snapshot's tables in the engine's order (engine/endpoints.py), then the web forms'
TABLE_ORDER = (*(spec.name for spec in SNAPSHOT_ENDPOINTS), WEBFORM_TABLE)
# one colour per table, none repeated
TABLE_COLORS = {
    # fixed hues (not the theme's ANSI names, where red and magenta both read pink)
    "organization": "#5f87ff",
    "people": "#5fd75f",
    "deal": "#ff5f5f",
    "lead": "#5fd7ff",
    "memo": "#af87ff",
    "user": "#ffaf00",
    "team": "#bcbcbc",
    "webform_history": "#ffd75f",
}
# tables beyond those (a newer API, another workspace) take the next unused colour
EXTRA_COLORS = ("#ff87d7", "#87ffaf", "#d7af87", "#87afaf", "#ff8787")


def color_of(name: str, extra_names: list[str]) -> str:
    if name in TABLE_COLORS:
        return TABLE_COLORS[name]
    index = extra_names.index(name) if name in extra_names else 0
    return EXTRA_COLORS[index % len(EXTRA_COLORS)]


SHARP = 0.2  # a table that moved by a fifth or more from one run to the next stands out
MIN_SHARP_ROWS = 10  # ... and by at least this many rows (3 -> 5 is not news)


@dataclass(frozen=True)
class TableSeries:
    name: str
    rows: list[int | None]  # per run, oldest first; None where the run did not record it
    last_change: float | None  # the newest run against the one before (fraction)
    sharp: bool  # that change is large enough to stand out


def rows_of(record: dict[str, Any], name: str) -> int | None:
    tables = record.get("tables")
    info = tables.get(name) if isinstance(tables, dict) else None
    rows = info.get("rows") if isinstance(info, dict) else None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else None


def snapshot_runs(records: list[dict[str, Any]], limit: int = 24) -> list[dict[str, Any]]:
    """Finished snapshot runs with table counts, oldest first by start time (the last `limit`)."""
    # only snapshots that finished: a failed or interrupted run's counts are partial
    runs = [
        r
        for r in records
        if r.get("kind", "snapshot") == "snapshot"
        and r.get("status") in ("done", "fallback")
        and isinstance(r.get("tables"), dict)
        and r.get("tables")
    ]
    runs.sort(key=lambda r: str(r.get("started_at") or ""))
    return runs[-limit:]


def order(name: str) -> tuple[int, str]:
    return (TABLE_ORDER.index(name), "") if name in TABLE_ORDER else (len(TABLE_ORDER), name)


def change(before: int | None, after: int | None) -> float | None:
    if before is None or after is None:
        return None
    if before == 0:
        return None if after == 0 else 1.0
    return (after - before) / before


def moved_sharply(before: int | None, after: int | None) -> bool:
    delta = change(before, after)
    if delta is None or before is None or after is None:
        return False
    return abs(delta) >= SHARP and abs(after - before) >= MIN_SHARP_ROWS


def table_series(runs: list[dict[str, Any]]) -> list[TableSeries]:
    names = [n for n in TABLE_ORDER if any(rows_of(r, n) is not None for r in runs)]
    extra = sorted({str(n) for r in runs for n in (r.get("tables") or {}) if n not in TABLE_ORDER})
    out: list[TableSeries] = []
    for name in [*names, *extra]:
        rows = [rows_of(r, name) for r in runs]
        if len(rows) >= 2:
            last, sharp = change(rows[-2], rows[-1]), moved_sharply(rows[-2], rows[-1])
        else:
            last, sharp = None, False
        out.append(TableSeries(name, rows, last, sharp))
    return out


def sharp_moves(previous: dict[str, Any] | None, record: dict[str, Any]) -> list[tuple[str, float]]:
    """The tables of `record` that moved sharply against the `previous` run: (name, change)."""
    if previous is None:
        return []
    moves: list[tuple[str, float]] = []
    names = set(record.get("tables") or {}) | set(previous.get("tables") or {})
    for name in sorted(names, key=order):
        before, after = rows_of(previous, name), rows_of(record, name)
        if moved_sharply(before, after):
            delta = change(before, after)
            if delta is not None:
                moves.append((name, delta))
    moves.sort(key=lambda m: -abs(m[1]))
    return moves


def sparkline(values: list[int | None] | list[float | None]) -> str:
    """One cell per value scaled between its own min and max; a gap where there is none."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi == lo:
            out.append(SPARKS[3])
        else:
            out.append(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1))])
    return "".join(out)
