"""Requests granted a moment ahead of their slot leave on the slot itself (virtual clock)."""

from __future__ import annotations

import itertools

from salesmap_tui.engine.pacer import LEAD_MAX_S, WAKE_SLACK_S, Pacer
from tests.test_pacer import EPS, VirtualTime


def _with_prep(vt: VirtualTime, prep: float) -> Pacer:
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    for _ in range(5):
        pacer.note_prep(prep)
    return pacer


async def test_a_confirmed_request_is_woken_its_lead_ahead_and_given_the_slot() -> None:
    vt = VirtualTime()
    pacer = _with_prep(vt, 0.006)
    assert abs(pacer.lead() - 0.006) < EPS
    sent: list[float] = []
    woken: list[float] = []

    async def one() -> None:
        granted = await pacer.acquire(confirm=True)
        woken.append(vt.now)
        await vt.sleep(0.004)  # building the request, taking the connection
        delay = pacer.send_delay(granted)
        assert delay is not None
        await vt.sleep(delay)  # the headers wait for the slot
        sent.append(vt.now)
        pacer.mark_sent(granted)
        await vt.sleep(0.3)
        pacer.release(0.3, granted)

    await vt.run([one() for _ in range(6)])
    # every request but the first was woken before its slot, and all left exactly one
    # interval apart: the time to reach the wire is no longer added to every gap
    assert any(s - w > 0.005 for w, s in zip(woken, sent, strict=True))
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= 0.12 - EPS
    assert max(gaps) <= 0.12 + EPS


async def test_without_the_gate_the_wire_time_adds_to_every_gap() -> None:
    """The same requests leaving when they are ready (no gate): each gap is an interval plus
    their preparation time, which is what the lead takes away."""
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    sent: list[float] = []

    async def one() -> None:
        granted = await pacer.acquire(confirm=True)
        await vt.sleep(0.004 + WAKE_SLACK_S)  # (a request is woken the slack early, too)
        sent.append(vt.now)
        pacer.mark_sent(granted)
        await vt.sleep(0.3)
        pacer.release(0.3, granted)

    await vt.run([one() for _ in range(6)])
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= 0.124 - EPS


async def test_a_wake_up_a_little_late_still_leaves_on_the_slot() -> None:
    """The event loop's sleeps end late (epoll rounds up to the millisecond, other tasks run
    first): a request woken 3 ms after it asked, with 4 ms to get ready and a lead of 6 ms,
    would be ready 1 ms after its slot and push every next slot back by as much; the wake-up
    slack keeps it ready before the slot."""
    vt = VirtualTime()

    async def late_sleep(seconds: float) -> None:
        await vt.sleep(seconds + 0.003)

    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=late_sleep)
    for _ in range(5):
        pacer.note_prep(0.006)
    sent: list[float] = []

    async def one() -> None:
        granted = await pacer.acquire(confirm=True)
        await vt.sleep(0.004)  # building the request, taking the connection
        delay = pacer.send_delay(granted)
        assert delay is not None
        await vt.sleep(delay)  # the headers wait for the slot (the client spins its last 2 ms)
        sent.append(vt.now)
        pacer.mark_sent(granted)
        await vt.sleep(0.3)
        pacer.release(0.3, granted)

    await vt.run([one() for _ in range(6)])
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= 0.12 - EPS
    assert max(gaps) <= 0.12 + EPS


async def test_the_lead_is_bounded() -> None:
    vt = VirtualTime()
    pacer = _with_prep(vt, 0.5)  # e.g. new connections
    assert pacer.lead() == LEAD_MAX_S


async def test_a_pause_that_begins_after_the_grant_sends_the_request_back() -> None:
    vt = VirtualTime()
    pacer = _with_prep(vt, 0.01)
    out: list[float] = []

    async def scenario() -> None:
        first = await pacer.acquire(confirm=True)
        pacer.mark_sent(first)
        second = await pacer.acquire(confirm=True)  # woken ahead of first + 0.12
        assert second > vt.now
        assert pacer.send_delay(second) is not None
        pacer.rate_limited(2.0, first)  # the first one's 429 arrives while the second is held
        assert pacer.send_delay(second) is None  # it must not leave inside the pause
        pacer.release(None, second)
        pacer.release(None, first)
        paused_at = vt.now
        again = await pacer.acquire(confirm=True)
        out.extend([paused_at, again])

    await vt.run([scenario()])
    paused_at, again = out
    assert again >= paused_at + 2.0 - EPS  # not before the hint has passed


def test_a_new_run_derives_its_in_flight_cap_from_its_own_answers() -> None:
    """A run after one against a fast server (the same workspace, the same process) must not
    start with that run's cap: at 0.3 s latency a cap of 2 halves the rate until 64 answers."""
    vt = VirtualTime()
    pacer = Pacer(0.12, 100, 10.0, clock=vt.clock, sleep=vt.sleep)
    pacer.set_concurrency(0)
    for _ in range(10):
        pacer.release(0.01)  # the first run's answers: 10 ms
    assert pacer.max_in_flight() == 2
    pacer.begin_run(None, 0)
    assert pacer.max_in_flight() == 16  # nothing to go by yet: the pacer's rules bind
    for _ in range(5):
        pacer.release(0.3)
    assert pacer.max_in_flight() == 4  # ceil(8.33 x 0.3) + 1
