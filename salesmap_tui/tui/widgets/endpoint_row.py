"""One endpoint's line on the dashboard: bar, pages/rows/ETA, state, rate."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar, Static

from salesmap_tui.engine.events import EndpointProgress
from salesmap_tui.tui.format import count, duration

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

    def compose(self) -> ComposeResult:
        yield Label(Text(self.endpoint), classes="ep-name")
        yield ProgressBar(total=None, show_eta=False, classes="ep-bar")
        yield Static(classes="ep-detail")
        yield Static(classes="ep-state")
        yield Static(classes="ep-rate")

    def on_mount(self) -> None:
        self._render_row()

    def set_expected(self, expected: int | None) -> None:
        self.expected = expected
        self._render_row()

    def reset(self, expected: int | None) -> None:
        self.state = "waiting"
        self.pages = self.rows = 0
        self.expected = expected
        self.backoff_s = self.rate = None
        self._started = None
        self._render_row()

    def apply(self, event: EndpointProgress, now: datetime) -> None:
        self.state = event.state
        self.pages = event.pages
        self.rows = event.rows
        if event.expected_rows is not None:
            self.expected = event.expected_rows
        self.backoff_s = event.wait_s if event.state == "backoff" else None
        if self._started is None and event.state in ("fetching", "backoff"):
            self._started = (now, event.rows)
        if self._started is not None:
            since, rows0 = self._started
            elapsed = (now - since).total_seconds()
            if elapsed > 0:
                self.rate = (event.rows - rows0) / elapsed
        self._render_row()

    def backing_off(self, wait_s: float) -> None:
        """A retry is waiting: the row says so until the next progress event."""
        if self.state not in ("done", "failed"):
            self.state = "backoff"
            self.backoff_s = wait_s
            self._render_row()

    def _render_row(self) -> None:
        if not self.is_mounted:
            return
        bar = self.query_one(ProgressBar)
        if self.expected:
            total = max(self.expected, self.rows)
            bar.update(total=total, progress=self.rows)
        elif self.state == "done":
            bar.update(total=max(self.rows, 1), progress=max(self.rows, 1))
        else:
            bar.update(total=None)
        detail = Text(f"{count(self.pages)} pages · {count(self.rows)}")
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
        self.query_one(".ep-detail", Static).update(detail)
        label = self.state
        if self.state == "backoff":
            label = f"backing off {self.backoff_s or 0:.1f} s"
        self.query_one(".ep-state", Static).update(
            Text(label, style=STATE_STYLES.get(self.state, ""))
        )
        rate = "-" if self.rate is None else f"{self.rate:,.0f} rows/s"
        self.query_one(".ep-rate", Static).update(Text(rate))
