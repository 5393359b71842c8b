"""One global pacer for every request of a run: minimum spacing plus a sliding-window cap.

Salesmap allows 100 requests per 10 s per workspace across all endpoints, so concurrent crawls
must share one budget. Every attempt (retries included) reserves a send slot here first. The
pacer also caps the requests in flight (`--concurrency`, by default derived from the rate and
the latency it observes) and holds every request of the workspace while a 429's hint runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from salesmap_tui.engine.errors import RunCancelled
from salesmap_tui.engine.events import RequestStats

CANCEL_POLL_S = 0.1  # how often a wait looks at the cancel event
LATE_SEND_S = 0.0  # a request leaving any later than its slot pushes the next slot back
# a request granted with `confirm` holds the next slot until it is on the wire (its connection
# may take a while to open), at most this long
CONFIRM_WAIT_S = 0.5
# a request granted with `confirm` is woken this much ahead of its slot (at most LEAD_MAX_S): the
# time it needs to reach the wire (building it, taking a connection, other tasks on the loop),
# the p90 over the last PREP_SAMPLES; it then holds its headers until the slot itself
# (`send_at`), so consecutive requests leave one interval apart, not one interval plus that time
LEAD_MAX_S = 0.02
# and this much more: its own wake-up ends a millisecond or two late (epoll rounds timeouts up
# to the next millisecond, other tasks run first); a request ready early only holds its
# headers a little longer, one ready late pushes every next slot back
WAKE_SLACK_S = 0.003
PREP_SAMPLES = 32
# a slot that would make a held chain wait at most this share of an interval is granted anyway:
# sends run a millisecond or two late, so the last slot that fits before a chain's expected
# request often overlaps it by that much, and pushing it past the chain idles the pacer for a
# whole interval where letting it go delays the chain by a millisecond or two
HOLD_GIVE = 0.1
CHAIN_STALE_S = 5.0  # a chain silent this long is done or backing off: nothing is held for it
# While critical chains end the run, the other requests have slack: they are spread to end by
# this share of the longest critical chain's time left, less STRETCH_MARGIN_TURNS of its turns,
# not sent at the full rate. The run ends no later, and the workspace's budget is left to the
# other integrations on the token meanwhile (a 429 on a critical chain's request costs it a
# whole turn and the hint). The plan is made again at every grant, so a share alone would
# recede (each new plan ends a little later than the last): the turns are a fixed margin
STRETCH_SHARE = 0.95
STRETCH_MARGIN_TURNS = 2.0  # one for the last one's answer, one to spare
# a chain that needs at least this share of that time itself is not spread (waiting a spread
# gap at each of its turns could make it end the run)
STRETCH_EXEMPT = 0.5
# and no request is spread further apart than this many intervals from the one before (1.7
# requests/s: a misjudged chain costs little)
STRETCH_MAX = 5.0
# nothing is spread unless the other requests, at the rate the critical chains leave them,
# would end within this share of the time left (the critical chains' slots and the room kept
# around them leave the others fewer slots than the rate says)
STRETCH_FIT = 0.6
# a priority this high is a chain of unknown length (no previous snapshot to go by): its time
# left is unknown too, so nothing is spread for it
UNKNOWN_PAGES = 1e9
# --concurrency auto: about rate x p90 latency + 1 requests in flight, within these bounds
AUTO_MIN_IN_FLIGHT = 2
AUTO_MAX_IN_FLIGHT = 16
AUTO_UNPACED_IN_FLIGHT = 4  # pacing off (local sandboxes): no rate to derive a cap from
LATENCY_SAMPLES = 64  # responses the p90 latency is taken over
# after a 429 the pacer keeps its own share of the window under what the server accepted
BUDGET_FLOOR = 0.2  # never below this share of max_requests
BUDGET_CUT = 0.7  # nor below this share of the budget before the 429


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise RunCancelled("cancelled")


async def wait_until(
    deadline: float,
    cancel: threading.Event | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Sleep until `clock() >= deadline`, looking at `cancel` at least every 0.1 s."""
    while True:
        check_cancel(cancel)
        remaining = deadline - clock()
        if remaining <= 0:
            return
        await sleep(min(remaining, CANCEL_POLL_S))


async def cancellable_sleep(seconds: float, cancel: threading.Event | None) -> None:
    """`asyncio.sleep` that raises `RunCancelled` within 0.1 s of `cancel` being set."""
    await wait_until(time.monotonic() + max(0.0, seconds), cancel)


class _Waiter:
    __slots__ = ("arrived", "key", "priority", "seq", "slot", "spread", "wake")

    def __init__(self, priority: float, seq: int, key: str | None, arrived: float) -> None:
        self.arrived = arrived
        self.priority = priority
        self.seq = seq
        self.key = key
        self.slot = float("inf")  # not handed a slot yet
        self.spread = False  # its slot was pushed back to spread the requests out
        self.wake: asyncio.Future[None] | None = None  # set when its slot moves earlier


class Pacer:
    """Grants send slots: at least `min_interval` apart and at most `max_requests` per `window_s`.

    Every waiter is handed a slot (the earliest time both rules allow, after the waiters ahead of
    it) and sleeps until then. Slots are handed out again whenever a waiter arrives or is
    granted: highest `priority` first, then first come first served (equal priorities are plain
    FIFO). The rules are measured against the times requests were really let go, and checked
    again when a waiter wakes: a late wake-up (a busy event loop) delays the next request
    instead of letting two go out back to back.

    The longest cursor chain of a crawl asks with the highest priority and a `key`. Its pages
    follow each other, so the pacer can tell when its next request will come (one response time
    after its last grant) and keeps lower-priority slots one interval clear of that moment: the
    chain then never queues behind shorter ones, which fill the gaps in between.

    Requests in flight: a grant counts as in flight until `release`. With a cap set
    (`set_concurrency`), only as many waiters as the cap leaves room for are handed slots, in
    priority order; the others wait for a release. A 429 (`rate_limited`) pauses every slot
    until its hint has passed and, when it is this run's own doing, lowers the share of the
    window the pacer hands out (the rest of the budget is someone else's), raising it again
    slowly while no 429 comes.
    """

    def __init__(
        self,
        min_interval: float,
        max_requests: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_stats: Callable[[RequestStats], None] | None = None,
        stats_every_s: float = 0.5,
    ) -> None:
        self.min_interval = max(0.0, min_interval)
        self.max_requests = max_requests
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._on_stats = on_stats
        self._stats_every_s = stats_every_s
        self._window_on = max_requests > 0 and window_s > 0
        self._off = self.min_interval == 0 and not self._window_on
        # Grant times still inside the window (older ones constrain nothing).
        self._slots: deque[float] = deque()
        self._last_slot: float | None = None  # the last grant time
        self._pending: list[_Waiter] = []
        self._seq = 0
        # chains seen lately: key -> (its last grant, its priority then)
        self._chains: dict[str, tuple[float, float]] = {}
        # the critical chains (see _track_chain) -> when each one's next request is due; a
        # chain's entry is dropped while its request waits at the pacer (it is back)
        self._holds: dict[str, float] = {}
        self._critical: set[str] = set()
        self._turns: dict[str, float] = {}  # each chain's last turn (grant to next request)
        self._last_free: float | None = None  # the last grant of a non-critical request
        self._started = clock()
        self._last_stats: float | None = None
        self.total = 0
        # requests in flight and their cap (None: no cap; 0: auto from rate and latency)
        self.in_flight = 0
        self._concurrency: int | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        # the workspace pause after a 429, and this run's share of the window
        self._paused_until = -math.inf
        self._last_pause_at = -math.inf  # when the newest pause that this run caused began
        self._budget = float(max_requests)
        self._budget_raised_at = -math.inf
        self.pauses = 0  # pauses this run caused (a 429 on a request sent before any pause)
        self._unconfirmed: float | None = None  # the latest grant not known to be sent yet
        self._halted = False  # the token was rejected: nothing more leaves in this run
        self._prep: deque[float] = deque(maxlen=PREP_SAMPLES)  # grant -> ready to write
        self._on_wire: list[asyncio.Future[None]] = []  # waiting for the grant to be sent

    # --- requests in flight -------------------------------------------------------------------
    def set_concurrency(self, concurrency: int | None) -> None:
        """Cap requests in flight: `n` >= 1 exactly, 0 auto (rate x p90 latency + 1), None none."""
        self._concurrency = concurrency
        self._assign(self._clock())

    def halt(self) -> None:
        """No more grants in this run (a 401: every further request would be refused too)."""
        self._halted = True

    def max_in_flight(self) -> int | None:
        """The cap in force now (None: no cap)."""
        c = self._concurrency
        if c is None:
            return None
        if c > 0:
            return c
        rate = math.inf if self.min_interval <= 0 else 1.0 / self.min_interval
        if self._window_on:
            rate = min(rate, self.max_requests / self.window_s)
        if math.isinf(rate):
            return AUTO_UNPACED_IN_FLIGHT
        if len(self._latencies) < 3:
            return AUTO_MAX_IN_FLIGHT  # nothing to go by yet: the pacer's rules still bind
        ordered = sorted(self._latencies)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        want = math.ceil(rate * p90) + 1
        return max(AUTO_MIN_IN_FLIGHT, min(AUTO_MAX_IN_FLIGHT, want))

    def release(self, latency_s: float | None = None, granted_at: float | None = None) -> None:
        """A granted request is done (answered, failed or cancelled); `latency_s` if answered."""
        self.in_flight = max(0, self.in_flight - 1)
        if granted_at is not None and granted_at == self._unconfirmed:
            self._unconfirmed = None  # answered, so it was sent
            self._wake_on_wire()
        if latency_s is not None and latency_s >= 0:
            self._latencies.append(latency_s)
        if self._pending:
            self._assign(self._clock())

    # --- 429: the workspace pause -------------------------------------------------------------
    def rate_limited(self, wait_s: float, granted_at: float) -> bool:
        """A request granted at `granted_at` got a 429 asking for `wait_s`: hold every slot.

        Returns True when this run is to blame: the request left after the newest pause began.
        A request already in flight when an earlier 429 arrived is not: the server answered it
        from the same full window, so it neither lowers the budget again nor counts as a pause.
        """
        now = self._clock()
        if not self._off:  # pacing off (local sandboxes): only the request itself waits
            self._paused_until = max(self._paused_until, now + max(0.0, wait_s))
        blamed = granted_at >= self._last_pause_at
        if blamed:
            self._last_pause_at = now
            self.pauses += 1
            if self._window_on:
                self._prune(now)
                own = sum(1 for t in self._slots if t <= now)
                floor = max(1.0, self.max_requests * BUDGET_FLOOR)
                self._budget = max(floor, float(own - 1), self._budget * BUDGET_CUT)
                self._budget = min(self._budget, float(self.max_requests))
                self._budget_raised_at = now
        self._assign(now)
        return blamed

    def paused_for(self) -> float:
        """Seconds left of the workspace pause (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def budget(self) -> int:
        """Requests per window this run hands out now (max_requests until a 429 says less)."""
        return int(self._budget)

    def _raise_budget(self, now: float) -> None:
        # one more request per tenth of a window, once a whole window passed without a 429
        if self._budget >= self.max_requests or now - self._last_pause_at < self.window_s:
            return
        step = self.window_s / 10
        start = max(self._budget_raised_at, self._last_pause_at + self.window_s - step)
        n = int((now - start) / step)
        if n > 0:
            self._budget = min(float(self.max_requests), self._budget + n)
            self._budget_raised_at = start + n * step

    # --- slots ------------------------------------------------------------------------------------
    def _earliest(self, now: float, extra: list[float]) -> float:
        """The first time a new slot may take, after the grants and `extra` (ascending)."""
        slot = max(now, self._paused_until)
        if self._unconfirmed is not None:
            slot = max(slot, self._unconfirmed + CONFIRM_WAIT_S)  # until it is on the wire
        last = extra[-1] if extra else self._last_slot
        if last is not None:
            slot = max(slot, last + self.min_interval)
        if self._window_on:
            limit = max(1, min(self.max_requests, int(self._budget)))
            n = len(self._slots) + len(extra)
            if n >= limit:
                k = n - limit  # index of the slot that must have left the window
                oldest = self._slots[k] if k < len(self._slots) else extra[k - len(self._slots)]
                slot = max(slot, oldest + self.window_s)
        return slot

    def _assign(self, now: float) -> None:
        """Hand every waiter its slot again: critical chains first, then by priority."""
        self._prune(now)
        self._raise_budget(now)
        waiting = self._pending
        critical = self._critical
        spread = self._spread(now) if critical else None
        gap, left, lead_turn = spread or (0.0, 0.0, 0.0)
        turns = self._turns
        if spread is None:
            waiting.sort(key=lambda w: (w.key not in critical, -w.priority, w.seq))
        else:
            # spread out, the other chains go longest remaining time first (pages left times
            # their turn), so a short chain of slow pages is not starved behind a long one of
            # quick pages and left to end the run
            waiting.sort(
                key=lambda w: (
                    w.key not in critical,
                    # those not spread (see below: no chain, or no length to go by) first
                    w.key is not None and w.priority > 0,
                    -w.priority * turns.get(w.key or "", lead_turn),
                    -w.priority,
                    w.seq,
                )
            )
        holds = self._holds
        for key in [k for k, due in holds.items() if due + self.min_interval <= now]:
            del holds[key]  # the chain did not come back in time: stop holding
        dues = sorted(holds.values())
        cap = self.max_in_flight()
        room = len(waiting) if cap is None else max(0, cap - self.in_flight)
        if self._halted:
            room = 0
        given: list[float] = []
        last_free = self._last_free
        for i, w in enumerate(waiting):
            before = w.slot
            if i >= room:
                w.slot = math.inf  # no room in flight: waits for a release
                continue
            slot = self._earliest(now, given)
            w.spread = False
            if spread is not None and w.key not in critical:
                # a request of no known chain, or of a chain whose length is unknown (no
                # pages left by its guess), is not spread: its work may be more than it says
                exempt = (
                    w.key is None
                    or w.priority <= 0
                    or w.priority * turns.get(w.key, lead_turn) >= STRETCH_EXEMPT * left
                )
                if last_free is not None and not exempt and last_free + gap > slot:
                    slot = last_free + gap
                    w.spread = True
            if w.key not in critical:
                last_free = slot
            if dues and w.key not in critical:
                for due_at in dues:  # ascending: a push only meets later dues
                    if self._in_hold(w, slot, due_at):
                        # keep a critical chain's expected slot clear; this one goes after it
                        slot = due_at + self.min_interval
            w.slot = slot
            given.append(slot)
            if slot < before and w.wake is not None and not w.wake.done():
                w.wake.set_result(None)

    def _spread(self, now: float) -> tuple[float, float, float] | None:
        """(gap, time left, its turn) while critical chains end the run: the other requests
        then leave at least `gap` apart, so they end by STRETCH_SHARE of the `time left` of the
        longest critical chain (its pages left, one `turn` each), less STRETCH_MARGIN_TURNS of
        its turns, instead of at the full rate.
        None when that gap is no wider than the interval (the rate is needed), when no
        critical chain is held or back (one that did not come back in time may be backing
        off), or with pacing off."""
        if self.min_interval <= 0:
            return None
        waiting = {p.key for p in self._pending}
        left = 0.0
        lead_turn = 0.0
        critical_pages = 0.0
        rate_left = 1.0 / self.min_interval  # what the critical chains leave the others
        held = 0.0  # the share of time the room kept around their slots takes
        for key in self._critical:
            chain = self._chains.get(key)
            turn = self._turns.get(key)
            if chain is None or turn is None or (key not in waiting and key not in self._holds):
                continue
            if chain[1] >= UNKNOWN_PAGES:
                return None
            # a chain at the pacer still has its priority's pages to go; one that is out has
            # its answer to wait for and the pages after it
            pages = chain[1] if key in waiting else max(0.0, chain[1] - 1)
            due = 0.0 if key in waiting else max(0.0, self._holds.get(key, now) - now)
            if due + pages * turn > left:
                left, lead_turn = due + pages * turn, turn
            critical_pages += pages
            rate_left -= 1.0 / turn
            held += 2 * self.min_interval / turn
        free = self._pacer_work(now) - critical_pages
        room = STRETCH_SHARE * left - STRETCH_MARGIN_TURNS * lead_turn
        if free < 1 or room <= 0 or rate_left <= 0 or free / rate_left > STRETCH_FIT * room:
            return None
        # a spread slot that meets the room kept around a held chain's slot is pushed past it
        # (by an interval, on average): the gap is narrower by as much, on average
        gap = room / free - min(1.0, held) * self.min_interval
        gap = min(gap, STRETCH_MAX * self.min_interval)
        return (gap, left, lead_turn) if gap > self.min_interval else None

    def _grant(self, w: _Waiter, slot: float, now: float) -> None:
        self._pending.remove(w)
        if self.window_s > 0:
            self._slots.append(slot)
        self._last_slot = slot
        if w.key not in self._critical:
            self._last_free = slot
        self.in_flight += 1
        if w.key is not None:
            self._track_chain(w, slot)
        self._assign(now)

    def _track_chain(self, w: _Waiter, now: float) -> None:
        """Decide, at a chain's grant, whether it is critical and when it will be back.

        A chain is critical while its remaining pages, one turn each, take at least as long as
        all the work left at the pacer (every live chain's pages, one interval each): the run
        then ends with it, so each of its next requests is kept a slot on arrival. Several
        chains can be critical at once (equal chains at a long latency); each is held.
        """
        assert w.key is not None
        key = w.key
        last = self._chains.get(key)
        # how long the chain took to come back last time: its response time plus its own work
        turn = None if last is None else w.arrived - last[0]
        self._chains[key] = (now, w.priority)
        self._holds.pop(key, None)
        if turn is not None and turn <= CHAIN_STALE_S:
            self._turns[key] = turn
        if turn is None or turn <= self.min_interval or turn > CHAIN_STALE_S:
            self._critical.discard(key)
            return
        if self.min_interval > 0 and self._pacer_work(now) * self.min_interval > w.priority * turn:
            # the other chains' pages need the pacer longer than this chain needs its answers:
            # every slot counts more than its next turn (a held slot is lost; a late turn
            # costs the chain a moment)
            self._critical.discard(key)
            return
        self._critical.add(key)
        self._holds[key] = now + turn

    def _pacer_work(self, now: float) -> float:
        """Requests still to come at the pacer, across the live chains (priorities are pages
        left, the one granted included) and the waiters (a waiter is one request at least; its
        pages left rounded up).
        Chains silent for CHAIN_STALE_S are finished or stalled: forgotten."""
        waiting = {p.key for p in self._pending}
        work = 0.0
        for key, (granted, priority) in list(self._chains.items()):
            if granted < now - CHAIN_STALE_S:
                del self._chains[key]
                self._critical.discard(key)
                self._holds.pop(key, None)
            elif key not in waiting:
                # its priority was its pages left when its last request was granted: that
                # request no longer needs the pacer (waiting chains are counted below)
                work += max(0.0, priority - 1)
        work += sum(max(1, math.ceil(p.priority)) for p in self._pending)
        return work

    def critical_chains(self) -> set[str]:
        """The chains held for now (their next request gets the first slot after its answer)."""
        return set(self._critical)

    def end_chain(self, key: str) -> None:
        """The chain `key` has made its last request: it no longer outranks anyone."""
        self._chains.pop(key, None)
        self._turns.pop(key, None)
        self._critical.discard(key)
        if self._holds.pop(key, None) is not None and self._pending:
            self._assign(self._clock())

    def _intrudes(self, w: _Waiter, at: float) -> bool:
        """Whether granting `w` at `at` takes a held chain's expected slot: a waiter that woke
        late (its slot moved earlier while it slept) is pushed past the chain instead."""
        if w.key in self._critical:
            return False
        return any(self._in_hold(w, at, due) for due in self._holds.values())

    def _in_hold(self, w: _Waiter, at: float, due: float) -> bool:
        """Whether a slot at `at` takes the interval kept clear around a held chain's request
        due at `due`; one at most HOLD_GIVE into it goes (the chain waits that moment), but
        not a spread one: it has no idle interval to save."""
        give = 0.0 if w.spread else HOLD_GIVE * self.min_interval
        return due - self.min_interval + give < at < due + self.min_interval

    def _may_go(self, now: float, lead: float = 0.0) -> bool:
        if self._halted:
            return False
        cap = self.max_in_flight()
        if cap is not None and self.in_flight >= cap:
            return False
        return self._earliest(now, []) <= now + lead

    # --- sending on the slot ----------------------------------------------------------------
    def lead(self) -> float:
        """How far ahead of its slot a request granted with `confirm` is woken (see LEAD_MAX_S)."""
        if len(self._prep) < 3:
            return 0.0
        ordered = sorted(self._prep)
        return min(LEAD_MAX_S, ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))])

    def note_prep(self, seconds: float) -> None:
        """A request granted with `confirm` was ready to write `seconds` after its grant."""
        if seconds >= 0:
            self._prep.append(seconds)

    async def until_on_wire(self, timeout: float) -> None:
        """Wait (at most `timeout`) until the latest grant is on the wire: work that can wait
        (writing a page on another thread) then leaves it the event loop and the GIL."""
        if self._unconfirmed is None or self._sleep is not asyncio.sleep:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_wire.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if fut in self._on_wire:
                self._on_wire.remove(fut)

    def _wake_on_wire(self) -> None:
        waiting, self._on_wire = self._on_wire, []
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)

    def send_delay(self, granted_at: float) -> float | None:
        """Seconds a request granted at `granted_at` holds its headers back (its slot is still
        ahead), or None when a workspace pause began since: it must ask the pacer again."""
        if self._paused_until > granted_at or self._halted:
            return None
        return max(0.0, granted_at - self._clock())

    async def _nap(self, w: _Waiter, seconds: float) -> None:
        """Sleep up to `seconds`; on the real clock, wake early when the slot moves earlier."""
        if self._sleep is not asyncio.sleep:
            await self._sleep(seconds)  # an injected clock (tests) is polled instead
            return
        w.wake = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(w.wake, seconds)
        except TimeoutError:
            pass
        finally:
            w.wake = None

    async def acquire(
        self,
        cancel: threading.Event | None = None,
        *,
        priority: float = 0.0,
        key: str | None = None,
        confirm: bool = False,
    ) -> float:
        """Take the next send slot, wait for it and return its time (`RunCancelled` if cancelled).

        Higher `priority` is served first. `key` names a cursor chain (one endpoint) whose
        requests follow each other; the top-priority chain gets its next slot kept free. The
        grant counts as in flight until `release()`. With `confirm`, the caller reports when
        the request is really on the wire (`mark_sent`, or `release`): no other slot is granted
        before that (a new connection can take longer to open than an interval lasts).
        """
        check_cancel(cancel)
        fast = self._off and self._concurrency is None and not self._halted
        if fast and self._clock() >= self._paused_until:
            self.in_flight += 1
            self._granted_now()
            return self._clock()
        w = _Waiter(priority, self._seq, key, self._clock())
        self._seq += 1
        if key is not None:
            self._holds.pop(key, None)  # the chain is back: it takes the next slot itself
        self._pending.append(w)
        lead = self.lead() + WAKE_SLACK_S if confirm else 0.0
        try:
            self._assign(self._clock())
            while True:
                check_cancel(cancel)
                now = self._clock()
                if now >= w.slot - lead:
                    if self._may_go(now, lead) and not self._intrudes(w, max(now, w.slot)):
                        break
                    self._assign(now)  # another waiter went first (or late): queue again
                    if w.slot - lead <= now:
                        await asyncio.sleep(0)  # the rules allow it only a moment later
                    continue
                await self._nap(w, min(w.slot - lead - now, CANCEL_POLL_S))
                if w.spread:
                    self._assign(self._clock())  # the chains it made room for may be done
        except BaseException:
            if w in self._pending:
                self._pending.remove(w)
                self._assign(self._clock())
            raise
        # the slot itself: now, or (woken `lead` early) the moment the rules allow
        slot = max(now, w.slot, self._earliest(now, []))
        self._grant(w, slot, now)
        if confirm:
            self._unconfirmed = slot
        self._granted_now()
        return slot

    def begin_run(
        self,
        on_stats: Callable[[RequestStats], None] | None,
        concurrency: int | None = None,
    ) -> None:
        """Count requests afresh for a new run; the grants that constrain the next slot stay,
        and so do a pause still running and the budget a 429 lowered (they are the workspace's);
        the latencies the in-flight cap is derived from start afresh.
        """
        self._on_stats = on_stats
        self._started = self._clock()
        self._last_stats = None
        self.total = 0
        self.pauses = 0
        self._pending = []
        self._chains = {}
        self._holds = {}
        self._critical = set()
        self._turns = {}
        self._last_free = None
        self.in_flight = 0
        self._concurrency = concurrency
        self._unconfirmed = None
        self._halted = False
        # the cap is derived from this run's answers: an earlier run's latencies (another hour,
        # another server load) would hold it too low, or too high, until 64 new ones came in
        self._latencies.clear()

    @property
    def off(self) -> bool:
        """No interval and no window: every slot is granted at once."""
        return self._off

    def mark_sent(self, granted_at: float) -> None:
        """The request granted at `granted_at` is leaving only now.

        The first request of a run may spend tens of milliseconds between its grant and the
        wire (opening a connection, first-use setup in the HTTP stack). If it is late, the next
        slot counts from now, so the server still sees the two at least one interval apart.
        """
        if self._off:
            return
        now = self._clock()
        confirmed = granted_at == self._unconfirmed
        if confirmed:
            self._unconfirmed = None
            self._wake_on_wire()
        if now - granted_at > LATE_SEND_S and (self._last_slot is None or now > self._last_slot):
            self._last_slot = now
            self._assign(now)
        elif confirmed and self._pending:
            self._assign(now)

    def _granted_now(self) -> None:
        self.total += 1
        self._maybe_emit_stats()

    def _prune(self, now: float) -> None:
        # Slots are appended in increasing order, so the expired ones are at the left.
        while self._slots and self._slots[0] <= now - self.window_s:
            self._slots.popleft()

    def window_count(self) -> int:
        """Grants whose slot fell within the last `window_s` seconds (reserved ones excluded)."""
        now = self._clock()
        self._prune(now)
        return sum(1 for t in self._slots if t <= now)

    def stats(self) -> RequestStats:
        cap = self.max_in_flight()
        return RequestStats(
            total_requests=self.total,
            last_window_requests=self.window_count(),
            window_s=self.window_s,
            limit=self.max_requests,
            elapsed_s=self._clock() - self._started,
            in_flight=self.in_flight,
            max_in_flight=0 if cap is None else cap,
            budget=self.budget() if self._window_on else 0,
            paused_s=round(self.paused_for(), 3),
        )

    def _maybe_emit_stats(self) -> None:
        if self._on_stats is None:
            return
        now = self._clock()
        if self._last_stats is not None and now - self._last_stats < self._stats_every_s:
            return
        self._last_stats = now
        self._on_stats(self.stats())


_SHARED: dict[tuple[str, str, float, int, float], Pacer] = {}
_SHARED_LOCK = threading.Lock()


def forget_shared_pacers() -> None:
    """Start every workspace's pacer afresh, as a new process does (for benchmarks that run
    many independent runs in one process: a 429's lowered budget is not carried into the next
    benchmark cell)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def shared_pacer(
    base_url: str,
    token: str | None,
    min_interval: float,
    max_requests: int,
    window_s: float,
    *,
    on_stats: Callable[[RequestStats], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    concurrency: int | None = None,
) -> Pacer:
    """The one pacer of a workspace in this process, its request counters started afresh.

    The limit is per workspace, not per run: a run started right after another (a resume after
    a cancel, a web-form pass after a snapshot) must keep both rules across the two. With
    `min_interval` 0 (pacing off, for local sandboxes) every run gets a pacer of its own.
    """
    if min_interval <= 0:
        # pacing off (CONTRACT.md: `--min-interval 0` is for local sandboxes and benchmarks):
        # neither rule applies, and each run has a pacer of its own that only counts
        own = Pacer(0.0, 0, window_s, clock=clock, sleep=sleep, on_stats=on_stats)
        own.set_concurrency(concurrency)
        return own
    # the token only as a digest: the key may show up in a debugger or a repr
    who = hashlib.sha256((token or "").encode()).hexdigest()
    key = (base_url, who, min_interval, max_requests, window_s)
    with _SHARED_LOCK:
        pacer = _SHARED.get(key)
        if pacer is None:
            pacer = _SHARED[key] = Pacer(
                min_interval, max_requests, window_s, clock=clock, sleep=sleep
            )
    pacer.begin_run(on_stats, concurrency)
    return pacer
