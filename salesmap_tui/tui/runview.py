"""The run view model: engine events reduced to what the dashboard shows. No Textual here.

The same reducer serves the TUI's own runs (events from its worker) and attached runs (events
read back from another process's events file), so both draw the same truth. Every time-dependent
figure takes `now` from the caller (the app's clock, or the event's own timestamp when replayed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from salesmap_tui.engine.endpoints import SNAPSHOT_ENDPOINTS
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    EngineWarning,
    PhaseChanged,
    RequestRetried,
    RequestStats,
    RunFinished,
    RunResult,
    RunStarted,
    WebformProgress,
    WorkspacePaused,
)
from salesmap_tui.tui.overview import Holder

# the rows the dashboard has, in the engine's crawl order (one list: engine/endpoints.py)
ENDPOINTS = tuple(spec.name for spec in SNAPSHOT_ENDPOINTS)
# Rates are measured over this window; none is shown before MIN_RATE_SPAN_S of it is covered.
RATE_WINDOW_S = 5.0
MIN_RATE_SPAN_S = 2.0
MAX_RETRIES_KEPT = 500
# Row states beyond the engine's own: how a row ends when the run did not finish it.
IDLE = "idle"  # nothing has run in this view (the row shows the live DB's figure)
STOPPED = "stopped"  # the run was interrupted or failed while this endpoint was under way
NOT_RUN = "not run"  # the run ended before this endpoint started
ACTIVE_STATES = frozenset({"fetching", "backoff"})


class RateMeter:
    """Rows per second over the last few seconds; None until there is enough to measure."""

    def __init__(self, window_s: float = RATE_WINDOW_S, min_span_s: float = MIN_RATE_SPAN_S):
        self.window_s = window_s
        self.min_span_s = min_span_s
        self._samples: deque[tuple[datetime, int]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, now: datetime, value: int) -> None:
        samples = self._samples
        if samples and samples[-1][1] == value and len(samples) > 1:
            # an unchanged count (backoff, repeated state) is a sample too: the rate falls
            samples[-1] = (now, value)
        else:
            samples.append((now, value))
        # keep one sample older than the window as the measuring start
        while len(samples) > 2 and (now - samples[1][0]).total_seconds() >= self.window_s:
            samples.popleft()

    def rate(self, now: datetime | None = None) -> float | None:
        samples = self._samples
        if len(samples) < 2:
            return None
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        end = max(now, t1) if now is not None else t1
        span = (end - t0).total_seconds()
        if (t1 - t0).total_seconds() < self.min_span_s or span <= 0:
            return None
        return max(v1 - v0, 0) / span


@dataclass
class EndpointView:
    name: str
    state: str = IDLE
    pages: int = 0
    rows: int = 0
    expected: int | None = None
    backoff_s: float | None = None
    backoff_until: datetime | None = None
    live_rows: int | None = None  # the live DB's count, shown while nothing runs
    meter: RateMeter = field(default_factory=RateMeter)

    def reset(self, expected: int | None) -> None:
        self.state = "waiting"
        self.pages = self.rows = 0
        self.expected = expected
        self.backoff_s = None
        self.backoff_until = None
        self.meter.reset()

    def rate(self, now: datetime | None = None) -> float | None:
        if self.state not in ACTIVE_STATES:
            return None
        return self.meter.rate(now)

    def remaining_backoff(self, now: datetime) -> float | None:
        if self.state != "backoff" or self.backoff_until is None:
            return None
        return max((self.backoff_until - now).total_seconds(), 0.0)

    def eta_s(self, now: datetime | None = None) -> float | None:
        rate = self.rate(now)
        if not self.expected or not rate or self.rows >= self.expected:
            return None
        return (self.expected - self.rows) / rate

    def fraction(self) -> float | None:
        if self.state == "done":
            return 1.0
        if not self.expected:
            return None
        return min(self.rows / self.expected, 1.0)


@dataclass(frozen=True)
class RetryEntry:
    when: datetime
    endpoint: str
    attempt: str
    cause: str
    status: int | None
    wait_s: float | None
    reason: str
    warning: bool = False


@dataclass
class RunView:
    """Everything the dashboard shows about one run (the newest in this view)."""

    run_tag: str | None = None
    kind: str = "snapshot"
    phase: str | None = None
    phase_detail: str = ""
    active: bool = False
    cancelling: bool = False
    started: RunStarted | None = None
    started_at: datetime | None = None
    result: RunResult | None = None
    backup: BackupMade | None = None
    checkpoint: CheckpointSaved | None = None
    stats: RequestStats | None = None
    webform: WebformProgress | None = None
    warnings: list[str] = field(default_factory=list)
    retries: list[RetryEntry] = field(default_factory=list)
    start_error: str | None = None
    endpoints: dict[str, EndpointView] = field(
        default_factory=lambda: {name: EndpointView(name) for name in ENDPOINTS}
    )
    overall: RateMeter = field(default_factory=RateMeter)
    retries_dropped: int = 0
    holder: Holder | None = None  # another process's run this view follows (read-only)
    watch_ended: str | None = None  # what became of that process once it let go of the lock

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def watching(self) -> bool:
        """Another process's run is going and shown here (ours cannot start meanwhile)."""
        return self.holder is not None and self.active

    def requested(self) -> None:
        """Our own run was asked for: the last run's figures stay until its RunStarted."""
        self.active = True
        self.cancelling = False
        self.start_error = None
        self.holder = None
        self.watch_ended = None

    def cancel_requested(self) -> None:
        self.cancelling = True

    def attach(self, holder: Holder) -> None:
        """Follow another process's run (going now): its events arrive through `apply`."""
        self.holder = holder
        self.watch_ended = None
        self.active = True

    def detach(self, message: str | None) -> None:
        """The watched process let go of the lock; its result (if it wrote one) stays."""
        if self.active:
            self.ended_without_result(
                message or "the watched run's process ended without writing its result"
            )
        self.watch_ended = message or "ended"

    def failed_to_start(self, message: str) -> None:
        self.active = False
        self.start_error = message
        if self.result is None:
            for ep in self.endpoints.values():
                if ep.state == "waiting":
                    ep.state = IDLE

    def ended_without_result(self, message: str) -> None:
        """The run's process went away with no RunFinished (killed): rows stop where they were."""
        self.active = False
        self.cancelling = False
        self.start_error = message
        self._settle_rows("interrupted")

    # --- the reducer ----------------------------------------------------------------------------
    def apply(self, event: EngineEvent, now: datetime) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event, now)
        elif isinstance(event, PhaseChanged):
            self.phase = event.phase
            self.phase_detail = event.detail
        elif isinstance(event, EndpointProgress):
            self._progress(event, now)
        elif isinstance(event, RequestRetried):
            self._retry(event, now)
        elif isinstance(event, RequestStats):
            self.stats = event
        elif isinstance(event, CheckpointSaved):
            self.checkpoint = event
        elif isinstance(event, BackupMade):
            self.backup = event
        elif isinstance(event, EngineWarning):
            self.warnings.append(event.message)
            self._add_retry(RetryEntry(now, "-", "!", event.message, None, None, "", True))
        elif isinstance(event, WorkspacePaused):
            # once per pause: every request of the workspace holds off, not only this one
            self._add_retry(
                RetryEntry(
                    now, event.endpoint, "-", f"workspace paused ({event.status})",
                    event.status, event.wait_s, event.reason,
                )
            )  # fmt: skip
        elif isinstance(event, WebformProgress):
            self.webform = event
        elif isinstance(event, RunFinished):
            self.finish(event.result)

    def _run_started(self, event: RunStarted, now: datetime) -> None:
        keep_cp = self.checkpoint if self.run_tag == event.run_tag else None
        live = {name: ep.live_rows for name, ep in self.endpoints.items()}
        holder, watch_ended = self.holder, self.watch_ended  # whose run it is stays known
        self.__dict__.update(RunView().__dict__)
        self.holder, self.watch_ended = holder, watch_ended
        for name, rows in live.items():
            self.endpoints[name].live_rows = rows
        self.started = event
        self.started_at = now
        self.run_tag = event.run_tag
        self.kind = event.kind
        self.active = True
        self.checkpoint = keep_cp
        for name in event.endpoints or ():
            self.endpoints.setdefault(name, EndpointView(name))
        for name, ep in self.endpoints.items():
            if event.kind == "webform":
                ep.state = IDLE  # the web-form pass does not touch the endpoint tables
                continue
            ep.reset(event.expected_rows.get(name))

    def _progress(self, event: EndpointProgress, now: datetime) -> None:
        ep = self.endpoints.setdefault(event.endpoint, EndpointView(event.endpoint))
        ep.state = event.state
        ep.pages = event.pages
        ep.rows = event.rows
        if event.expected_rows is not None:
            ep.expected = event.expected_rows
        if event.state == "backoff":
            ep.backoff_s = event.wait_s
            ep.backoff_until = now + timedelta(seconds=event.wait_s)
        else:
            ep.backoff_s = None
            ep.backoff_until = None
        if event.state in ACTIVE_STATES or event.state == "done":
            ep.meter.add(now, event.rows)
        self.overall.add(now, self.rows_done())

    def _retry(self, event: RequestRetried, now: datetime) -> None:
        self._add_retry(
            RetryEntry(
                now,
                event.endpoint,
                f"{event.attempt}/{event.max_attempts}",
                event.error,
                event.status,
                event.wait_s,
                event.reason,
            )
        )
        ep = self.endpoints.get(event.endpoint)
        if ep is not None and ep.state not in ("done", "failed"):
            ep.state = "backoff"
            ep.backoff_s = event.wait_s
            ep.backoff_until = now + timedelta(seconds=event.wait_s)

    def _add_retry(self, entry: RetryEntry) -> None:
        self.retries.append(entry)
        if len(self.retries) > MAX_RETRIES_KEPT:
            drop = len(self.retries) - MAX_RETRIES_KEPT
            del self.retries[:drop]
            self.retries_dropped += drop

    def retries_after(self, seen: int) -> tuple[list[RetryEntry], int]:
        """The retry entries after the first `seen` of this run (those still kept), and how
        many this run has had: a retry log shows each entry once, however often it is synced."""
        total = self.retries_dropped + len(self.retries)
        new = min(total - seen, len(self.retries))
        return (self.retries[-new:] if new > 0 else []), total

    def finish(self, result: RunResult) -> None:
        self.result = result
        self.run_tag = result.run_tag
        self.kind = result.kind
        self.active = False
        self.cancelling = False
        if result.status in ("done", "fallback"):
            self.phase = "done"  # an interrupted or failed run keeps the phase it stopped in
        if result.kind == "snapshot":
            self._settle_rows(result.status, result.tables)

    def _settle_rows(self, status: str, tables: dict[str, dict[str, int]] | None = None) -> None:
        """Every row ends in its real state: nothing says fetching once nothing runs."""
        for name, ep in self.endpoints.items():
            ep.backoff_s = None
            ep.backoff_until = None
            if ep.state in ("done", "failed", IDLE):
                continue
            if status in ("done", "fallback"):
                ep.state = "done"
                info = (tables or {}).get(name)
                if info is not None:
                    ep.rows = int(info.get("rows", ep.rows))
            elif ep.state == "waiting" and ep.pages == 0:
                ep.state = NOT_RUN
            else:
                ep.state = STOPPED

    # --- figures --------------------------------------------------------------------------------
    def rows_done(self) -> int:
        return sum(ep.rows for ep in self.endpoints.values())

    def rows_expected(self) -> int | None:
        """The previous snapshot's rows for every endpoint of this run, None on a first run."""
        if self.started is None or not self.started.expected_rows:
            return None
        total = 0
        for ep in self.endpoints.values():
            if ep.state == IDLE:
                continue
            total += max(ep.expected or 0, ep.rows)
        return total or None

    def overall_fraction(self) -> float | None:
        expected = self.rows_expected()
        if expected is None:
            return None
        if self.result is not None and self.result.status in ("done", "fallback"):
            return 1.0
        return min(self.rows_done() / expected, 1.0)

    def overall_rate(self, now: datetime | None = None) -> float | None:
        return self.overall.rate(now) if self.active else None

    def overall_eta_s(self, now: datetime | None = None) -> float | None:
        expected = self.rows_expected()
        rate = self.overall_rate(now)
        if expected is None or not rate:
            return None
        left = expected - self.rows_done()
        return left / rate if left > 0 else None

    def elapsed_s(self, now: datetime) -> float | None:
        if self.result is not None:
            return self.result.duration_s
        if self.started_at is None:
            return None
        return max((now - self.started_at).total_seconds(), 0.0)
