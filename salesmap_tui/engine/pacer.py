"""One global pacer for every request of a run: minimum spacing plus a sliding-window cap.

Salesmap allows 100 requests per 10 s per workspace across all endpoints, so concurrent crawls
must share one budget. Every attempt (retries included) reserves a send slot here first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from salesmap_tui.engine.errors import RunCancelled
from salesmap_tui.engine.events import RequestStats

CANCEL_POLL_S = 0.1  # how often a wait looks at the cancel event


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


class Pacer:
    """Grants send slots: at least `min_interval` apart and at most `max_requests` per `window_s`.

    Slots are reserved under a lock (FIFO, so fair) and then waited for outside it, so callers
    queue behind each other's slots rather than behind each other's sleeps.
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
        # Slots still inside the window (older ones are pruned: they constrain nothing).
        self._slots: deque[float] = deque()
        self._last_slot: float | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._started = clock()
        self._last_stats: float | None = None
        self.total = 0

    def _reserve(self) -> float:
        now = self._clock()
        self._prune(now)
        slot = now
        if self._last_slot is not None:
            slot = max(slot, self._last_slot + self.min_interval)
        if self._window_on and len(self._slots) >= self.max_requests:
            # The slot `max_requests` grants back must have left the window.
            slot = max(slot, self._slots[-self.max_requests] + self.window_s)
        if self.window_s > 0:
            self._slots.append(slot)
        self._last_slot = slot
        return slot

    async def acquire(self, cancel: threading.Event | None = None) -> None:
        """Reserve the next send slot and wait for it (raises `RunCancelled` if cancelled)."""
        check_cancel(cancel)
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            # Created lazily (and per loop) so the pacer can be built outside a running loop.
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        async with self._lock:
            slot = self._reserve()
        await wait_until(slot, cancel, clock=self._clock, sleep=self._sleep)
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
