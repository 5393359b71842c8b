"""The global pacer, on a virtual clock: spacing, sliding window, fairness, cancel, stats."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Awaitable
from typing import Any

import pytest

from salesmap_tui.engine.errors import RunCancelled
from salesmap_tui.engine.events import RequestStats
from salesmap_tui.engine.pacer import Pacer, cancellable_sleep

EPS = 1e-9


class VirtualTime:
    """A clock that jumps to the next wake-up once every task is asleep (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._seq, fut))
        self._seq += 1
        await fut

    async def run(self, coros: list[Awaitable[Any]]) -> list[Any]:
        tasks = [asyncio.ensure_future(c) for c in coros]
        idle_spins = 0
        while True:
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            if self._sleepers and len(self._sleepers) == len(pending):
                wake, _, fut = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                fut.set_result(None)
                idle_spins = 0
            else:
                idle_spins += 1
                assert idle_spins < 10_000, "tasks blocked on something other than the clock"
            await asyncio.sleep(0)
        return [t.result() for t in tasks]


async def _grants(
    pacer: Pacer, vt: VirtualTime, n: int, log: list[tuple[float, int]], who: int
) -> None:
    for _ in range(n):
        await pacer.acquire()
        log.append((vt.now, who))


def _check_rules(times: list[float], min_interval: float, max_requests: int, window: float) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= min_interval - EPS
    for i in range(len(times) - max_requests):
        # max_requests + 1 grants never fit in one window
        assert times[i + max_requests] - times[i] >= window - EPS


async def test_interval_bound_5000_grants_8_tasks() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.012, 100, 1.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 625, log, who) for who in range(8)])

    times = [t for t, _ in log]
    assert len(times) == 5000 and pacer.total == 5000
    assert times == sorted(times)
    _check_rules(times, 0.012, 100, 1.0)
    # min_interval binds here (83/s < 100/s): total time is exactly the spacing bound
    assert times[-1] - times[0] == pytest.approx(4999 * 0.012, rel=1e-6)
    # every wait is chopped into <= 0.1 s pieces so cancel is seen in time
    assert max(vt.sleeps) <= 0.1 + EPS


async def test_window_bound_5000_grants_8_tasks() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.005, 100, 1.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 625, log, who) for who in range(8)])

    times = [t for t, _ in log]
    assert len(times) == 5000
    _check_rules(times, 0.005, 100, 1.0)
    # the window binds: 50 bursts of 100 (each 99 * 5 ms long), one window apart
    assert times[-1] - times[0] == pytest.approx(49 * 1.0 + 99 * 0.005, rel=1e-6)


async def test_window_only_no_interval() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.0, 10, 2.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 25, log, who) for who in range(4)])
    times = [t for t, _ in log]
    _check_rules(times, 0.0, 10, 2.0)
    assert times[-1] == pytest.approx(18.0)  # 10 at 0, 10 at 2 s ... 10 at 18 s
    assert pacer.window_count() == 10


async def test_grants_are_fair_across_tasks() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.01, 1000, 1.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 200, log, who) for who in range(8)])
    end = log[-1][0]
    finished = {who: max(t for t, w in log if w == who) for who in range(8)}
    # FIFO slots: no task finishes its share much before the others (the first task may get a
    # head start of a few slots: it runs before the others have even reached the pacer)
    assert min(finished.values()) >= end - 3 * 8 * 0.01 - EPS
    # past the start, none of them takes more than two grants in a row
    run = longest = 1
    steady = log[32:]
    for (_, a), (_, b) in itertools.pairwise(steady):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    assert longest <= 2


async def test_off_pacer_never_sleeps() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.0, 0, 0.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 250, log, who) for who in range(4)])
    assert pacer.total == 1000
    assert vt.sleeps == []
    assert vt.now == 0.0


async def test_cancel_during_wait_raises_within_a_poll() -> None:
    vt = VirtualTime()
    cancel = threading.Event()
    pacer = Pacer(100.0, 0, 0.0, clock=vt.clock, sleep=vt.sleep)
    await pacer.acquire(cancel)  # first slot is now

    async def second() -> None:
        await pacer.acquire(cancel)

    async def canceller() -> None:
        await vt.sleep(0.35)
        cancel.set()

    task = asyncio.ensure_future(second())
    with pytest.raises(RunCancelled):
        await vt.run([task, canceller()])
    assert vt.now <= 0.35 + 0.1 + EPS
    assert pacer.total == 1


async def test_cancel_already_set_raises_at_once() -> None:
    cancel = threading.Event()
    cancel.set()
    pacer = Pacer(0.0, 0, 0.0)
    with pytest.raises(RunCancelled):
        await pacer.acquire(cancel)
    assert pacer.total == 0


async def test_stats_are_throttled() -> None:
    vt = VirtualTime()
    seen: list[RequestStats] = []
    pacer = Pacer(0.1, 5, 1.0, clock=vt.clock, sleep=vt.sleep, on_stats=seen.append)
    log: list[tuple[float, int]] = []
    await vt.run([_grants(pacer, vt, 30, log, who) for who in range(2)])
    assert len(seen) >= 5
    elapsed = [s.elapsed_s for s in seen]
    assert all(b - a >= 0.5 - EPS for a, b in itertools.pairwise(elapsed))
    assert all(s.limit == 5 and s.window_s == 1.0 for s in seen)
    assert all(s.last_window_requests <= 5 for s in seen)
    assert seen[-1].total_requests <= 60
    assert pacer.stats().total_requests == 60


async def test_cancellable_sleep_real_clock() -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    try:
        with pytest.raises(RunCancelled):
            await asyncio.wait_for(cancellable_sleep(60.0, cancel), timeout=5)
    finally:
        timer.cancel()


def test_one_pacer_across_event_loops() -> None:
    # the pacing state survives from one asyncio.run to the next (e.g. crawl, then web forms)
    vt = VirtualTime()
    pacer = Pacer(0.0, 2, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: list[tuple[float, int]] = []
    asyncio.run(vt.run([_grants(pacer, vt, 2, log, 0)]))
    asyncio.run(vt.run([_grants(pacer, vt, 2, log, 1)]))
    assert pacer.total == 4
    assert [t for t, _ in log] == [0.0, 0.0, 10.0, 10.0]


async def test_min_interval_zero_turns_both_rules_off() -> None:
    """CONTRACT.md: `--min-interval 0` turns pacing off — no interval and no 100-per-10-s window."""
    from salesmap_tui.engine.pacer import shared_pacer

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = shared_pacer(
        "http://127.0.0.1:1/v2", "t", 0.0, 100, 10.0, clock=lambda: 0.0, sleep=sleep
    )
    for _ in range(500):
        await pacer.acquire()
    assert pacer.total == 500
    assert [s for s in slept if s > 0] == []
    assert pacer.stats().limit == 0  # the UI shows "pacing off"
