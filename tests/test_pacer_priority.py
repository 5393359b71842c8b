"""Pacer priorities on a virtual clock: the longest chain first, its next slot kept free."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from salesmap_tui.engine.pacer import Pacer, shared_pacer
from tests.test_pacer import EPS, VirtualTime

Log = list[tuple[float, str]]


async def _chain(
    pacer: Pacer,
    vt: VirtualTime,
    log: Log,
    name: str,
    pages: int,
    turn: float,
    priority: Callable[[int], float],
) -> None:
    """A cursor chain: each request waits for the previous answer (`turn` seconds)."""
    for i in range(pages):
        await pacer.acquire(priority=priority(i), key=name)
        log.append((vt.now, name))
        await vt.sleep(turn)


def _rules(log: Log, interval: float) -> None:
    times = [t for t, _ in log]
    assert times == sorted(times)
    assert min(b - a for a, b in itertools.pairwise(times)) >= interval - EPS


async def test_higher_priority_waiters_go_first() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.1, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []

    async def one(name: str, priority: float) -> None:
        await pacer.acquire(priority=priority)
        log.append((vt.now, name))

    # all queue at t=0; the first caller takes the free slot, the rest go by priority
    await vt.run([one(f"p{p}", p) for p in (1, 5, 3, 9, 2, 9)])
    assert [n for _, n in log] == ["p1", "p9", "p9", "p5", "p3", "p2"]
    _rules(log, 0.1)


async def test_longest_chain_never_waits_behind_shorter_ones() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    remaining: Callable[[int], Callable[[int], float]] = lambda n: lambda i: float(n - i)  # noqa: E731
    await vt.run(
        [
            _chain(pacer, vt, log, "lead", 30, 0.3, remaining(30)),
            *(_chain(pacer, vt, log, ep, 6, 0.3, remaining(6)) for ep in ("org", "people", "deal")),
        ]
    )
    _rules(log, 0.12)
    lead = [t for t, n in log if n == "lead"]
    gaps = [b - a for a, b in itertools.pairwise(lead)]
    # once the pacer has seen one turn of the chain, every next page goes out on arrival
    assert max(gaps[1:]) <= 0.3 + EPS
    assert lead[-1] <= 0.36 + 28 * 0.3 + EPS
    assert sum(1 for _, n in log if n != "lead") == 18  # the others all got their pages


async def test_every_critical_chain_is_held_not_only_the_top_one() -> None:
    # three equal 30-page chains at 0.6 s a turn end the run (30 x 0.6 = 18 s against 130
    # requests x 0.12 = 15.6 s at the pacer); short chains and a steady stream fill the gaps
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    remaining: Callable[[int], Callable[[int], float]] = lambda n: lambda i: float(n - i)  # noqa: E731
    seen: list[set[str]] = []

    async def probe() -> None:
        await vt.sleep(3.0)
        seen.append(pacer.critical_chains())

    await vt.run(
        [
            *(_chain(pacer, vt, log, ep, 30, 0.6, remaining(30)) for ep in ("a", "b", "c")),
            *(_chain(pacer, vt, log, ep, 4, 0.6, remaining(4)) for ep in ("org", "people")),
            _chain(pacer, vt, log, "memo", 32, 0.0, remaining(32)),
            probe(),
        ]
    )
    _rules(log, 0.12)
    assert seen == [{"a", "b", "c"}]  # the short chains and the stream are not critical
    for ep in ("a", "b", "c"):
        times = [t for t, n in log if n == ep]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # once the pacer has seen one turn, each chain's next page goes out on arrival
        assert max(gaps[1:]) <= 0.6 + EPS, (ep, max(gaps[1:]))
    assert sum(1 for _, n in log if n == "memo") == 32  # the others all got their pages


async def test_without_priorities_the_hold_is_not_used() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    await vt.run([_chain(pacer, vt, log, ep, 8, 0.3, lambda i: 0.0) for ep in ("a", "b", "c", "d")])
    _rules(log, 0.12)
    # four equal chains keep the pacer saturated: FIFO, no slot left idle
    times = [t for t, _ in log]
    assert times[-1] - times[0] <= (len(times) - 1) * 0.12 + EPS


async def test_hold_lapses_when_the_chain_stops() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    await vt.run(
        [
            _chain(pacer, vt, log, "lead", 5, 0.3, lambda i: 100.0),
            _chain(pacer, vt, log, "memo", 40, 0.0, lambda i: 1.0),
        ]
    )
    _rules(log, 0.12)
    last_lead = max(t for t, n in log if n == "lead")
    after = [t for t, n in log if n == "memo" and t > last_lead]
    # the slot kept for a sixth lead page that never comes (and the others spread out for the
    # pages it claimed to have left) costs the others until the hold lapses, one turn and one
    # interval after its last grant, once: then they go at the full rate
    assert after[0] <= last_lead + 0.3 + 0.12 + EPS
    assert after[-1] - after[0] <= (len(after) - 1) * 0.12 + EPS
    assert [round(b - a, 6) for a, b in itertools.pairwise(after)][2:] == [0.12] * (len(after) - 3)


class LateWakeups(VirtualTime):
    """Every third sleep ends 70 ms late, as on a busy event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def sleep(self, seconds: float) -> None:
        self.calls += 1
        await super().sleep(seconds + (0.07 if self.calls % 3 == 0 else 0.0))


async def test_a_late_wakeup_never_lets_two_requests_out_back_to_back() -> None:
    vt = LateWakeups()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []

    async def grants(name: str) -> None:
        for _ in range(50):
            await pacer.acquire()
            log.append((vt.now, name))

    await vt.run([grants(n) for n in "abcd"])
    assert len(log) == 200
    # the rules hold between the times requests were really let go, not just between slots
    _rules(log, 0.12)


async def test_a_late_send_pushes_the_next_slot_back() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []

    async def first() -> None:
        granted = await pacer.acquire()
        log.append((vt.now, "first"))
        await vt.sleep(0.03)  # e.g. opening the connection
        pacer.mark_sent(granted)

    async def second() -> None:
        await vt.sleep(0.01)
        await pacer.acquire()
        log.append((vt.now, "second"))

    await vt.run([first(), second()])
    assert log[1][0] >= 0.03 + 0.12 - EPS


async def test_an_on_time_send_changes_nothing() -> None:
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    granted = await pacer.acquire()
    pacer.mark_sent(granted)  # no time passed: it left on its slot
    times: list[float] = []

    async def next_one() -> None:
        await pacer.acquire()
        times.append(vt.now)

    await vt.run([next_one()])
    assert times == [0.12]


def test_a_run_right_after_another_keeps_the_rules_across_both() -> None:
    # one pacer per workspace in the process: a resume started right after a cancel waits
    vt = VirtualTime()
    args = ("http://127.0.0.1:1/v2", "tok", 0.12, 3, 10.0)
    first = shared_pacer(*args, clock=vt.clock, sleep=vt.sleep)
    log: Log = []

    async def grants(pacer: Pacer, n: int, name: str) -> None:
        for _ in range(n):
            await pacer.acquire()
            log.append((vt.now, name))

    asyncio.run(vt.run([grants(first, 2, "run 1")]))
    second = shared_pacer(*args, clock=vt.clock, sleep=vt.sleep)
    assert second is first and second.total == 0  # counters start afresh for the new run
    asyncio.run(vt.run([grants(second, 2, "run 2")]))
    assert [t for t, _ in log] == pytest.approx([0.0, 0.12, 0.24, 10.0])  # interval, then window
    other = shared_pacer("http://127.0.0.1:1/v2", "another-token", 0.12, 3, 10.0)
    assert other is not first  # another workspace has its own budget


def test_with_pacing_off_each_run_has_its_own_pacer() -> None:
    args = ("http://127.0.0.1:2/v2", "tok", 0.0, 100, 10.0)
    assert shared_pacer(*args) is not shared_pacer(*args)


async def test_a_request_granted_is_no_longer_work_at_the_pacer() -> None:
    # ten 3-page chains each have their first page in flight (priority 2.8 when granted: pages
    # left, that one included); the pacer's work is their 10 x 1.8 pages to come and the lead's
    # 5, 23 x 0.12 = 2.8 s, less than the lead's 6 pages x 0.6 s: the lead is critical
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)

    async def scenario() -> None:
        for i in range(10):
            await pacer.acquire(priority=2.8, key=f"form{i}")
        await pacer.acquire(priority=7.0, key="lead")
        await vt.sleep(0.6)
        await pacer.acquire(priority=6.0, key="lead")

    await vt.run([scenario()])
    assert pacer.critical_chains() == {"lead"}


async def test_a_slot_that_delays_a_held_chain_by_a_moment_is_not_pushed_past_it() -> None:
    """Sends run a millisecond or two late, so the last slot before a held chain's expected
    request often overlaps it by that much: it goes (the chain waits 2 ms) rather than leaving
    the pacer idle for an interval; one that would delay the chain by half an interval waits."""
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    times: dict[str, float] = {}

    async def lead() -> None:
        await pacer.acquire(priority=30.0, key="lead")
        await vt.sleep(0.6)
        await pacer.acquire(priority=29.0, key="lead")  # held: its next one due at 1.2
        times["lead held"] = vt.now
        await vt.sleep(0.6)  # its answer is back at 1.2
        times["lead"] = await pacer.acquire(priority=28.0, key="lead")

    async def other(name: str, at: float) -> None:
        await vt.sleep(at)
        times[name] = await pacer.acquire(priority=1.0)

    await vt.run([lead(), other("a", 0.962), other("b", 0.97), other("c", 1.6), other("d", 1.61)])
    assert times["lead held"] == pytest.approx(0.6)
    assert times["a"] == pytest.approx(0.962)
    assert times["b"] == pytest.approx(1.082)  # 2 ms into the chain's interval: it goes
    assert times["lead"] == pytest.approx(1.202)
    # the next hold is due at 1.202 + 0.6 = 1.802: c at 1.6 goes, d (earliest 1.72, 38 ms
    # into the chain's interval) waits until after the chain
    assert times["c"] == pytest.approx(1.6)
    assert times["d"] == pytest.approx(1.802 + 0.12)


async def test_while_a_chain_ends_the_run_the_others_are_spread_over_its_time() -> None:
    """A 30-page chain at 0.6 s a turn takes 18 s; the other 40 requests (twenty 2-page chains)
    need 4.8 s of the pacer. Sent at the full rate they would fill the first seconds of the
    workspace's window (another client's requests meet 429s there, and a 429 on the long
    chain's page costs the run a turn); spread out, they end before the chain, which is never
    delayed."""
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    remaining: Callable[[int], Callable[[int], float]] = lambda n: lambda i: float(n - i)  # noqa: E731
    await vt.run(
        [
            _chain(pacer, vt, log, "lead", 30, 0.6, remaining(30)),
            *(_chain(pacer, vt, log, f"form{i}", 2, 0.6, remaining(2)) for i in range(20)),
        ]
    )
    _rules(log, 0.12)
    lead = [t for t, n in log if n == "lead"]
    gaps = [b - a for a, b in itertools.pairwise(lead)]
    assert max(gaps[1:]) <= 0.6 + EPS  # the chain goes out on every answer
    others = [t for t, n in log if n != "lead"]
    assert len(others) == 40
    # the others end in time: their last answer comes before the chain's
    assert others[-1] + 0.6 <= lead[-1] + 0.6 + EPS
    # and they are spread: no 10 s window holds most of them (at the full rate all 40 would
    # have gone in the first 6 s, with the chain's pages: 40 + 10 in the window)
    in_window = max(sum(1 for t in log if s <= t[0] < s + 10.0) for s in [x for x, _ in log])
    assert in_window <= 45
    assert others[-1] >= 10.0


async def test_nothing_is_spread_for_a_chain_of_unknown_length() -> None:
    """A first run has no snapshot to guess lengths from: the lead asks with a priority that
    only ranks it (1e12). Its time left is unknown, so the others go at the full rate."""
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    log: Log = []
    await vt.run(
        [
            _chain(pacer, vt, log, "lead", 10, 0.6, lambda i: 1e12),
            *(_chain(pacer, vt, log, f"list{i}", 2, 0.6, lambda i: 2.0 - i) for i in range(20)),
        ]
    )
    _rules(log, 0.12)
    others = [t for t, n in log if n != "lead"]
    assert len(others) == 40
    # every interval the lead leaves is used: 40 + its 10 pages in 50 intervals, and a few more
    assert others[-1] <= 50 * 0.12 + 0.6 + EPS
