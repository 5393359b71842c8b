"""Benchmark: what durable checkpoints cost (prints only).

A checkpoint must never be durable ahead of the rows it covers. Three ways, same sandbox
(own process, pacing off, no latency), each run with --checkpoint-interval 50 (the default) and
1 (the worst case: a checkpoint after every page):

- `normal, no sync`: the temp DB at synchronous=NORMAL and nothing before the checkpoint — the
  old behaviour, not durable (a power cut can keep a checkpoint past rows the WAL lost);
- `normal + sync at checkpoint` (what the engine does): fsync of the WAL, the DB and its folder
  right before each checkpoint is published;
- `full`: synchronous=FULL, an fsync of the WAL at every page commit.

    python bench/bench_durability.py                 # scale 4000 (~30,000 records)
    python bench/bench_durability.py --scale 1000    # a quick look
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, settings_for, stamp

from salesmap_tui.engine import checkpoint, writer
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.runs import snapshot

REAL_SYNC = checkpoint.sync_sqlite_files
REAL_PREPARE = writer.prepare_connection


def full_prepare(path: Path) -> sqlite3.Connection:
    conn = REAL_PREPARE(path)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def variant(name: str) -> tuple[Callable[[Path], None], Callable[[Path], sqlite3.Connection]]:
    if name == "normal, no sync":
        return (lambda p: None), REAL_PREPARE
    if name == "full":
        return REAL_SYNC, full_prepare
    return REAL_SYNC, REAL_PREPARE


def one_run(sb: SandboxProcess, root: Path, name: str, interval: int) -> tuple[float, int]:
    sync, prepare = variant(name)
    checkpoint.sync_sqlite_files = sync  # type: ignore[assignment]
    snapshot.prepare_connection = prepare  # type: ignore[assignment]
    try:
        settings = settings_for(
            sb,
            root,
            min_interval=0.0,
            rate_limit_requests=0,
            no_backup=True,
            checkpoint_interval=interval,
        )
        sb.reset()
        t0 = time.perf_counter()
        result = run_snapshot(settings)
        wall = time.perf_counter() - t0
    finally:
        checkpoint.sync_sqlite_files = REAL_SYNC  # type: ignore[assignment]
        snapshot.prepare_connection = REAL_PREPARE  # type: ignore[assignment]
    if result.exit_code != 0:
        raise SystemExit(f"run failed: {result.message}")
    return wall, int(sb.stats()["requests"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4000, help="records per list endpoint")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (best is shown)")
    args = parser.parse_args()
    print(f"bench_durability  {stamp()}  {machine()}")
    names = ("normal, no sync", "normal + sync at checkpoint", "full")
    results: dict[tuple[str, int], float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-durability-", dir=".") as tmp,
        SandboxProcess("--scale", str(args.scale), "--rate-limit", "0") as sb,
    ):
        print(f"sandbox --scale {args.scale} --rate-limit 0, latency 0; temp dir under ./")
        for interval in (50, 1):
            for name in names:
                walls: list[float] = []
                requests = 0
                for i in range(args.repeat):
                    where = Path(tmp) / f"{interval}-{name}-{i}"
                    wall, requests = one_run(sb, where, name, interval)
                    walls.append(wall)
                best = min(walls)
                results[(name, interval)] = best
                spread = ", ".join(f"{w:.2f}" for w in walls)
                print(
                    f"--checkpoint-interval {interval:>2}  {name:<28} best {best:6.2f} s "
                    f"({spread}); {requests} requests",
                    flush=True,
                )
    print()
    for interval in (50, 1):
        base = results[("normal, no sync", interval)]
        row: list[Any] = []
        for name in names[1:]:
            row.append(f"{name} / no sync = {results[(name, interval)] / base:.2f}")
        print(f"--checkpoint-interval {interval}: " + "; ".join(row))
    print(rerun_line("bench/bench_durability.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
