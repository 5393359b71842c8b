"""Benchmark: engine overhead against a bare httpx + executemany script (prints only).

Pacing off, no latency, a sandbox in its own process with 200,000 records in total as the API
serves them (about 7.6 x --scale: five list endpoints x --scale, users, teams and about
2.6 x --scale web-form submissions). Three runs against the same
server: the bare floor (httpx.Client pages through every list and every web form's submissions
one request at a time; each page goes into its table with one executemany and a commit, a column
per key, nested values as JSON text), then the engine through `run_snapshot` with
--concurrency 1 and 4. Prints wall and CPU time of each and engine / floor (goal <= 1.3).

    python bench/bench_overhead.py                   # scale 26,300: ~200,000 records
    python bench/bench_overhead.py --scale 4000      # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, settings_for, stamp

from salesmap_tui.engine.api import run_snapshot

LISTS = {
    "organization": "organizationList",
    "people": "peopleList",
    "deal": "dealList",
    "lead": "leadList",
    "memo": "memoList",
    "user": "userList",
    "team": "teamList",
}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def value(v: Any) -> Any:
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return v


def bare(base_url: str, token: str, db: Path) -> tuple[int, int]:
    """The floor: fetch every page with httpx and insert it with executemany. (pages, records)"""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    columns: dict[str, list[str]] = {}
    pages = records = 0
    headers = {"Authorization": f"Bearer {token}"}

    def store(table: str, items: list[dict[str, Any]]) -> None:
        cols = columns.get(table)
        if cols is None:
            cols = columns[table] = ["id"]
            conn.execute(f"CREATE TABLE {q(table)} (id TEXT PRIMARY KEY)")
        conn.execute("BEGIN")
        for rec in items:
            for k in rec:
                if k not in cols:
                    cols.append(k)
                    conn.execute(f"ALTER TABLE {q(table)} ADD COLUMN {q(k)}")
        sql = (
            f"INSERT OR REPLACE INTO {q(table)} ({', '.join(map(q, cols))}) "
            f"VALUES ({', '.join('?' * len(cols))})"
        )
        conn.executemany(sql, [tuple(value(r.get(c)) for c in cols) for r in items])
        conn.execute("COMMIT")

    def walk(client: httpx.Client, path: str, key: str, table: str, one: bool = False) -> None:
        nonlocal pages, records
        cursor = None
        while True:
            r = client.get(path, params={"cursor": cursor} if cursor else None)
            data = r.json()["data"]
            items = data.get(key) or []
            pages += 1
            records += len(items)
            if items:
                if table == "webform_history":
                    items = [{"id": f"{path}#{i}#{cursor}", **it} for i, it in enumerate(items)]
                store(table, items)
            cursor = data.get("nextCursor")
            if one or not items or not cursor:
                return

    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for name, key in LISTS.items():
            walk(client, f"/{name}", key, name, one=name in ("user", "team"))
        forms = client.get("/webForm").json()["data"]["webFormList"]
        pages += 1
        for form in forms:
            walk(client, f"/webForm/{form['id']}/submit", "webFormSubmitList", "webform_history")
    conn.close()
    return pages, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=26_300, help="records per list endpoint")
    args = parser.parse_args()
    print(f"bench_overhead  {stamp()}  {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp,
        SandboxProcess("--scale", str(args.scale), "--rate-limit", "0") as sb,
    ):
        root = Path(tmp)
        print(f"sandbox --scale {args.scale} --rate-limit 0, latency 0 (own process)")
        c0, t0 = cpu_s(), time.perf_counter()
        pages, records = bare(sb.base_url, sb.token, root / "bare.db")
        floor_wall, floor_cpu = time.perf_counter() - t0, cpu_s() - c0
        print(
            f"floor (httpx + executemany, sequential): {floor_wall:.1f} s wall, "
            f"{floor_cpu:.1f} s CPU; {pages} requests, {records} records",
            flush=True,
        )
        rows = []
        for conc in (1, 4):
            settings = settings_for(
                sb,
                root / f"engine-{conc}",
                concurrency=conc,
                min_interval=0.0,
                rate_limit_requests=0,
                no_backup=True,
            )
            sb.reset()
            c0, t0 = cpu_s(), time.perf_counter()
            result = run_snapshot(settings)
            wall, cpu = time.perf_counter() - t0, cpu_s() - c0
            if result.exit_code != 0:
                raise SystemExit(f"engine run failed: {result.message}")
            n = sb.stats()["requests"]
            total = sum(t["rows"] for t in result.tables.values())
            rows.append((conc, wall, cpu))
            print(
                f"engine --concurrency {conc}: {wall:.1f} s wall, {cpu:.1f} s CPU; "
                f"{n} requests, {total} rows",
                flush=True,
            )
    print()
    for conc, wall, cpu in rows:
        ratio = wall / floor_wall
        verdict = "met" if ratio <= 1.3 else "MISSED"
        print(
            f"goal: engine (--concurrency {conc}) / floor <= 1.3: wall {ratio:.2f} ({verdict}), "
            f"CPU {cpu / floor_cpu:.2f}"
        )
    print(rerun_line("bench/bench_overhead.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
