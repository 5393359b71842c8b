"""Benchmark: crawl time against the physical bound, and rate-limit use (prints, never asserts).

The physical bound of a crawl is max(requests x MIN_INTERVAL, longest cursor chain x latency):
the pacer cannot go faster, and the pages of one endpoint follow each other. This runs the
sandbox in its own process at each latency, with a previous run's manifest in place (so the
engine knows which chain is longest), once with --concurrency 4 and once with --concurrency 1,
and prints crawl time / bound (goal <= 1.1 at 300 ms) and achieved requests/s / (1/MIN_INTERVAL).

Requests and chain lengths come from the sandbox's own request log. The crawl phase is timed from
the engine's PhaseChanged events; the web-form pass (which needs the crawled deals and people, so
it can only start after the crawl) is timed and bounded separately.

    python bench/bench_bound_ratio.py                       # scale 500: 50 lead pages
    python bench/bench_bound_ratio.py --scale 1000 --latencies 300
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, settings_for, stamp

from salesmap_tui.config import MIN_INTERVAL
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.events import PhaseChanged


@dataclass
class Phase:
    requests: int
    chain: int  # longest run of requests to one list (path), i.e. the cursor chain
    chain_path: str
    seconds: float

    def bound(self, latency_s: float, interval: float) -> tuple[float, float]:
        return self.requests * interval, self.chain * latency_s


def _phase_stats(entries: list[dict[str, Any]], t0: float, t1: float, seconds: float) -> Phase:
    inside = [e for e in entries if t0 <= e["t"] < t1]
    per_path = Counter(e["path"] for e in inside)
    path, chain = per_path.most_common(1)[0] if per_path else ("-", 0)
    return Phase(len(inside), chain, path, seconds)


def one_run(
    sandbox: SandboxProcess, prep_db: Path, work: Path, latency_ms: float, concurrency: int
) -> tuple[Phase, Phase, float, int]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = settings_for(sandbox, work, concurrency=concurrency, no_backup=True)
    shutil.copy(prep_db, settings.db_path)  # the previous run's DB and manifest
    sandbox.set_latency(latency_ms)
    sandbox.reset()
    marks: dict[str, float] = {}

    def on_event(event: object) -> None:
        if isinstance(event, PhaseChanged):
            marks.setdefault(event.phase, time.monotonic())

    t0 = time.monotonic()
    result = run_snapshot(settings, on_event)
    t1 = time.monotonic()
    if result.exit_code != 0:
        raise SystemExit(f"run failed: {result.message}")
    entries = sandbox.log()
    by_status = sandbox.stats()["by_status"]
    # monotonic clocks of both processes are the same CLOCK_MONOTONIC on Linux
    c0, c1, c2 = marks["crawl"], marks["webform"], marks.get("finalize", t1)
    crawl = _phase_stats(entries, c0, c1, c1 - c0)
    wf = _phase_stats(entries, c1, c2, c2 - c1)
    return crawl, wf, t1 - t0, int(by_status.get("429", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=500, help="records per list endpoint (500)")
    parser.add_argument("--latencies", default="0,100,300,600", help="ms, comma-separated")
    parser.add_argument("--concurrency", type=int, default=4, help="compared with 1 (4)")
    args = parser.parse_args()
    latencies = [float(x) for x in args.latencies.split(",")]
    interval = MIN_INTERVAL

    print(f"bench_bound_ratio  {stamp()}  {machine()}")
    print(
        f"sandbox --scale {args.scale} (own process, limiter 100/10 s on); "
        f"MIN_INTERVAL {interval} s; a previous run's manifest in place"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-bound-") as tmp,
        SandboxProcess("--scale", str(args.scale)) as sandbox,
    ):
        root = Path(tmp)
        prep = settings_for(sandbox, root / "prep", min_interval=0.0, no_backup=True)
        first = run_snapshot(prep)
        if first.exit_code != 0:
            raise SystemExit(f"first run failed: {first.message}")
        print(f"first run (manifest source): {first.tables}")
        rows = []
        for ms in latencies:
            for conc in (args.concurrency, 1):
                crawl, wf, total, n429 = one_run(
                    sandbox, prep.db_path, root / f"run-{ms:g}-{conc}", ms, conc
                )
                rows.append((ms, conc, crawl, wf, total, n429))
                pb, cb = crawl.bound(ms / 1000, interval)
                print(
                    f"  latency {ms:>4g} ms  concurrency {conc}: crawl {crawl.seconds:6.2f} s, "
                    f"{crawl.requests} requests, chain {crawl.chain} ({crawl.chain_path}); "
                    f"bounds pacer {pb:.2f} s / chain {cb:.2f} s",
                    flush=True,
                )

    print()
    print(
        "crawl phase: ratio = crawl time / max(requests x MIN_INTERVAL, chain x latency); "
        "rate use = (requests / crawl time) / (1 / MIN_INTERVAL)"
    )
    head = (
        f"{'latency':>8} {'conc':>4} {'reqs':>5} {'chain':>5} {'pacer b.':>8} {'chain b.':>8} "
        f"{'crawl s':>8} {'ratio':>6} {'rate use':>8} | {'wf reqs':>7} {'wf chain':>8} "
        f"{'wf s':>6} {'wf ratio':>8} | {'run s':>6} {'429s':>4}"
    )
    print(head)
    print("-" * len(head))
    for ms, conc, crawl, wf, total, n429 in rows:
        pb, cb = crawl.bound(ms / 1000, interval)
        bound = max(pb, cb)
        rate = crawl.requests / crawl.seconds * interval
        wpb, wcb = wf.bound(ms / 1000, interval)
        wbound = max(wpb, wcb)
        wratio = f"{wf.seconds / wbound:8.2f}" if wbound else f"{'-':>8}"
        print(
            f"{ms:>6g}ms {conc:>4} {crawl.requests:>5} {crawl.chain:>5} {pb:>8.2f} {cb:>8.2f} "
            f"{crawl.seconds:>8.2f} {crawl.seconds / bound:>6.2f} {rate:>8.2f} | "
            f"{wf.requests:>7} {wf.chain:>8} {wf.seconds:>6.2f} {wratio} | {total:>6.2f} {n429:>4}"
        )
    goal = [r for r in rows if r[0] == 300 and r[1] == args.concurrency]
    if goal:
        ms, conc, crawl, *_ = goal[0]
        ratio = crawl.seconds / max(crawl.bound(0.3, interval))
        verdict = "met" if ratio <= 1.1 else "MISSED"
        print(
            f"\ngoal: crawl time / bound <= 1.1 at 300 ms, concurrency {conc}: "
            f"{ratio:.2f} ({verdict})"
        )
    print(rerun_line("bench/bench_bound_ratio.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
