"""One global pacer for every request of a run: minimum spacing plus a sliding-window cap.

Salesmap allows 100 requests per 10 s per workspace across all endpoints, so concurrent crawls
must share one budget. Every attempt (retries included) reserves a send slot here first.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from salesmap_tui.engine.errors import RunCancelled
from salesmap_tui.engine.events import RequestStats

CANCEL_POLL_S = 0.1  # how often a wait looks at the cancel event
LATE_SEND_S = 0.002  # a request leaving this long after its grant pushes the next slot back
CHAIN_STALE_S = 5.0  # a chain silent this long is done or backing off: nothing is held for it


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
    __slots__ = ("arrived", "key", "priority", "seq", "slot")

    def __init__(self, priority: float, seq: int, key: str | None, arrived: float) -> None:
        self.arrived = arrived
        self.priority = priority
        self.seq = seq
        self.key = key
        self.slot = float("inf")  # not handed a slot yet


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
        self._hold: tuple[str, float] | None = None  # (key, when its next request is due)
        self._started = clock()
        self._last_stats: float | None = None
        self.total = 0

    # --- slots ------------------------------------------------------------------------------------
    def _earliest(self, now: float, extra: list[float]) -> float:
        """The first time a new slot may take, after the grants and `extra` (ascending)."""
        slot = now
        last = extra[-1] if extra else self._last_slot
        if last is not None:
            slot = max(slot, last + self.min_interval)
        if self._window_on:
            n = len(self._slots) + len(extra)
            if n >= self.max_requests:
                k = n - self.max_requests  # index of the slot that must have left the window
                oldest = self._slots[k] if k < len(self._slots) else extra[k - len(self._slots)]
                slot = max(slot, oldest + self.window_s)
        return slot

    def _assign(self, now: float) -> None:
        """Hand every waiter its slot again, in priority order."""
        self._prune(now)
        waiting = self._pending
        waiting.sort(key=lambda w: (-w.priority, w.seq))
        hold = self._hold
        if hold is not None and hold[1] + self.min_interval <= now:
            hold = self._hold = None  # the chain did not come back in time: stop holding
        given: list[float] = []
        for w in waiting:
            slot = self._earliest(now, given)
            if hold is not None and w.key != hold[0]:
                due_at = hold[1]
                if due_at - self.min_interval < slot < due_at + self.min_interval:
                    # keep the chain's expected slot clear; this one goes right after it
                    slot = max(slot, due_at + self.min_interval)
            w.slot = slot
            given.append(slot)

    def _grant(self, w: _Waiter, now: float) -> None:
        self._pending.remove(w)
        if self.window_s > 0:
            self._slots.append(now)
        self._last_slot = now
        if w.key is not None:
            self._track_chain(w, now)
        self._assign(now)

    def _track_chain(self, w: _Waiter, now: float) -> None:
        assert w.key is not None
        last = self._chains.get(w.key)
        # how long the chain took to come back last time: its response time plus its own work
        turn = None if last is None else w.arrived - last[0]
        self._chains[w.key] = (now, w.priority)
        if self._hold is not None and self._hold[0] == w.key:
            self._hold = None
        if turn is None or turn <= self.min_interval or turn > CHAIN_STALE_S:
            return
        # hold only for the top chain: no waiter and no other live chain ranks above it
        for key, (granted, priority) in list(self._chains.items()):
            if granted < now - CHAIN_STALE_S:
                del self._chains[key]  # finished or stalled: it no longer competes
            elif priority > w.priority:
                return
        if any(p.priority > w.priority for p in self._pending):
            return
        self._hold = (w.key, now + turn)

    async def acquire(
        self,
        cancel: threading.Event | None = None,
        *,
        priority: float = 0.0,
        key: str | None = None,
    ) -> float:
        """Take the next send slot, wait for it and return its time (`RunCancelled` if cancelled).

        Higher `priority` is served first. `key` names a cursor chain (one endpoint) whose
        requests follow each other; the top-priority chain gets its next slot kept free.
        """
        check_cancel(cancel)
        if self._off:
            self._granted_now()
            return 0.0
        w = _Waiter(priority, self._seq, key, self._clock())
        self._seq += 1
        if key is not None and self._hold is not None and self._hold[0] == key:
            self._hold = None  # the chain is back: it takes the next slot itself
        self._pending.append(w)
        try:
            self._assign(self._clock())
            while True:
                check_cancel(cancel)
                now = self._clock()
                if now >= w.slot:
                    if self._earliest(now, []) <= now:
                        break
                    self._assign(now)  # another waiter went first (or late): queue again
                    continue
                await self._sleep(min(w.slot - now, CANCEL_POLL_S))
        except BaseException:
            if w in self._pending:
                self._pending.remove(w)
                self._assign(self._clock())
            raise
        self._grant(w, now)
        self._granted_now()
        return now

    def begin_run(self, on_stats: Callable[[RequestStats], None] | None) -> None:
        """Count requests afresh for a new run; the grants that constrain the next slot stay."""
        self._on_stats = on_stats
        self._started = self._clock()
        self._last_stats = None
        self.total = 0
        self._pending = []
        self._chains = {}
        self._hold = None

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
        if now - granted_at > LATE_SEND_S and (self._last_slot is None or now > self._last_slot):
            self._last_slot = now
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
        return RequestStats(
            total_requests=self.total,
            last_window_requests=self.window_count(),
            window_s=self.window_s,
            limit=self.max_requests,
            elapsed_s=self._clock() - self._started,
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
) -> Pacer:
    """The one pacer of a workspace in this process, its request counters started afresh.

    The limit is per workspace, not per run: a run started right after another (a resume after
    a cancel, a web-form pass after a snapshot) must keep both rules across the two. With
    `min_interval` 0 (pacing off, for local sandboxes) every run gets a pacer of its own.
    """
    if min_interval <= 0:
        # pacing off (CONTRACT.md: `--min-interval 0` is for local sandboxes and benchmarks):
        # neither rule applies, and each run has a pacer of its own that only counts
        return Pacer(0.0, 0, window_s, clock=clock, sleep=sleep, on_stats=on_stats)
    # the token only as a digest: the key may show up in a debugger or a repr
    who = hashlib.sha256((token or "").encode()).hexdigest()
    key = (base_url, who, min_interval, max_requests, window_s)
    with _SHARED_LOCK:
        pacer = _SHARED.get(key)
        if pacer is None:
            pacer = _SHARED[key] = Pacer(
                min_interval, max_requests, window_s, clock=clock, sleep=sleep
            )
    pacer.begin_run(on_stats)
    return pacer
