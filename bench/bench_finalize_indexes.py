"""What the dashboard indexes and `_fields` cost at finalize, and what they buy a dashboard's join.

Writes the sandbox's records (no HTTP: the data generator straight into TableWriter, 100 a page,
as a run does) into one DB, copies it, then finalizes one copy as before (WAL checkpoint,
optimize, DELETE mode) and the other with the relation indexes and `_fields` first (what
`prepare_for_dashboards` does at a run's finalize). Then times two joins
dashboards make on both. Prints figures; asserts nothing.

    python bench/bench_finalize_indexes.py [--scale 20000]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from salesmap_tui.engine.writer import (
    TableWriter,
    create_relation_indexes,
    finalize_fields,
    finalize_sqlite_connection,
    prepare_connection,
)
from salesmap_tui.sandbox.data import Dataset

TABLES = ("organization", "people", "deal", "lead", "memo", "user", "team")
# a dashboard's drill-downs: one person's deals, one deal's memos (the id picked from the data)
JOINS = {
    "one person's deals (deal.peopleId)": (
        'SELECT d.id, d."금액" FROM deal d JOIN people p ON p.id = d.peopleId WHERE p.id = '
        "(SELECT peopleId FROM deal WHERE peopleId IS NOT NULL LIMIT 1 OFFSET 777)"
    ),
    "one deal's memos (memo.dealId)": (
        "SELECT m.id, m.text FROM memo m WHERE m.dealId = "
        "(SELECT dealId FROM memo WHERE dealId IS NOT NULL LIMIT 1 OFFSET 777)"
    ),
}


def build(path: Path, scale: int) -> dict[str, int]:
    data = Dataset(seed=1, scale=scale)
    conn = prepare_connection(path)
    rows: dict[str, int] = {}
    for table in TABLES:
        w = TableWriter(conn, table, keep_payload=table == "memo")
        page: list[dict[str, object]] = []
        for rec in data.iter_records(table):
            page.append(rec)
            if len(page) == 100:
                w.write_page(page)
                page = []
        if page:
            w.write_page(page)
        rows[table] = w.row_count()
    conn.close()
    return rows


def finalize(path: Path, with_extras: bool) -> tuple[float, float, float]:
    """(seconds for the indexes, for _fields, for the whole finalize)."""
    conn = sqlite3.connect(path, isolation_level=None)
    start = time.perf_counter()
    ix = fields = 0.0
    if with_extras:
        conn.execute("BEGIN")
        create_relation_indexes(conn, TABLES)
        conn.commit()
        ix = time.perf_counter() - start
        conn.execute("BEGIN")
        finalize_fields(conn, TABLES)
        conn.commit()
        fields = time.perf_counter() - start - ix
    finalize_sqlite_connection(conn)
    return ix, fields, time.perf_counter() - start


def time_join(path: Path, sql: str, repeat: int = 5) -> float:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=20_000, help="records per list table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before, after = root / "before.db", root / "after.db"
        t0 = time.perf_counter()
        rows = build(before, args.scale)
        build_s = time.perf_counter() - t0
        shutil.copy(before, after)
        for suffix in ("-wal", "-shm"):
            src = before.with_name(before.name + suffix)
            if src.exists():
                shutil.copy(src, after.with_name(after.name + suffix))
        _, _, plain = finalize(before, with_extras=False)
        ix, fields_s, full = finalize(after, with_extras=True)
        conn = sqlite3.connect(after)
        indexes = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'"
        ).fetchone()[0]
        fields = conn.execute("SELECT count(*) FROM _fields").fetchone()[0]
        conn.close()
        size_before, size_after = before.stat().st_size, after.stat().st_size
        print(f"rows: {rows} (written in {build_s:.1f} s)")
        print(f"finalize without indexes/_fields: {plain:.2f} s")
        print(
            f"finalize with {indexes} indexes + _fields ({fields} rows): {full:.2f} s "
            f"(indexes {ix:.2f} s, _fields {fields_s:.2f} s; +{full - plain:.2f} s)"
        )
        print(
            f"DB size: {size_before / 1e6:.1f} MB -> {size_after / 1e6:.1f} MB "
            f"(+{(size_after - size_before) / size_before * 100:.1f} %)"
        )
        for name, sql in JOINS.items():
            a, b = time_join(before, sql), time_join(after, sql)
            print(f"{name}: {a * 1000:.1f} ms without, {b * 1000:.2f} ms with ({a / b:.0f}x)")
    print(f"command: python bench/bench_finalize_indexes.py --scale {args.scale}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
