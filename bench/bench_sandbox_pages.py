"""Benchmark: page through every record of one sandbox endpoint at scale (prints, never asserts).

Starts `python -m salesmap_tui.sandbox --scale N --rate-limit 0` in a subprocess, pages through
the endpoint with httpx (one keep-alive connection), samples the sandbox's RSS with psutil and
prints pages/s, records/s and peak RSS.

    python bench/bench_sandbox_pages.py                 # 1,000,000 people, 20,000 pages
    python bench/bench_sandbox_pages.py --scale 100000 --endpoint deal
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import threading
import time

import httpx
import psutil

LIST_KEYS = {
    "organization": "organizationList",
    "people": "peopleList",
    "deal": "dealList",
    "lead": "leadList",
    "memo": "memoList",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1_000_000, help="records per endpoint")
    parser.add_argument("--endpoint", choices=sorted(LIST_KEYS), default="people")
    parser.add_argument("--seed", type=int, default=1, help="sandbox seed")
    args = parser.parse_args()

    cmd = [sys.executable, "-m", "salesmap_tui.sandbox", "--port", "0", "--rate-limit", "0",
           "--scale", str(args.scale), "--seed", str(args.seed)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base = proc.stdout.readline().strip().removeprefix("base_url: ")
    token = proc.stdout.readline().strip().removeprefix("token: ")
    ps = psutil.Process(proc.pid)
    peak = [ps.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            try:
                peak[0] = max(peak[0], ps.memory_info().rss)
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    key = LIST_KEYS[args.endpoint]
    records = pages = 0
    expected_index = 0
    out_of_order = 0
    start = time.perf_counter()
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            cursor: str | None = None
            while True:
                r = client.get(f"/{args.endpoint}", params={"cursor": cursor} if cursor else None)
                r.raise_for_status()
                data = r.json()["data"]
                items = data[key]
                pages += 1
                for item in items:
                    # ids end in the record's index: checks order and duplicates without a set
                    out_of_order += int(item["id"][24:], 16) != expected_index
                    expected_index += 1
                records += len(items)
                cursor = data.get("nextCursor")
                if not cursor or not items:
                    break
                if pages % 2000 == 0:
                    rate = pages / (time.perf_counter() - start)
                    print(f"  {pages} pages, {records} records, {rate:.0f} pages/s", flush=True)
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        sampler.join()
        proc.terminate()
        proc.wait(timeout=15)

    print(f"endpoint:         /{args.endpoint} (scale {args.scale:,}, seed {args.seed})")
    print(f"records:          {records:,} ({'ok' if records == args.scale else 'MISMATCH'};"
          f" out of order/duplicate: {out_of_order})")  # fmt: skip
    print(f"pages:            {pages:,} in {elapsed:.1f} s")
    print(f"pages/s:          {pages / elapsed:.1f}")
    print(f"records/s:        {records / elapsed:,.0f}")
    print(f"sandbox peak RSS: {peak[0] / 2**20:.1f} MiB (goal < 300 MiB)")
    print(f"sandbox exit:     {proc.returncode}")
    print(f"rerun:            {shlex.join([sys.executable, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
