"""One endpoint's line on the dashboard: bar, pages/rows/ETA, state, rate."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Label, ProgressBar, Static

from salesmap_tui.engine.events import EndpointProgress
from salesmap_tui.tui.format import Clock, count, duration, system_clock, wait
from salesmap_tui.tui.widgets.quiet_static import set_text

INDETERMINATE_FRAME_S = 1 / 5
STATE_STYLES = {
    "waiting": "dim",
    "fetching": "bold cyan",
    "backoff": "bold yellow",
    "done": "bold green",
    "failed": "bold red",
}


class EndpointRow(Horizontal):
    """Tracks one endpoint from its progress events; the clock comes from the caller."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(classes="endpoint-row")
        self.endpoint = endpoint
        self.state = "waiting"
        self.pages = 0
        self.rows = 0
        self.expected: int | None = None
        self.backoff_s: float | None = None
        self.rate: float | None = None
        self._started: tuple[datetime, int] | None = None  # first "fetching": (when, rows then)
        self._backoff_until: datetime | None = None
        self._countdown: Timer | None = None
        self._shown: tuple[object, ...] | None = None  # what the row shows now, to skip repaints

    def compose(self) -> ComposeResult:
        yield Label(Text(self.endpoint), classes="ep-name")
        yield ProgressBar(total=None, show_eta=False, classes="ep-bar")
        yield Static(classes="ep-detail")
        yield Static(classes="ep-state")
        yield Static(classes="ep-rate")

    @property
    def clock(self) -> Clock:
        # the app's clock (a test freezes it); the row also works outside SalesmapApp
        clock = getattr(self.app, "now", None)
        return clock if callable(clock) else system_clock

    def on_mount(self) -> None:
        # is_mounted only turns true after this handler: render on the next turn
        self.call_later(self._render_row)

    def remaining_backoff(self) -> float | None:
        """Seconds left of the current wait (by the app's clock), None when not backing off."""
        if self.state != "backoff" or self._backoff_until is None:
            return None
        left = (self._backoff_until - self.clock()).total_seconds()
        return max(left, 0.0)

    def set_expected(self, expected: int | None) -> None:
        self.expected = expected
        self._render_row()

    def reset(self, expected: int | None) -> None:
        self.state = "waiting"
        self.pages = self.rows = 0
        self.expected = expected
        self.backoff_s = self.rate = None
        self._started = None
        self._set_backoff(None, None)
        self._render_row()

    def apply(self, event: EndpointProgress, now: datetime, *, render: bool = True) -> None:
        """Take in a progress event; with `render=False` the caller draws later (render_row)."""
        self.state = event.state
        self.pages = event.pages
        self.rows = event.rows
        if event.expected_rows is not None:
            self.expected = event.expected_rows
        if event.state == "backoff":
            self._set_backoff(event.wait_s, now)
        else:
            self._set_backoff(None, None)
        if self._started is None and event.state in ("fetching", "backoff"):
            self._started = (now, event.rows)
        if self._started is not None:
            since, rows0 = self._started
            elapsed = (now - since).total_seconds()
            if elapsed > 0:
                self.rate = (event.rows - rows0) / elapsed
        if render:
            self._render_row()

    def render_row(self) -> None:
        """Draw the row from its current state."""
        self._render_row()

    def backing_off(self, wait_s: float, now: datetime) -> None:
        """A retry is waiting: the row counts the wait down until the next progress event."""
        if self.state not in ("done", "failed"):
            self.state = "backoff"
            self._set_backoff(wait_s, now)
            self._render_row()

    def _set_backoff(self, wait_s: float | None, now: datetime | None) -> None:
        self.backoff_s = wait_s
        if wait_s is None or now is None:
            self._backoff_until = None
            if self._countdown is not None:
                self._countdown.stop()
                self._countdown = None
            return
        self._backoff_until = now + timedelta(seconds=wait_s)
        # Whole seconds are what the label changes by; a sub-second wait ends before a tick.
        if self._countdown is None and wait_s >= 1 and self.is_mounted:
            self._countdown = self.set_interval(1.0, self._tick, name=f"backoff-{self.endpoint}")

    def _tick(self) -> None:
        left = self.remaining_backoff()
        if (left is None or left <= 0) and self._countdown is not None:
            self._countdown.stop()
            self._countdown = None
        self._render_state()

    def _render_row(self) -> None:
        if not self.is_mounted:
            return
        self._render_state()
        shown = (self.state, self.pages, self.rows, self.expected, self.rate)
        if shown == self._shown:
            return  # a repeated event (e.g. backoff → fetching at the same page) changes nothing
        self._shown = shown
        bar = self.query_one(ProgressBar)
        if self.expected:
            total = max(self.expected, self.rows)
            bar.update(total=total, progress=self.rows)
        elif self.state == "done":
            bar.update(total=max(self.rows, 1), progress=max(self.rows, 1))
        else:
            if bar.total is not None:
                bar.update(total=None)
            # total unknown: the bar moves while fetching; waiting or backing off it stands still
            frame_s = INDETERMINATE_FRAME_S if self.state == "fetching" else None
            self.call_after_refresh(self._set_bar_frames, frame_s)
        pages = "page" if self.pages == 1 else "pages"
        detail = Text(f"{count(self.pages)} {pages} · {count(self.rows)}")
        if self.expected:
            detail.append(f"/{count(self.expected)}")
        detail.append(" rows")
        if (
            self.expected
            and self.rate
            and self.rate > 0
            and self.state not in ("done", "failed")
            and self.rows < self.expected
        ):
            detail.append(f" · ETA {duration((self.expected - self.rows) / self.rate)}", "dim")
        # one line each in a row of fixed height: never a reason to re-layout the screen
        set_text(self.query_one(".ep-detail", Static), detail)
        rate = "-" if self.rate is None else f"{self.rate:,.0f} rows/s"
        set_text(self.query_one(".ep-rate", Static), Text(rate))

    def _set_bar_frames(self, frame_s: float | None) -> None:
        # Textual animates an indeterminate bar at 15 frames/s; seven of them cost ~14% of a
        # core while idle, and that CPU (and the GIL) is taken from the engine thread. 5 frames/s
        # still reads as "working, total unknown"; None stops it.
        for inner in self.query("ProgressBar > #bar"):  # the inner Bar (not exported)
            if getattr(inner, "percentage", 0) is None:
                inner.auto_refresh = frame_s

    def _render_state(self) -> None:
        label = self.state
        if self.state == "backoff":
            left = self.remaining_backoff()
            if left is not None and left <= 0:
                label = "retrying"  # the wait is over; the request is on its way again
            else:
                label = f"backing off {wait(self.backoff_s if left is None else left)}"
        set_text(
            self.query_one(".ep-state", Static), Text(label, style=STATE_STYLES.get(self.state, ""))
        )
