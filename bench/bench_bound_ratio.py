"""Benchmark: run time against the physical bound on several workspace shapes (never asserts).

The physical bound of a run's network part is max(requests x interval, longest cursor chain x
latency): the pacer cannot go faster, and the pages of one chain follow each other. `requests`
counts every request the run needed, the web forms' included (the web-form pass overlaps the
crawl). With another client spending a share f of the workspace's budget on the same token, the
interval is max(MIN_INTERVAL, window / (limit x (1 - f))): what is left of 100 per 10 s.

The matrix: shapes x latency x another client's share. Each shape runs in its own sandbox
process (limiter 100/10 s on); a first run with pacing off leaves the manifest a nightly run
finds (so the engine knows which chain is longest); then each cell is a second run with the
engine's defaults (--concurrency auto, MIN_INTERVAL 0.12 s). Requests, chains and the other
client's share come from the sandbox's own counters and request log; the run is timed from the
engine's `crawl` phase to its `finalize` phase (the people filter included).

    python bench/bench_bound_ratio.py            # the full matrix (about 40 minutes)
    python bench/bench_bound_ratio.py --quick    # 300 ms and 1 s, no other client
    python bench/bench_bound_ratio.py --shapes five-equal --latencies 600 --others 0,40
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SandboxProcess, machine, rerun_line, settings_for, stamp

from salesmap_tui.config import MIN_INTERVAL, RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.events import PhaseChanged, WorkspacePaused

# name -> sandbox arguments
SHAPES: dict[str, tuple[str, ...]] = {
    # the sandbox's own shape: 500 per list, leads (10 a page) are the longest chain
    "lead-bound": ("--scale", "500"),
    # five lists of 40 pages each (leads: 400 records at 10 a page), two small forms
    "five-equal": (
        "--scale", "2000", "--counts", "lead=400", "--forms", "2", "--submissions", "40",
    ),
    # small lists, three forms of 30 pages of submissions each
    "3-forms-30": ("--scale", "150", "--forms", "3", "--submissions", "1500"),
    # small lists, forty forms of one page each
    "40-forms-1": ("--scale", "150", "--forms", "40", "--submissions", "40"),
    # one long deal chain beside small lists
    "long-deal": ("--scale", "150", "--counts", "deal=3000", "--forms", "2", "--submissions", "40"),
}  # fmt: skip
LATENCIES_MS = (0, 100, 300, 600, 1000)
OTHERS_PCT = (0, 40)


@dataclass
class Cell:
    shape: str
    latency_ms: float
    other_pct: int
    seconds: float
    requests: int  # answered requests (the 429s a full window caused are counted apart)
    n429: int
    chain: int
    chain_path: str
    chain_s: float  # the longest chain's own response times, summed (server side)
    other_share: float  # the other client's admitted requests / the window's budget
    pauses: int
    exit_code: int
    rows: int

    @property
    def interval(self) -> float:
        free = RATE_LIMIT_REQUESTS * (1 - self.other_pct / 100)
        return max(MIN_INTERVAL, RATE_LIMIT_WINDOW / free)

    @property
    def pacer_bound(self) -> float:
        return self.requests * self.interval

    @property
    def chain_bound(self) -> float:
        """Nominal: chain x the configured latency."""
        return self.chain * self.latency_ms / 1000

    @property
    def bound(self) -> float:
        """Physical: the chain as long as the server really took to answer each of its pages."""
        return max(self.pacer_bound, self.chain_s)

    @property
    def nominal_bound(self) -> float:
        return max(self.pacer_bound, self.chain_bound)

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound if self.bound else float("nan")

    @property
    def nominal_ratio(self) -> float:
        return self.seconds / self.nominal_bound if self.nominal_bound else float("nan")

    @property
    def rate_use(self) -> float:
        return self.requests / self.seconds * self.interval if self.seconds else float("nan")


def one_cell(
    sandbox: SandboxProcess, shape: str, prep_db: Path, work: Path, latency_ms: float, other: int
) -> Cell:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = settings_for(sandbox, work, no_backup=True)
    shutil.copy(prep_db, settings.db_path)  # the previous run's DB and manifest
    sandbox.set_latency(latency_ms)
    sandbox.http.post(
        "/_sandbox/other", params={"per_window": RATE_LIMIT_REQUESTS * other // 100}
    ).raise_for_status()
    time.sleep(RATE_LIMIT_WINDOW if other else 0.0)  # the other client is already going
    sandbox.reset()
    marks: dict[str, float] = {}
    pauses = 0

    def on_event(event: object) -> None:
        nonlocal pauses
        if isinstance(event, PhaseChanged):
            marks.setdefault(event.phase, time.monotonic())
        elif isinstance(event, WorkspacePaused):
            pauses += 1

    result = run_snapshot(settings, on_event)
    t_end = time.monotonic()
    stats = sandbox.stats()
    sandbox.http.post("/_sandbox/other", params={"per_window": 0}).raise_for_status()
    entries = sandbox.log()
    c0, c1 = marks.get("crawl", t_end), marks.get("finalize", t_end)
    inside = [e for e in entries if c0 <= e["t"] < c1]
    answered = [e for e in inside if e["status"] != 429]
    per_path = Counter(e["path"] for e in answered)
    served: dict[str, float] = {}
    for e in answered:
        if e.get("done") is not None:
            served[e["path"]] = served.get(e["path"], 0.0) + e["done"] - e["t"]
    path, chain_s = max(served.items(), key=lambda kv: kv[1]) if served else ("-", 0.0)
    chain = max(per_path.values()) if per_path else 0
    if per_path.get(path, 0) < chain:  # name the chain with most pages when they differ
        path = per_path.most_common(1)[0][0]
    seconds = c1 - c0
    budget = RATE_LIMIT_REQUESTS / RATE_LIMIT_WINDOW * max(seconds, 1e-9)
    rows = sum(t.get("rows", 0) for t in result.tables.values())
    return Cell(
        shape=shape,
        latency_ms=latency_ms,
        other_pct=other,
        seconds=seconds,
        requests=len(answered),
        n429=len(inside) - len(answered),
        chain=chain,
        chain_path=path,
        chain_s=chain_s,
        other_share=stats.get("other_admitted", 0) / budget if other else 0.0,
        pauses=pauses,
        exit_code=result.exit_code,
        rows=rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    parser.add_argument(
        "--latencies", default=",".join(str(x) for x in LATENCIES_MS), help="ms, comma-separated"
    )
    parser.add_argument(
        "--others",
        default=",".join(str(x) for x in OTHERS_PCT),
        help="another client's share of the budget, in %%, comma-separated",
    )
    parser.add_argument("--quick", action="store_true", help="300 and 1000 ms, no other client")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    latencies = [float(x) for x in args.latencies.split(",")]
    others = [int(x) for x in args.others.split(",")]
    if args.quick:
        latencies, others = [300.0, 1000.0], [0]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        raise SystemExit(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")

    print(f"bench_bound_ratio  {stamp()}  {machine()}")
    print(
        f"limiter {RATE_LIMIT_REQUESTS}/{RATE_LIMIT_WINDOW:g} s on; MIN_INTERVAL {MIN_INTERVAL} s; "
        "engine defaults (--concurrency auto); a previous run's manifest in place"
    )
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="bench-bound-") as tmp:
        root = Path(tmp)
        for shape in shapes:
            with SandboxProcess(*SHAPES[shape]) as sandbox:
                # the first run paced as the product is: the sandbox's limiter is on
                prep = settings_for(sandbox, root / shape / "prep", no_backup=True)
                first = run_snapshot(prep)
                if first.exit_code != 0:
                    raise SystemExit(f"{shape}: first run failed: {first.message}")
                print(f"{shape} ({' '.join(SHAPES[shape])}): {first.tables}", flush=True)
                for ms in latencies:
                    for other in others:
                        work = root / shape / f"run-{ms:g}-{other}"
                        cell = one_cell(sandbox, shape, prep.db_path, work, ms, other)
                        cells.append(cell)
                        print(
                            f"  {ms:>5g} ms, other {other:>2}%: {cell.seconds:6.2f} s, "
                            f"{cell.requests} requests (+{cell.n429} 429), chain {cell.chain} "
                            f"({cell.chain_path}); bound {cell.bound:6.2f} s; "
                            f"ratio {cell.ratio:.3f} (nominal {cell.nominal_ratio:.3f}); "
                            f"exit {cell.exit_code}",
                            flush=True,
                        )

    print()
    print(
        "ratio = time / max(requests x interval, chain served); chain served = the longest "
        "chain's server times (latency + the sandbox's own work), summed; nominal = the same "
        "with chain x configured latency; interval = "
        f"max({MIN_INTERVAL}, {RATE_LIMIT_WINDOW:g} s / ({RATE_LIMIT_REQUESTS} x (1 - other))); "
        "rate use = (requests / time) x interval"
    )
    head = (
        f"| {'shape':<10} | {'latency':>7} | {'other':>5} | {'reqs':>4} | {'429s':>4} | "
        f"{'chain':>5} | {'pacer b.':>8} | {'chain b.':>8} | {'served':>7} | {'time':>7} | "
        f"{'ratio':>6} | {'nominal':>7} | {'rate use':>8} | {'other got':>9} | {'exit':>4} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for c in cells:
        print(
            f"| {c.shape:<10} | {c.latency_ms:>5g}ms | {c.other_pct:>4}% | {c.requests:>4} | "
            f"{c.n429:>4} | {c.chain:>5} | {c.pacer_bound:>7.2f}s | {c.chain_bound:>7.2f}s | "
            f"{c.chain_s:>6.2f}s | {c.seconds:>6.2f}s | {c.ratio:>6.3f} | "
            f"{c.nominal_ratio:>7.3f} | {c.rate_use:>8.2f} | "
            f"{c.other_share:>8.0%} | {c.exit_code:>4} |"
        )
    worst = max(cells, key=lambda c: c.ratio)
    verdict = "met" if worst.ratio <= 1.05 else "MISSED"
    nominal = max(cells, key=lambda c: c.nominal_ratio)
    print(
        f"\nworst cell: {worst.shape}, {worst.latency_ms:g} ms, other {worst.other_pct}%: "
        f"ratio {worst.ratio:.3f} (goal <= 1.05: {verdict}); worst against the nominal bound: "
        f"{nominal.shape}, {nominal.latency_ms:g} ms, other {nominal.other_pct}%: "
        f"{nominal.nominal_ratio:.3f}"
    )
    failed = [c for c in cells if c.exit_code != 0]
    if failed:
        print(f"runs that did not exit 0: {len(failed)}")
    print(rerun_line("bench/bench_bound_ratio.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
