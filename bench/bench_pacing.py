"""Benchmark: pacing conformance, measured by the sandbox's own request log (prints only).

Runs a full snapshot with the product's pacing (--min-interval 0.12, 100 per 10 s) and
--concurrency 4 against a sandbox in its own process that injects 503s and 429s (so retries are
in the log), interrupts it part-way and resumes it (so a resumed run is in the log too), then
reads every request arrival from /_sandbox/log and prints the smallest gap between arrivals
(goal >= 0.115 s, allowing for timing jitter at the server) and the largest number of arrivals
in any 10 s window (goal <= 100), over >= 1,000 requests.

    python bench/bench_pacing.py                     # ~1,100 requests, about 2.5 minutes
    python bench/bench_pacing.py --scale 8000 --latency-ms 100
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, settings_for, stamp

from salesmap_tui.config import MIN_INTERVAL, RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW
from salesmap_tui.engine.events import RequestRetried
from salesmap_tui.engine.runs.snapshot import run_snapshot

GAP_GOAL = 0.115
SENT: list[float] = []  # when the engine handed each request to its transport


class TimedTransport(httpx.AsyncHTTPTransport):
    """The engine's own transport, noting when each request leaves the engine."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        SENT.append(time.monotonic())
        return await super().handle_async_request(request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5500, help="records per list endpoint")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="sandbox latency (30)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--faults", default="503:0.03,429:0.02", help="sandbox fault spec ('503:0.03,429:0.02')"
    )
    parser.add_argument(
        "--interrupt-at", type=float, default=0.4, help="cancel after this share of the run"
    )
    args = parser.parse_args()

    print(f"bench_pacing  {stamp()}  {machine()}")
    cmd = ["--scale", str(args.scale), "--latency-ms", str(args.latency_ms)]
    cmd += ["--faults", args.faults, "--hint-scale", "0.05"]
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp, SandboxProcess(*cmd) as sb:
        # one request first, so the server's cold start is not in the measured log
        httpx.get(f"{sb.base_url}/team", headers={"Authorization": f"Bearer {sb.token}"})
        sb.reset()
        settings = settings_for(
            sb, Path(tmp), concurrency=args.concurrency, max_wait=2.0, backoff_base=0.5
        )
        print(f"sandbox {' '.join(cmd)} (own process, limiter {RATE_LIMIT_REQUESTS}/10 s on)")
        print(
            f"engine: --min-interval {settings.min_interval} --concurrency {settings.concurrency}"
            f", limit {settings.rate_limit_requests}/{settings.rate_limit_window:g} s"
        )
        expected_s = (0.19 * args.scale + 30) * MIN_INTERVAL
        cancel = threading.Event()
        timer = threading.Timer(expected_s * args.interrupt_at, cancel.set)
        retries = [0]

        def on_event(event: object) -> None:
            if isinstance(event, RequestRetried):
                retries[0] += 1

        t0 = time.monotonic()
        timer.start()
        first = run_snapshot(settings, on_event, cancel, TimedTransport)
        timer.cancel()
        second = run_snapshot(
            settings.replace(resume=True), on_event, threading.Event(), TimedTransport
        )
        elapsed = time.monotonic() - t0
        print(
            f"run 1: {first.status} (exit {first.exit_code}) after {first.duration_s:.1f} s; "
            f"resumed run: {second.status} (exit {second.exit_code}) after "
            f"{second.duration_s:.1f} s; {retries[0]} retries"
        )
        entries = sb.log()
        stats = sb.stats()

    times = sorted(e["t"] for e in entries)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the resume starts after a pause: count windows over the whole log anyway
    most = max(bisect.bisect_left(times, t + RATE_LIMIT_WINDOW) - i for i, t in enumerate(times))
    statuses: dict[int, int] = {}
    for e in entries:
        statuses[e["status"]] = statuses.get(e["status"], 0) + 1
    small = sorted(gaps)[:5]
    print(f"\nrequests in the sandbox log: {len(times)} ({elapsed:.1f} s); statuses {statuses}")
    print(f"injected faults: {stats['faults']}; limiter 429s: {stats['rate_limited']}")
    print(f"gap between arrivals: min {min(gaps):.4f} s, 5 smallest {[round(g, 4) for g in small]}")
    print(f"                      median {statistics.median(gaps):.4f} s")
    verdict_gap = "met" if min(gaps) >= GAP_GOAL else "MISSED"
    verdict_win = "met" if most <= RATE_LIMIT_REQUESTS else "MISSED"
    verdict_n = "met" if len(times) >= 1000 else "too few requests"
    print(f"\ngoal: >= 1,000 requests: {len(times)} ({verdict_n})")
    print(f"goal: smallest gap >= {GAP_GOAL} s: {min(gaps):.4f} s ({verdict_gap})")
    print(
        f"goal: largest count in any {RATE_LIMIT_WINDOW:g} s window <= {RATE_LIMIT_REQUESTS}: "
        f"{most} ({verdict_win})"
    )
    # where a short gap comes from: the engine's send times vs the server's arrival stamps
    # (both CLOCK_MONOTONIC on this host; a 400 of the sandbox's own is not in SENT)
    sent_gaps = [b - a for a, b in itertools.pairwise(SENT)]
    print(
        f"\nengine side: {len(SENT)} requests sent, "
        f"smallest gap between sends {min(sent_gaps):.4f} s"
    )
    if len(SENT) == len(times):
        lags = [a - s for a, s in zip(times, SENT, strict=True)]
        print(
            f"send -> arrival at the server: median {statistics.median(lags) * 1000:.1f} ms, "
            f"max {max(lags) * 1000:.1f} ms"
        )
        for gap, i in sorted((g, i) for i, g in enumerate(gaps))[:3]:
            print(
                f"  arrival gap {gap:.4f} s = send gap {SENT[i + 1] - SENT[i]:.4f} s "
                f"+ lag {lags[i + 1] * 1000:.1f} ms - lag {lags[i] * 1000:.1f} ms "
                f"({entries[i]['path']} -> {entries[i + 1]['path']})"
            )
    print(rerun_line("bench/bench_pacing.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
