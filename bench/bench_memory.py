"""Benchmark: peak RSS of a headless run at 20,000 and 400,000 records in total (prints only).

Each run is its own subprocess (this script with --child: `run_snapshot` with pacing and the
window off, as `salesmap-tui snapshot` runs it headless) against a sandbox in its own process,
no latency; psutil samples the run's RSS every 50 ms. Records in total (as the API serves them)
are about 7.6 x --scale: 5 x --scale list records, plus users, teams and about 2.6 x --scale
web-form submissions; 2,600 and 52,500 give about 20,000 and 400,000 (the engine keeps fewer
rows: only submissions of people with deals). Goal: the larger run's peak within 1.2x of the
smaller's (streaming: nothing is held per record).

    python bench/bench_memory.py                          # scales 2,600 and 52,500
    python bench/bench_memory.py --scales 4000,20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, stamp


def child(base_url: str, token: str, workdir: str) -> int:
    from salesmap_tui.config import Settings
    from salesmap_tui.engine.api import run_snapshot

    root = Path(workdir)
    settings = Settings(
        db_path=root / "salesmap_latest.db",
        log_dir=root / "logs",
        backup_dir=root / "backups",
        base_url=base_url,
        token=token,
        min_interval=0.0,
        rate_limit_requests=0,
        quiet=True,
    )
    result = run_snapshot(settings)
    rows = sum(t["rows"] for t in result.tables.values())
    print(json.dumps({"exit": result.exit_code, "rows": rows, "s": result.duration_s}))
    return result.exit_code


def measure(scale: int, tmp: Path) -> tuple[int, int, float, int]:
    """(peak RSS bytes, rows, seconds, RSS right after start)."""
    with SandboxProcess("--scale", str(scale), "--rate-limit", "0") as sb:
        work = tmp / f"scale-{scale}"
        work.mkdir()
        cmd = [sys.executable, __file__, "--child", sb.base_url, sb.token, str(work)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        ps = psutil.Process(proc.pid)
        peak = start = 0
        t0 = time.monotonic()
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, start
            while not done.is_set():
                try:
                    rss = ps.memory_info().rss
                except psutil.Error:
                    return
                start = start or rss
                peak = max(peak, rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        done.set()
        sampler.join()
        info = json.loads(out.strip().splitlines()[-1])
        if info["exit"] != 0:
            raise SystemExit(f"run at scale {scale} failed (exit {info['exit']})")
        return peak, int(info["rows"]), time.monotonic() - t0, start


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        return child(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="2600,52500", help="small,large (2600,52500)")
    args = parser.parse_args()
    small, large = (int(x) for x in args.scales.split(","))
    print(f"bench_memory  {stamp()}  {machine()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for scale in (small, large):
            peak, rows, secs, start = measure(scale, Path(tmp))
            results[scale] = peak
            print(
                f"scale {scale}: ~{round(7.6 * scale, -3):,.0f} records served, {rows} rows kept, "
                f"{secs:.1f} s; peak RSS "
                f"{peak / 2**20:.1f} MiB (first sample {start / 2**20:.1f} MiB)",
                flush=True,
            )
    ratio = results[large] / results[small]
    verdict = "met" if ratio <= 1.2 else "MISSED"
    print(f"\ngoal: peak RSS at scale {large} / at scale {small} <= 1.2: {ratio:.2f} ({verdict})")
    print(rerun_line("bench/bench_memory.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
