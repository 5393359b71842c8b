"""One endpoint's line on the dashboard: bar, pages/rows/ETA, state, rate.

The row only draws; what it shows lives in the run view model (`runview.EndpointView`), which
the dashboard feeds with engine events from its own run or an attached one.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Label, ProgressBar, Static

from salesmap_tui.engine.events import EndpointProgress
from salesmap_tui.tui.format import Clock, count, duration, system_clock, wait
from salesmap_tui.tui.runview import IDLE, NOT_RUN, STOPPED, EndpointView
from salesmap_tui.tui.widgets.quiet_static import LastDrawn, set_text

INDETERMINATE_FRAME_S = 1 / 5
STATE_STYLES = {
    IDLE: "dim",
    "waiting": "dim",
    "fetching": "bold cyan",
    "backoff": "bold yellow",
    "done": "bold green",
    "failed": "bold red",
    STOPPED: "bold yellow",
    NOT_RUN: "dim",
}
# Below this a wait is over before anyone reads it: the row just says "retrying".
SHORT_WAIT_S = 0.1


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return "ETA <1 s" if seconds < 1 else f"ETA {duration(seconds)}"


class EndpointRow(Horizontal):
    """Draws one `EndpointView`; the clock comes from the app (a test freezes it)."""

    def __init__(
        self, endpoint: str, view: EndpointView | None = None, *, clock: Clock = system_clock
    ) -> None:
        super().__init__(classes="endpoint-row")
        self.endpoint = endpoint
        self.clock = clock  # the screen's clock: ages and rates (a test freezes it)
        self.view = view or EndpointView(endpoint)
        self.compact = False  # narrow screens: no page count, shorter state words
        self._countdown: Timer | None = None
        self._drawn = LastDrawn()  # what the row shows now, to skip repaints

    # the figures, as the tests and the rest of the UI read them
    @property
    def state(self) -> str:
        return self.view.state

    @property
    def pages(self) -> int:
        return self.view.pages

    @property
    def rows(self) -> int:
        return self.view.rows

    @property
    def expected(self) -> int | None:
        return self.view.expected

    @property
    def rate(self) -> float | None:
        return self.view.rate(self.clock())

    def compose(self) -> ComposeResult:
        yield Label(Text(self.endpoint), classes="ep-name")
        yield ProgressBar(total=None, show_eta=False, classes="ep-bar")
        yield Static(classes="ep-detail")
        yield Static(classes="ep-state")
        yield Static(classes="ep-rate")

    def on_mount(self) -> None:
        # is_mounted only turns true after this handler: render on the next turn
        self.call_later(self._render_row)

    def remaining_backoff(self) -> float | None:
        """Seconds left of the current wait (by the app's clock), None when not backing off."""
        return self.view.remaining_backoff(self.clock())

    def apply(self, event: EndpointProgress, now: datetime, *, render: bool = True) -> None:
        """Feed one progress event straight to this row's view (the row used on its own)."""
        view = self.view
        view.state, view.pages, view.rows = event.state, event.pages, event.rows
        if event.expected_rows is not None:
            view.expected = event.expected_rows
        view.meter.add(now, event.rows)
        if render:
            self._render_row()

    def bind(self, view: EndpointView) -> None:
        self.view = view
        self._drawn.forget("row")
        self._render_row()

    def render_row(self) -> None:
        """Draw the row from its view."""
        self._render_row()

    def _sync_countdown(self) -> None:
        left = self.remaining_backoff()
        # whole seconds are what the label changes by; a sub-second wait ends before a tick
        if left is not None and left >= 1 and self.is_mounted:
            if self._countdown is None:
                self._countdown = self.set_interval(
                    1.0, self._tick, name=f"backoff-{self.endpoint}"
                )
        elif self._countdown is not None:
            self._countdown.stop()
            self._countdown = None

    def _tick(self) -> None:
        left = self.remaining_backoff()
        if (left is None or left <= 0) and self._countdown is not None:
            self._countdown.stop()
            self._countdown = None
        self._render_state()

    def _render_row(self) -> None:
        if not self.is_mounted or len(self.children) < 5:
            return  # its parts are not composed yet (on_mount draws it)
        self._sync_countdown()
        self._render_state()
        view = self.view
        now = self.clock()
        rate = view.rate(now)
        eta = view.eta_s(now)
        shown: tuple[object, ...] = (view.state, view.pages, view.rows, view.expected)
        shown = (*shown, view.live_rows, rate, eta, self.compact)
        if not self._drawn.changed("row", shown):
            return  # a repeated event (e.g. backoff → fetching at the same page) changes nothing
        bar = self.query_one(ProgressBar)
        moving = view.state == "fetching"
        unknown_end = view.state in (STOPPED, "failed") and not view.expected
        bar.show_percentage = view.state != IDLE and not unknown_end
        if view.state == IDLE or unknown_end:
            # nothing runs: a still, empty bar; the live DB's count is the figure
            if bar.total != 1 or bar.progress:
                bar.update(total=1, progress=0)
        elif view.expected:
            bar.update(total=max(view.expected, view.rows), progress=view.rows)
        elif view.state == "done":
            bar.update(total=max(view.rows, 1), progress=max(view.rows, 1))
        elif view.state in ("waiting", NOT_RUN):
            bar.update(total=1, progress=0)  # nothing fetched: a still, empty bar
        elif bar.total is not None:
            # total unknown: the indeterminate bar, moving only while fetching (frames below)
            bar.update(total=None)
        self.call_after_refresh(self._set_bar_frames, INDETERMINATE_FRAME_S if moving else None)
        set_text(self.query_one(".ep-detail", Static), self._detail(eta))
        rate_text = "-" if rate is None else f"{rate:,.0f} rows/s"
        if self.compact and rate is not None:
            rate_text = f"{rate:,.0f}/s"
        set_text(self.query_one(".ep-rate", Static), Text(rate_text, style="" if rate else "dim"))

    def _detail(self, eta: float | None) -> Text:
        view = self.view
        if view.state == IDLE:
            if view.live_rows is None:
                return Text("-", style="dim")
            return Text(f"{count(view.live_rows)} rows in the live DB", style="dim")
        text = Text()
        if not self.compact:
            pages = "page" if view.pages == 1 else "pages"
            text.append(f"{count(view.pages)} {pages} · ")
        text.append(count(view.rows))
        if view.expected and view.state != "done":
            text.append(f"/{count(view.expected)}")
        text.append(" rows")
        if eta is not None and view.state not in ("done", "failed"):
            text.append(f" · {eta_text(eta)}", "dim")
        return text

    def _set_bar_frames(self, frame_s: float | None) -> None:
        # Textual animates an indeterminate bar at 15 frames/s; seven of them cost ~14% of a
        # core while idle, and that CPU (and the GIL) is taken from the engine thread. 5 frames/s
        # still reads as "working, total unknown"; None stops it.
        for inner in self.query("ProgressBar > #bar"):  # the inner Bar (not exported)
            if getattr(inner, "percentage", 0) is None:
                inner.auto_refresh = frame_s

    def _render_state(self) -> None:
        if len(self.children) < 5:
            return
        view = self.view
        label = view.state
        if view.state == IDLE:
            label = "-"
        elif view.state == "backoff":
            left = self.remaining_backoff()
            if left is None or left <= 0 or (view.backoff_s or 0) < SHORT_WAIT_S:
                label = "retrying"  # the wait is over; the request is on its way again
            else:
                word = "backoff" if self.compact else "backing off"
                label = f"{word} {wait(left)}"
        set_text(
            self.query_one(".ep-state", Static), Text(label, style=STATE_STYLES.get(view.state, ""))
        )
