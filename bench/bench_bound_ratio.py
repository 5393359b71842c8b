"""Benchmark: run time against the physical bound on several workspace shapes (never asserts).

The physical bound of a run's network part is max(requests x interval, longest cursor chain x
latency): the pacer cannot go faster, and the pages of one chain follow each other. `requests`
counts every request the run needed, the web forms' included (the web-form pass overlaps the
crawl). With another client spending a share f of the workspace's budget on the same token, the
interval is max(MIN_INTERVAL, window / (limit x (1 - f))): what is left of 100 per 10 s.

That bound can be out of reach: where requests x interval and chain x latency nearly coincide,
the others' requests must fit between the chain's, and a turn of the chain only has room for
those at least 0.12 s from both its ends (a 0.3 s turn fits one; two stretch it to 0.36 s). So
each cell also gets the achievable bound: `chain_floor` gives the shortest run any schedule
could have with the cell's requests, its longest chain's answers as the server gave them and
0.12 s between requests (a relaxation solved exactly; tests/test_bench_floor.py checks it
against every schedule of small cases), and `window_floor` the same from the 100-per-10-s
window alone. A web form's chain also waits for the answer that named the form (the form list's
or a people page's): the quickest such answer counts as one more turn of its chain. A cell
whose achievable bound is over 1.05 x the issue's bound cannot reach 1.05 by construction; the
table marks it with *.

The sandbox's latency is the whole answer's (counted from the request's arrival, its own work
included), so `chain x latency` is what its chain of answers takes.

The matrix: shapes x latency x another client's share. Each shape runs in its own sandbox
process (limiter 100/10 s on); a first run with pacing off leaves the manifest a nightly run
finds (so the engine knows which chain is longest); then each cell is a second run with the
engine's defaults (--concurrency auto, MIN_INTERVAL 0.12 s). Requests, chains and the other
client's share come from the sandbox's own counters and request log; the run is timed from the
engine's `crawl` phase to its `finalize` phase (the people filter included).

    python bench/bench_bound_ratio.py            # the full matrix (about 40 minutes)
    python bench/bench_bound_ratio.py --quick    # 300 ms and 1 s, no other client
    python bench/bench_bound_ratio.py --shapes five-equal --latencies 600 --others 0,40
    python bench/bench_bound_ratio.py --shapes five-equal --latencies 100 --others 0 --trace t/
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
from _trace import join, summarize, tracing, write_tsv

from salesmap_tui.config import MIN_INTERVAL, RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.events import PhaseChanged, WorkspacePaused
from salesmap_tui.engine.pacer import forget_shared_pacers

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
EPS = 1e-9


def chain_floor(turns: list[float], others: int, gap: float, last: float) -> float:
    """The shortest time a run can take (a lower bound) when one cursor chain has len(turns)
    + 1 requests, request j + 1 leaving no sooner than turns[j] after request j (its answer
    must be back), `others` requests of other chains come on top, every two requests leave at
    least `gap` apart, and the run ends once the last answer, `last` after its request, is in.

    Relaxation: the others' own chains and answers are ignored (that only lowers the bound).
    Between two of the chain's requests turns[j] apart fit k others only if (k + 1) x gap <=
    that distance, so a turn with k others takes max(turns[j], (k + 1) x gap); an other before
    the chain's first request or after its last costs a whole gap. The cost of putting one
    more other into a turn never decreases (convex), so taking the cheapest extra costs
    greedily is exact for the relaxation.
    """
    base = sum(max(t, gap) for t in turns) + last
    extra: list[float] = []  # the costs below one gap, every turn's, in any order
    for t in turns:
        have = max(t, gap)
        k = 0
        while k < others:
            nxt = max(t, (k + 2) * gap)
            cost = nxt - have
            if cost >= gap - EPS:
                break
            extra.append(cost)
            have, k = nxt, k + 1
    extra.sort()
    cheap = extra[:others]
    return base + sum(cheap) + (others - len(cheap)) * gap


def window_floor(requests: int, per_window: int, window: float, gap: float, last: float) -> float:
    """A lower bound from the window alone: request k (from 0) leaves no sooner than
    floor(k / per_window) windows plus (k mod per_window) gaps after the first."""
    if requests <= 0 or per_window <= 0:
        return 0.0
    k = requests - 1
    return (k // per_window) * window + (k % per_window) * gap + last


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
    # its pages' response times, in order (server side); a form's chain starts with the answer
    # it waited for (see one_cell)
    chain_turns: list[float]
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
    def achievable(self) -> float:
        """The shortest run any scheduler could have here (`chain_floor`, `window_floor`)."""
        if not self.chain_turns:
            return self.nominal_bound
        turns = self.chain_turns[:-1]  # between the chain's requests
        last = self.chain_turns[-1]
        others = self.requests - len(self.chain_turns)
        floor = chain_floor(turns, others, MIN_INTERVAL, last)
        # the window's whole budget: another client's share is not ours to lose (the limiter
        # admits whoever comes first), so only the limit itself bounds a run from below
        lat = self.latency_ms / 1000
        window = window_floor(
            self.requests, RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW, MIN_INTERVAL, lat
        )
        return max(floor, window)

    @property
    def achievable_ratio(self) -> float:
        return self.seconds / self.achievable if self.achievable else float("nan")

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
    sandbox: SandboxProcess,
    shape: str,
    prep_db: Path,
    work: Path,
    latency_ms: float,
    other: int,
    trace_dir: Path | None = None,
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
    # each cell is a nightly run of its own process: no budget lowered by the cell before
    forget_shared_pacers()
    marks: dict[str, float] = {}
    pauses = 0

    def on_event(event: object) -> None:
        nonlocal pauses
        if isinstance(event, PhaseChanged):
            marks.setdefault(event.phase, time.monotonic())
        elif isinstance(event, WorkspacePaused):
            pauses += 1

    if trace_dir is None:
        result = run_snapshot(settings, on_event)
    else:
        with tracing() as trace:
            result = run_snapshot(settings, on_event)
    t_end = time.monotonic()
    stats = sandbox.stats()
    sandbox.http.post("/_sandbox/other", params={"per_window": 0}).raise_for_status()
    entries = sandbox.log()
    c0, c1 = marks.get("crawl", t_end), marks.get("finalize", t_end)
    if trace_dir is not None:
        reqs = join(trace, entries)
        tsv = trace_dir / f"{shape}-{latency_ms:g}ms-{other}pct.tsv"
        write_tsv(reqs, tsv, c0)
        free = RATE_LIMIT_REQUESTS * (1 - other / 100)
        for line in summarize(reqs, max(MIN_INTERVAL, RATE_LIMIT_WINDOW / free)):
            print(f"    {line}")
        print(f"    trace: every request, seconds from the crawl's start: {tsv}", flush=True)
    inside = [e for e in entries if c0 <= e["t"] < c1]
    answered = [e for e in inside if e["status"] != 429]
    per_path = Counter(e["path"] for e in answered)
    served: dict[str, float] = {}
    turns: dict[str, list[float]] = {}
    for e in answered:
        if e.get("done") is not None:
            served[e["path"]] = served.get(e["path"], 0.0) + e["done"] - e["t"]
            turns.setdefault(e["path"], []).append(e["done"] - e["t"])
    path, chain_s = max(served.items(), key=lambda kv: kv[1]) if served else ("-", 0.0)
    chain = max(per_path.values()) if per_path else 0
    if per_path.get(path, 0) < chain:  # name the chain with most pages when they differ
        path = per_path.most_common(1)[0][0]
    # a form's first request leaves only once an answer named the form: the form list's or a
    # people page's. The quickest of those answers is one more turn of the form's chain (and
    # its request one of the chain's), so the floor stays a lower bound
    starters = [
        e["done"] - e["t"]
        for e in answered
        if e.get("done") is not None and e["path"].endswith(("/webForm", "/people"))
    ]
    for p in turns:
        if "/webForm/" in p and starters:
            turns[p] = [min(starters), *turns[p]]
    # the floor is taken over the chain that gives the highest one (most pages or slowest)
    floor_path = path
    if turns:
        floor_path = max(
            turns,
            key=lambda p: chain_floor(
                turns[p][:-1], len(answered) - len(turns[p]), MIN_INTERVAL, turns[p][-1]
            ),
        )
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
        chain_turns=turns.get(floor_path, []),
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
    parser.add_argument(
        "--trace",
        metavar="DIR",
        type=Path,
        help="trace every request (asked, slot, granted, sent, arrived, done, answer, its page's "
        "commit) into DIR/<cell>.tsv and print where each cell's time went (bench/_trace.py)",
    )
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    latencies = [float(x) for x in args.latencies.split(",")]
    others = [int(x) for x in args.others.split(",")]
    if args.quick:
        latencies, others = [300.0, 1000.0], [0]
    if args.trace is not None:
        args.trace.mkdir(parents=True, exist_ok=True)
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
                        cell = one_cell(sandbox, shape, prep.db_path, work, ms, other, args.trace)
                        cells.append(cell)
                        print(
                            f"  {ms:>5g} ms, other {other:>2}%: {cell.seconds:6.2f} s, "
                            f"{cell.requests} requests (+{cell.n429} 429), chain {cell.chain} "
                            f"({cell.chain_path}); bound {cell.bound:6.2f} s; "
                            f"ratio {cell.nominal_ratio:.3f} against the issue's bound, "
                            f"{cell.achievable_ratio:.3f} against the achievable "
                            f"{cell.achievable:.2f} s (served {cell.ratio:.3f}); "
                            f"exit {cell.exit_code}",
                            flush=True,
                        )

    print()
    print(
        "bound = the issue's: max(requests x interval, chain x configured latency); achievable "
        "= the shortest run any schedule could have with these requests, the chain's answers "
        "as the server gave them and 0.12 s between requests (chain_floor, window_floor); "
        "served = max(requests x interval, the chain's answer times summed); interval = "
        f"max({MIN_INTERVAL}, {RATE_LIMIT_WINDOW:g} s / ({RATE_LIMIT_REQUESTS} x (1 - other))); "
        "rate use = (requests / time) x interval; * = the achievable run is over 1.05 x the "
        "issue's bound: that cell cannot reach 1.05 by construction"
    )
    head = (
        f"| {'shape':<10} | {'latency':>7} | {'other':>5} | {'reqs':>4} | {'429s':>4} | "
        f"{'chain':>5} | {'bound':>7} | {'achiev.':>8} | {'served':>7} | {'time':>7} | "
        f"{'vs bound':>8} | {'vs achiev.':>10} | {'vs served':>9} | {'rate use':>8} | "
        f"{'other got':>9} | {'exit':>4} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for c in cells:
        star = "*" if c.achievable > 1.05 * c.nominal_bound else " "
        print(
            f"| {c.shape:<10} | {c.latency_ms:>5g}ms | {c.other_pct:>4}% | {c.requests:>4} | "
            f"{c.n429:>4} | {c.chain:>5} | {c.nominal_bound:>6.2f}s | "
            f"{c.achievable:>6.2f}s{star} | "
            f"{c.bound:>6.2f}s | {c.seconds:>6.2f}s | {c.nominal_ratio:>8.3f} | "
            f"{c.achievable_ratio:>10.3f} | {c.ratio:>9.3f} | {c.rate_use:>8.2f} | "
            f"{c.other_share:>8.0%} | {c.exit_code:>4} |"
        )
    worst = max(cells, key=lambda c: c.nominal_ratio)
    verdict = "met" if worst.nominal_ratio <= 1.05 else "MISSED"
    ach = max(cells, key=lambda c: c.achievable_ratio)
    ach_verdict = "met" if ach.achievable_ratio <= 1.05 else "MISSED"
    print(
        f"\nworst against the issue's bound: {worst.shape}, {worst.latency_ms:g} ms, other "
        f"{worst.other_pct}%: {worst.nominal_ratio:.3f} (goal <= 1.05: {verdict}); worst "
        f"against the achievable: {ach.shape}, {ach.latency_ms:g} ms, other {ach.other_pct}%: "
        f"{ach.achievable_ratio:.3f} (<= 1.05: {ach_verdict})"
    )
    unreachable = [c for c in cells if c.achievable > 1.05 * c.nominal_bound]
    for c in unreachable:
        print(
            f"  by construction over 1.05: {c.shape}, {c.latency_ms:g} ms, other {c.other_pct}%: "
            f"no schedule beats {c.achievable:.2f} s = {c.achievable / c.nominal_bound:.3f} x "
            "the issue's bound"
        )
    failed = [c for c in cells if c.exit_code != 0]
    if failed:
        print(f"runs that did not exit 0: {len(failed)}")
    print(rerun_line("bench/bench_bound_ratio.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
