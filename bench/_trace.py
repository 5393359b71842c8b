"""Per-request trace of one engine run (bench_bound_ratio.py --trace), for finding lost time.

While installed, it wraps four engine methods at class level (restored on exit; the engine
itself carries no tracing code): `Pacer.acquire` (when a request asked for a slot and when it
was granted), `Pacer.mark_sent` (its headers written), `Pacer.release` (its answer read) and
`WriteThread.run` (a page commit queued, started, done). Joined with the sandbox's arrival log
(same monotonic clock: the sandbox is a process on the same machine), each request gets:

    asked   the chain asked the pacer for a slot (its previous page answered and parsed)
    slot    the slot the pacer granted (the time the rules allow it to leave)
    granted the waiter woke with its grant (up to the pacer's lead ahead of the slot)
    ready   the request was built and about to write its headers (`Pacer.note_prep`)
    sent    its headers were on the wire (`mark_sent`)
    arrived the sandbox stamped its arrival
    done    the sandbox's answer left (its latency after arrival)
    answer  the engine had the answer read (`release`)
    wq/ws/we  the page's commit was queued / started / done on the writer thread

`summarize` splits the time between consecutive arrivals beyond one interval into where it
went: nobody asked yet (every chain waiting on answers or on the engine's own work), the pacer
held a waiter past the free slot (in-flight cap, a held critical slot, the window), the grant
reached the wire late, the wire to the sandbox's stamp. It also splits the longest chain's turn.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesmap_tui.engine.pacer import Pacer
from salesmap_tui.engine.writer import WriteThread

FIELDS = (
    "asked",
    "slot",
    "granted",
    "ready",
    "sent",
    "arrived",
    "done",
    "answer",
    "wq",
    "ws",
    "we",
)


@dataclass
class Req:
    key: str  # the chain's path, or "-" for a request outside any chain
    priority: float
    asked: float
    in_flight: int  # requests in flight when it asked
    critical: str = ""  # the chains the pacer held (critical) right after its grant
    slot: float = float("nan")
    granted: float = float("nan")
    ready: float = float("nan")
    sent: float = float("nan")
    answer: float = float("nan")
    arrived: float = float("nan")
    done: float = float("nan")
    wq: float = float("nan")
    ws: float = float("nan")
    we: float = float("nan")


@dataclass
class Trace:
    reqs: list[Req] = field(default_factory=list)
    by_slot: dict[float, Req] = field(default_factory=dict)
    writes: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _label(args: tuple[Any, ...]) -> str:
    first = args[0] if args else None
    spec = getattr(first, "spec", None)
    if spec is not None:
        return str(spec.path)
    form_id = getattr(first, "form_id", None)
    if form_id is not None:
        return f"/webForm/{form_id}/submit"
    return "-"


@contextmanager
def tracing() -> Iterator[Trace]:
    trace = Trace()
    acquire, mark_sent, release, run, note_prep = (
        Pacer.acquire,
        Pacer.mark_sent,
        Pacer.release,
        WriteThread.run,
        Pacer.note_prep,
    )
    latest: list[Req] = []  # the newest grant: the next request to be ready is its

    def t_note_prep(self: Pacer, seconds: float) -> None:
        if latest and latest[0].ready != latest[0].ready:
            latest[0].ready = time.monotonic()
        note_prep(self, seconds)

    async def t_acquire(self: Pacer, *args: Any, **kw: Any) -> float:
        req = Req(
            key=kw.get("key") or "-",
            priority=float(kw.get("priority", 0.0)),
            asked=time.monotonic(),
            in_flight=self.in_flight,
        )
        slot = await acquire(self, *args, **kw)
        req.slot, req.granted = slot, time.monotonic()
        req.critical = ",".join(sorted(self.critical_chains()))
        trace.reqs.append(req)
        trace.by_slot[slot] = req
        latest[:] = [req]
        return slot

    def t_mark_sent(self: Pacer, granted_at: float) -> None:
        req = trace.by_slot.get(granted_at)
        if req is not None and req.sent != req.sent:  # nan: the first report
            req.sent = time.monotonic()
        mark_sent(self, granted_at)

    def t_release(
        self: Pacer, latency_s: float | None = None, granted_at: float | None = None
    ) -> None:
        req = trace.by_slot.get(granted_at) if granted_at is not None else None
        if req is not None and latency_s is not None:
            req.answer = time.monotonic()
        release(self, latency_s, granted_at)

    async def t_run(self: WriteThread, fn: Any, *args: Any) -> Any:
        label, queued = _label(args), time.monotonic()
        started: list[float] = []

        def timed(*a: Any) -> Any:
            started.append(time.monotonic())
            return fn(*a)

        try:
            return await run(self, timed, *args)
        finally:
            with trace.lock:
                trace.writes.setdefault(label, []).append(
                    (queued, started[0] if started else queued, time.monotonic())
                )

    Pacer.acquire = t_acquire  # type: ignore[method-assign]
    Pacer.mark_sent = t_mark_sent  # type: ignore[method-assign]
    Pacer.release = t_release  # type: ignore[method-assign]
    WriteThread.run = t_run  # type: ignore[method-assign]
    Pacer.note_prep = t_note_prep  # type: ignore[method-assign]
    try:
        yield trace
    finally:
        Pacer.acquire = acquire  # type: ignore[method-assign]
        Pacer.mark_sent = mark_sent  # type: ignore[method-assign]
        Pacer.release = release  # type: ignore[method-assign]
        WriteThread.run = run  # type: ignore[method-assign]
        Pacer.note_prep = note_prep  # type: ignore[method-assign]


def _match(path: str, key: str) -> bool:
    return path == key or path.endswith(key)


def join(trace: Trace, entries: list[dict[str, Any]]) -> list[Req]:
    """Attach the sandbox's arrival and answer stamps (n-th request of a path to its n-th
    arrival) and each chain's page commits (n-th answered page to its n-th write)."""
    reqs = sorted(trace.reqs, key=lambda r: r.slot)
    arrivals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(entries, key=lambda e: e["t"]):  # the log is the engine's requests only
        arrivals[e["path"]].append(e)
    per_key: dict[str, list[Req]] = defaultdict(list)
    for r in reqs:
        per_key[r.key].append(r)
    for key, rs in per_key.items():
        if key == "-":
            continue
        paths = [p for p in arrivals if _match(p, key)]
        if not paths:
            continue
        for r, e in zip(rs, arrivals[paths[0]], strict=False):
            r.arrived, r.done = e["t"], e["done"] if e.get("done") is not None else float("nan")
        writes = next((w for label, w in trace.writes.items() if _match(label, key)), [])
        answered = [r for r in rs if r.answer == r.answer]
        for r, (wq, ws, we) in zip(answered, writes, strict=False):
            r.wq, r.ws, r.we = wq, ws, we
    return reqs


def write_tsv(reqs: list[Req], path: Path, t0: float) -> None:
    with path.open("w") as out:
        out.write("\t".join(("key", "priority", "in_flight", *FIELDS, "critical")) + "\n")
        for r in reqs:
            vals = [getattr(r, f) - t0 for f in FIELDS]
            out.write(
                "\t".join(
                    (
                        r.key,
                        f"{r.priority:g}",
                        str(r.in_flight),
                        *(f"{v:.4f}" for v in vals),
                        r.critical or "-",
                    )
                )
                + "\n"
            )


def _ms(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    return f"mean {1000 * statistics.fmean(xs):.1f} / max {1000 * max(xs):.1f} ms"


def summarize(reqs: list[Req], interval: float) -> list[str]:
    """Lines saying where the run's time beyond one interval between arrivals went."""
    timed = sorted((r for r in reqs if r.arrived == r.arrived), key=lambda r: r.arrived)
    lines: list[str] = []
    if len(timed) < 2:
        return ["trace: fewer than two requests matched the arrival log"]
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(timed)]
    idle = {"nobody asked": 0.0, "pacer held": 0.0, "grant to wire": 0.0, "wire to stamp": 0.0}
    for a, b in itertools.pairwise(timed):
        free = a.arrived + interval  # the earliest the next one could have arrived
        excess = b.arrived - free
        if excess <= 0:
            continue
        # walk the next request's own timeline from the free slot on
        marks = [b.asked, b.granted, b.sent if b.sent == b.sent else b.granted, b.arrived]
        prev = free
        for name, mark in zip(idle, marks, strict=True):
            take = max(0.0, min(mark, b.arrived) - prev)
            idle[name] += take
            prev = max(prev, mark)
    span = timed[-1].arrived - timed[0].arrived
    lines.append(
        f"trace: {len(timed)} requests over {span:.2f} s; arrival gaps mean "
        f"{1000 * statistics.fmean(gaps):.1f} ms, min {1000 * min(gaps):.1f} ms, "
        f"{sum(1 for g in gaps if g > interval + 0.005)} over {1000 * interval + 5:.0f} ms; "
        f"beyond {1000 * interval:.0f} ms a gap: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in idle.items())
    )
    sent = [r for r in timed if r.sent == r.sent]
    lines.append(
        "trace: slot -> granted "
        + _ms([r.granted - r.slot for r in timed])
        + "; slot -> ready "
        + _ms([r.ready - r.slot for r in timed])
        + "; slot -> sent "
        + _ms([r.sent - r.slot for r in sent])
        + "; sent -> arrived "
        + _ms([r.arrived - r.sent for r in sent])
        + "; done -> answer "
        + _ms([r.answer - r.done for r in timed])
        + "; write queued -> done "
        + _ms([r.we - r.wq for r in timed])
    )
    chains: dict[str, list[Req]] = defaultdict(list)
    for r in timed:
        if r.key != "-":
            chains[r.key].append(r)
    if chains:
        key, rs = max(chains.items(), key=lambda kv: (len(kv[1]), kv[1][-1].arrived))
        parts: dict[str, list[float]] = defaultdict(list)
        for a, b in itertools.pairwise(rs):
            parts["served"].append(a.done - a.arrived)
            parts["done->answer"].append(a.answer - a.done)
            parts["answer->asked"].append(b.asked - a.answer)
            parts["asked->slot"].append(b.slot - b.asked)
            parts["slot->arrived"].append(b.arrived - b.slot)
            parts["turn"].append(b.arrived - a.arrived)
        lines.append(
            f"trace: longest chain {key} ({len(rs)} pages), per turn: "
            + "; ".join(f"{k} {1000 * statistics.fmean(v):.1f} ms" for k, v in parts.items() if v)
        )
    return lines
