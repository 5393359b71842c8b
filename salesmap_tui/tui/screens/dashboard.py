"""The run dashboard (home screen): endpoints, request rate, phase, retries, checkpoint, summary.

It draws a `RunView` (tui/runview.py): the TUI's own run, or another process's run it follows
read-only through that run's events file. Before any run it shows the newest run from the
history and the live DB, so a user opening it learns where things stand.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    RequestRetried,
    RequestStats,
    RunFinished,
    RunResult,
    RunStarted,
    WebformProgress,
)
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import (
    age,
    clock_time,
    count,
    duration,
    from_epoch,
    middle,
    parse_iso,
    relativize,
    short,
    short_path,
    show_path,
    size,
    status_style,
    wait,
)
from salesmap_tui.tui.messages import (
    CancelRun,
    DiscardHeld,
    LetIn,
    OpenLog,
    StartRun,
    StopAttached,
)
from salesmap_tui.tui.overview import HeldBack, Holder, Overview, overview
from salesmap_tui.tui.runview import ENDPOINTS, RetryEntry, RunView
from salesmap_tui.tui.screens.base import KeyedScreen
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow, eta_text
from salesmap_tui.tui.widgets.quiet_static import LastDrawn, set_text

PHASES = (
    ("backup", "backup"),
    ("crawl", "crawl"),
    ("webform", "web forms"),
    ("finalize", "finalize"),
    ("swap", "swap"),
)
DEFAULT_REFRESH_S = 0.25  # the dashboard draws progress at most this often (app.ui_refresh_s)
# Where a wait came from, in the few cells the log has for it.
REASONS = {"Retry-After header": "header", "body hint": "hint", "backoff": "backoff"}
# retry-log columns; the cause takes what the others leave
LOG_LABELS = ("time", "endpoint", "try", "cause", "wait")
LOG_WIDE = {"time": 8, "endpoint": 12, "try": 3, "wait": 14}
LOG_NARROW = {"time": 8, "endpoint": 8, "wait": 7}


class RetryLog(DataTable[Text]):
    """The retry log; when its width changes the dashboard gives the cause column the rest.

    It is anchored: each layout keeps its newest entry in view (rows whose column widths change
    grow the table after a scroll was computed), until the user moves up to an older entry;
    moving back down to the newest follows the log again.
    """

    def on_mount(self) -> None:
        self.anchor()

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            screen.call_later(screen._layout_log)


class DashboardScreen(KeyedScreen):
    """Everything a running (or finished) snapshot tells: one place to watch it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "start_run", "Run", id="dashboard.run"),
        # shown only while a snapshot the shrink guard held back waits for a decision (before
        # the screens' keys: at 80 columns those are also listed in the summary)
        Binding("i", "let_in", "Let in", id="dashboard.let_in"),
        Binding("D", "discard_held", "Discard", id="dashboard.discard"),
        Binding("c", "cancel_run", "Cancel", id="dashboard.cancel"),
        Binding("x", "stop_attached", "Stop safely", id="dashboard.stop"),
        Binding("l", "open_log", "Log", id="dashboard.log"),
        Binding("s", "app.switch_mode('resume')", "Resume", id="dashboard.resume"),
        Binding("b", "app.switch_mode('restore')", "Backups", id="dashboard.restore"),
        Binding("w", "app.switch_mode('webform')", "Web forms", id="dashboard.webform"),
        Binding("h", "app.switch_mode('history')", "History", id="dashboard.history"),
    ]

    def __init__(self, context: ScreenContext, *, refresh_s: float = DEFAULT_REFRESH_S) -> None:
        super().__init__(context, id="dashboard")
        self.refresh_s = refresh_s  # draws progress at most this often (seconds; 0: every burst)
        self.view = RunView()
        self.overview: Overview | None = None
        self._drawn = LastDrawn()  # what each bar and panel was last drawn from
        self._rows: dict[str, EndpointRow] = {}
        self._dirty_rows: set[EndpointRow] = set()
        self._panels_dirty = False
        self._flush_pending = False
        self._last_flush = 0.0
        self._log_epoch: object = None  # the RunStarted the retry log shows entries of
        self._log_seen = 0  # entries of the view's retry list already in the table
        self._compact: bool | None = None
        self._log_labels: tuple[str, ...] = LOG_LABELS

    # The view's figures under the names the rest of the app (and the tests) use.
    @property
    def result(self) -> RunResult | None:
        return self.view.result

    @property
    def checkpoint(self) -> CheckpointSaved | None:
        return self.view.checkpoint

    @property
    def started(self) -> RunStarted | None:
        return self.view.started

    @property
    def active(self) -> bool:
        return self.view.active

    @property
    def cancelling(self) -> bool:
        return self.view.cancelling

    @property
    def run_tag(self) -> str | None:
        return self.view.run_tag

    @property
    def backup(self) -> BackupMade | None:
        return self.view.backup

    @property
    def stats(self) -> RequestStats | None:
        return self.view.stats

    @property
    def webform(self) -> WebformProgress | None:
        return self.view.webform

    @property
    def holder(self) -> Holder | None:
        return self.view.holder

    @holder.setter
    def holder(self, holder: Holder | None) -> None:
        self.view.holder = holder

    @property
    def watch_ended(self) -> str | None:
        return self.view.watch_ended

    # --- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="run-bar")
        yield Static(id="phase-bar")
        with Vertical(id="endpoints"):
            with Horizontal(classes="endpoint-row endpoint-head"):
                for name, cls in (
                    ("endpoint", "ep-name"),
                    ("progress", "ep-bar-head"),
                    ("pages · rows", "ep-detail"),
                    ("state", "ep-state"),
                    ("rate", "ep-rate"),
                ):
                    yield Static(Text(name, style="bold"), classes=cls)
            for endpoint in ENDPOINTS:
                yield EndpointRow(endpoint, self.view.endpoints[endpoint], clock=self.context.clock)
        yield Static(id="rate-bar")
        with Horizontal(id="bottom"):
            with Vertical(id="retry-pane"):
                yield RetryLog(id="retry-log", cursor_type="row", zebra_stripes=True)
                yield Static(id="retry-detail")
            with Vertical(id="side-pane"):
                yield Static(id="checkpoint-panel")
                with VerticalScroll(id="summary-scroll"):
                    yield Static(id="summary-panel")
        # the palette hint gives its cells to the keys (ctrl+p still works; F1 lists it)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#endpoints").border_title = "Endpoints"
        self.query_one("#retry-pane").border_title = "Retries and backoff"
        self.query_one("#checkpoint-panel").border_title = "Checkpoint"
        self.query_one("#summary-scroll").border_title = "Summary"
        self._layout_log()
        self.call_after_refresh(self._layout_log)
        # relative ages ("3 minutes ago") tick even when nothing runs
        self.set_interval(1.0, self._tick, name="dashboard-ages")
        # is_mounted turns true only after this handler; draw on the next turn
        self.call_later(self.refresh_panels)

    def on_resize(self) -> None:
        self._layout_log()
        self.call_after_refresh(self._layout_log)  # again once the panes have their sizes
        self.refresh_panels()

    def _layout_log(self) -> None:
        """Retry-log columns for this width: the cause gets every cell the others leave.

        Narrow screens drop the attempt column and the wait's source; the highlighted entry is
        always shown whole (wrapped at word boundaries) below the log.
        """
        compact = self.compact
        table = next(self.query("#retry-log").results(DataTable), None)
        if table is None:
            return
        for row in self.query(EndpointRow):
            if row.compact != compact:
                row.compact = compact
                row.render_row()
        pane = table.size.width
        if pane <= 0:  # not laid out yet
            pane = self.app.size.width - (34 if compact else 48) - 2
        labels: tuple[str, ...] = ("time", "endpoint", "cause", "wait") if compact else LOG_LABELS
        widths = LOG_NARROW if compact else LOG_WIDE
        fixed = sum(widths[label] + 2 for label in labels if label != "cause")
        cause = pane - fixed - 4  # its cell padding, and the vertical scrollbar
        if cause < 14 and "time" in labels:  # very narrow: the time gives way to the cause
            labels = tuple(label for label in labels if label != "time")
            cause += widths["time"] + 2
        cause = max(cause, 8)
        self._log_labels = labels
        if not self._drawn.changed("log columns", (compact, cause)) and table.columns:
            return
        self._compact = compact
        table.clear(columns=True)
        for label in labels:
            table.add_column(label, width=cause if label == "cause" else widths[label])
        self._log_seen = 0
        self._sync_log()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        watching = self.view.watching
        if action == "cancel_run":
            return self.run_active
        if action == "stop_attached":
            return watching
        if action == "start_run":
            # while watching another process's run: hidden (its footer needs x at 80 columns)
            return False if watching else (None if self.run_active else True)
        if action == "open_log":
            return self.log_path() is not None
        if action in ("let_in", "discard_held"):
            return self.held_back is not None and not (self.run_active or watching)
        return True

    @property
    def held_back(self) -> HeldBack | None:
        """The newest snapshot the shrink guard held back, still waiting for a decision."""
        held = self.overview.held_back if self.overview else ()
        return held[0] if held else None

    def action_let_in(self) -> None:
        if self.held_back is not None:
            self.post_message(LetIn(self.held_back))

    def action_discard_held(self) -> None:
        if self.held_back is not None:
            self.post_message(DiscardHeld(self.held_back))

    def log_path(self) -> str | None:
        """The log of the run on screen: this one, the watched one, or the newest recorded."""
        if self.view.result is not None and self.view.result.log_path:
            return self.view.result.log_path
        if self.view.started is not None and self.view.started.log_path:
            return self.view.started.log_path
        last = self.overview.last_run if self.overview else None
        if last and last.get("log_path"):
            return str(last["log_path"])
        return None

    def action_open_log(self) -> None:
        path = self.log_path()
        if path is not None:
            self.post_message(OpenLog(path))

    def action_start_run(self) -> None:
        self.post_message(StartRun())

    def action_cancel_run(self) -> None:
        self.post_message(CancelRun())

    def action_stop_attached(self) -> None:
        self.post_message(StopAttached())

    def load_overview(self) -> None:
        """The newest run and the live DB, read again (files and SQLite: a thread)."""
        settings = self.context.settings
        self.run_in_thread(lambda: overview(settings), group="overview", description="overview")

    def thread_done(self, group: str, result: Any) -> None:
        if group == "overview":
            self.show_overview(result)

    # --- events ---------------------------------------------------------------------------------
    def row(self, endpoint: str) -> EndpointRow | None:
        # a dict, not a DOM query: this runs for every progress event of a fast run
        if not self._rows:
            self._rows = {row.endpoint: row for row in self.query(EndpointRow)}
        return self._rows.get(endpoint)

    def run_requested(self) -> None:
        """The user started a run: the last run's figures stay until its RunStarted arrives."""
        self.view.requested()
        self.refresh_bindings()
        self.refresh_panels()

    def run_failed_to_start(self, message: str) -> None:
        self.view.failed_to_start(message)
        self._render_all_rows()
        self.refresh_bindings()
        self.refresh_panels()

    def cancel_requested(self) -> None:
        self.view.cancel_requested()
        self.refresh_panels()

    def show_overview(self, overview: Overview) -> None:
        """The newest run and the live DB, read by a worker; shown while nothing runs."""
        self.overview = overview
        self.refresh_bindings()
        for name, ep in self.view.endpoints.items():
            ep.live_rows = overview.live.tables.get(name) if overview.live.exists else None
        self._render_all_rows()
        self.refresh_panels()

    def attach(self, holder: Holder) -> None:
        """Follow another process's run: its events arrive through `apply` like our own."""
        self.view.attach(holder)
        self.refresh_bindings()
        self.refresh_panels()

    def watched_run_ended(self, message: str | None) -> None:
        """The watched process let go of the lock; its result (if it wrote one) stays shown."""
        was_active = self.view.active
        self.view.detach(message)
        if was_active:
            self._render_all_rows()
        self.refresh_bindings()
        self.refresh_panels()

    def apply(self, event: EngineEvent, now: datetime | None = None) -> None:
        view = self.view
        when = now or self.context.now()
        before = view.started
        view.apply(event, when)
        if isinstance(event, EndpointProgress):
            row = self.row(event.endpoint)
            if row is not None:
                self._dirty_rows.add(row)
            self._panels_dirty = True
            self._schedule_flush()
            return
        if isinstance(event, RequestRetried):
            self._sync_log()
            row = self.row(event.endpoint)
            if row is not None:
                row.render_row()
            return
        if view.started is not before:  # a new run (RunStarted): every row changed
            self._render_all_rows()
            self._sync_log()
            self.refresh_bindings()
        if isinstance(event, RunFinished):
            self.flush()
            self._render_all_rows()
            self.refresh_bindings()
        self._sync_log()
        if isinstance(event, RequestStats | CheckpointSaved | WebformProgress):
            # the frequent ones: drawn with the next flush
            self._panels_dirty = True
            self._schedule_flush()
        else:
            self.refresh_panels()

    def finish(self, result: RunResult) -> None:
        """The engine's result when no RunFinished came (the worker's return value)."""
        self.flush()
        self.view.finish(result)
        self._render_all_rows()
        self.refresh_bindings()
        self.refresh_panels()

    def _render_all_rows(self) -> None:
        if not self.is_mounted:
            return
        for name, ep in self.view.endpoints.items():
            row = self.row(name)
            if row is not None:
                if row.view is not ep:
                    row.bind(ep)
                else:
                    row.render_row()

    # --- coalesced drawing ----------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        """Draw pending changes now if the last draw is old enough, else once the interval ends.

        A fast run sends far more progress than anyone can read; drawing each event costs the
        event loop and, through the GIL, the engine thread. At most one draw per interval keeps
        the screen current to a tenth of a second at a fraction of the cost.
        """
        if self._flush_pending:
            return
        self._flush_pending = True
        interval = self.refresh_s
        delay = self._last_flush + interval - time.monotonic()
        if delay <= 0:
            self.call_later(self.flush)
        else:
            self.set_timer(delay, self.flush, name="dashboard-flush")

    def flush(self) -> None:
        """Draw every row and panel changed since the last draw."""
        self._flush_pending = False
        self._last_flush = time.monotonic()
        rows, self._dirty_rows = self._dirty_rows, set()
        for row in rows:
            row.render_row()
        if self._panels_dirty:
            self.refresh_panels()

    def _tick(self) -> None:
        """Once a second: ages, rates and ETAs move on even without events."""
        if self.view.active:
            for row in self.query(EndpointRow):
                if row.state in ("fetching", "backoff"):
                    row.render_row()
        self.refresh_panels()

    # --- retry log ------------------------------------------------------------------------------
    def _sync_log(self) -> None:
        """Add the view's new retry entries to the table (cleared when a new run starts)."""
        tables = self.query("#retry-log").results(DataTable)
        table = next(tables, None)
        if not self.is_mounted or table is None:
            return
        view = self.view
        if view.started is not self._log_epoch:
            self._log_epoch = view.started
            if view.started is not None:
                table.clear()
                self._log_seen = 0
                self.query_one("#retry-detail", Static).display = False
        entries, total = view.retries_after(self._log_seen)
        if not entries:
            return
        if self._log_seen == 0 and table.row_count:
            table.clear()
        # the log follows its newest entry (highlighted, so the line below shows it whole)
        # unless the user moved the cursor to an older one: that one stays where it is
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        for entry in entries:
            table.add_row(*self._log_cells(entry))
        self._log_seen = total
        while table.row_count > len(view.retries):
            table.remove_row(next(iter(table.rows)))
        if following:
            table.move_cursor(row=table.row_count - 1, animate=False, scroll=False)
            # and re-anchors it at its end (the anchor keeps it there through layouts)
            table.scroll_end(animate=False, immediate=False, x_axis=False)

    def _log_cells(self, entry: RetryEntry) -> tuple[Text, ...]:
        now = self.context.now()
        if entry.warning:
            cells = {
                "time": Text(clock_time(entry.when, now)),
                "endpoint": Text("-"),
                "try": Text("!", style="bold yellow"),
                "cause": Text.assemble(("warning: ", "bold yellow"), entry.cause),
                "wait": Text(""),
            }
        else:
            reason = REASONS.get(entry.reason, entry.reason)
            cells = {
                "time": Text(clock_time(entry.when, now)),
                "endpoint": Text(entry.endpoint),
                "try": Text(entry.attempt),
                "cause": Text(entry.cause, style="yellow" if entry.status == 429 else "red"),
                "wait": (
                    Text(wait(entry.wait_s))
                    if self._compact
                    else Text.assemble(f"{wait(entry.wait_s)} ", (reason, "dim"))
                ),
            }
        return tuple(cells[label] for label in self._log_labels)

    @on(DataTable.RowHighlighted, "#retry-log")
    def _retry_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The cause column is cut to its width (Korean server messages often are longer):
        # the highlighted entry is shown whole, wrapped at word boundaries, below the log.
        table = event.data_table
        if event.row_key not in table.rows:
            # the log was rebuilt (a new run, a resize) after this highlight was posted: the
            # rebuild highlights its own row
            return
        shown = dict(zip(self._log_labels, table.get_row(event.row_key), strict=False))
        cells = [shown.get(label, Text("")) for label in LOG_LABELS]
        line = Text.assemble(("› ", "dim"), cells[0], " ", cells[1], " ")
        if cells[2].plain and cells[2].plain != "!":
            line.append(f"try {cells[2].plain} ", "dim")
        line.append_text(cells[3])
        if cells[4].plain:
            line.append(" · wait ")
            line.append_text(cells[4])
        detail = self.query_one("#retry-detail", Static)
        detail.update(line)
        detail.display = True

    # --- rendering ------------------------------------------------------------------------------
    def refresh_panels(self) -> None:
        self._panels_dirty = False
        if not self.is_mounted or not self.query("#summary-panel"):
            return
        # Fixed heights (phase bar 1 line) never need a layout pass; the others only when their
        # line count changes. A fast run sends dozens of events a second.
        run_bar = self.query_one("#run-bar", Static)
        text = self._run_bar()
        set_text(run_bar, text, layout=self._drawn.changed("run-bar lines", _lines(text)))
        set_text(self.query_one("#phase-bar", Static), self._phase_bar())
        rate = self._rate_bar()
        rate_widget = self.query_one("#rate-bar", Static)
        set_text(rate_widget, rate, layout=self._drawn.changed("rate-bar lines", _lines(rate)))
        panel = self.query_one("#checkpoint-panel", Static)
        checkpoint_key = (id(self.checkpoint), self._checkpoint_age(), self.compact)
        if self._drawn.changed("checkpoint", checkpoint_key):
            self._update_panel(panel, self._checkpoint_panel())
        # Once a run ended (or before any) the summary needs the room.
        ended = not self.view.active
        if self.has_class("-ended") != ended:
            self.set_class(ended, "-ended")
            self.call_after_refresh(self._layout_log)  # the panes change width
        # a held-back snapshot waits for a decision: at 80 columns the summary takes the width
        held = ended and self.held_back is not None
        if self.has_class("-held") != held:
            self.set_class(held, "-held")
            self.call_after_refresh(self._layout_log)
        panel.display = self.view.active or (self.result is None and self.checkpoint is not None)
        summary_key = (
            id(self.result),
            id(self.checkpoint) if self.result is not None else None,  # (interrupted: named)
            self.view.start_error,
            self.view.active,
            id(self.overview),
            id(self.holder),
            self.watch_ended,
            self._overview_age(),
        )
        if self._drawn.changed("summary", summary_key):
            self._update_panel(self.query_one("#summary-panel", Static), self._summary_panel())

    def _update_panel(self, widget: Static, content: Table | Text | Group) -> None:
        """Show `content`; a layout pass only when its height changes.

        Every checkpoint of a fast run redraws its panel; a layout pass re-lays the whole screen
        (~0.1 s of the event loop here, and of the engine thread through the GIL), while the
        panel keeps its height nearly always.
        """
        width = widget.content_region.width
        height = -1
        if width > 0:
            console = self.app.console
            height = len(console.render_lines(content, console.options.update_width(width)))
        resized = self._drawn.changed(f"{widget.id} height", height)
        widget.update(content, layout=height < 0 or resized)

    def _checkpoint_age(self) -> str:
        # the panel says "12 seconds ago": redraw it when that text would change
        if self.checkpoint is None:
            return ""
        return age(parse_iso(self.checkpoint.saved_at), self.context.now())

    def _overview_age(self) -> str:
        ov = self.overview
        if ov is None or ov.last_run is None:
            return ""
        return age(parse_iso(str(ov.last_run.get("started_at") or "")), self.context.now())

    def _width(self) -> int:
        return max(self.app.size.width - 2, 40)

    def _run_bar(self) -> Text:
        context = self.context
        base = context.base_dir
        view = self.view
        now = context.now()
        text = Text()
        if view.run_tag:
            text.append("run ", "dim")
            text.append(view.run_tag, "bold")
            text.append(f" · {view.kind}", "dim")
            if view.started and view.started.resumed:
                text.append(" · resumed", "bold magenta")
            text.append("  ")
        if view.active:
            if view.cancelling:
                text.append("cancelling — saving a checkpoint…", "bold yellow")
            elif view.started is None and self.holder is None:
                text.append("starting…", "bold cyan")
            else:
                text.append("running", "bold cyan")
                elapsed = view.elapsed_s(now)
                if elapsed is not None:
                    text.append(f" · {duration(elapsed)}", "dim")
        elif view.result is not None:
            text.append(view.result.status, status_style(view.result.status))
            text.append(f" · exit {view.result.exit_code}", "dim")
        elif view.start_error:
            text.append("not started", "bold red")
        else:
            text.append("nothing running", "dim italic")
        if self.holder is not None:
            holder = self.holder
            text.append("\n")
            verb = "watching" if view.active else "watched"
            text.append(f"{verb} the run of PID {holder.pid}", "bold magenta")
            if holder.started is not None:
                text.append(f" (started {clock_time(from_epoch(holder.started, now), now)})")
            text.append(" · read-only", "dim")
            if holder.cmdline and not self.compact:  # narrow: the stop dialog shows it
                text.append("\n")
                text.append(middle(holder.cmdline, self._width()), "dim")
        text.append("\n")
        text.append("db ", "dim")
        width = self._width()
        text.append(short_path(show_path(context.settings.db_path, base), max(width // 2, 30)))
        live = self.overview.live if self.overview else None
        if live is not None and live.exists:
            moment = from_epoch(live.mtime, now) if live.mtime else None
            text.append(f" · {size(live.size_bytes)} · {age(moment, now)}", "dim")
            if live.run_tag and not self.compact:
                text.append(f" · data of {live.run_tag}", "dim")
        elif live is not None:
            text.append(" · no live DB yet", "yellow")
        if view.backup and view.active and not self.compact:
            text.append("  backup ", "dim")
            text.append(short_path(show_path(view.backup.path, base), 40))
            text.append(f" ({size(view.backup.size_bytes)})")
        if not context.settings.token and not context.demo:
            text.append("  SALESMAP_TOKEN not set", "bold red")
        if context.demo:
            text.append("  demo" if self.compact else "  demo: local sandbox", "bold magenta")
        return text

    def _phase_bar(self) -> Text:
        view = self.view
        text = Text("phase ", style="dim")
        if view.phase is None and not view.active:
            text.append("-", "dim")
            return text
        order = [key for key, _ in PHASES]
        current = order.index(view.phase) if view.phase in order else None
        for index, (key, label) in enumerate(PHASES):
            if index:
                text.append(" › ", "dim")
            if key == view.phase:
                style = "bold reverse" if view.active else "bold"
                text.append(f" {label} ", style)
            elif view.phase == "done" or (current is not None and index < current):
                text.append(label, "green")
            else:
                text.append(label, "dim")
        if view.phase in ("lock", "prepare"):
            text.append(f"  ({view.phase})", "italic")
        if view.result is not None and view.result.status not in ("done", "fallback"):
            text.append("  ")
            text.append(f"stopped in {view.phase or 'start'}", "yellow")
        elif view.phase_detail and not self.compact:
            text.append("  ")
            text.append(short(view.phase_detail, 40), "italic")
        return text

    def _overall(self) -> Text | None:
        """Overall progress and ETA from the previous snapshot's row counts."""
        view = self.view
        if view.started is None or view.kind != "snapshot":
            return None
        now = self.context.now()
        expected = view.rows_expected()
        text = Text("overall ", style="dim")
        done = view.rows_done()
        if expected is None:
            text.append(f"{count(done)} rows", "bold")
            if view.active and view.phase in (None, "lock", "backup", "prepare", "crawl"):
                words = (
                    "first run: no ETA (no previous snapshot)"
                    if self.compact
                    else "first run: no previous snapshot to estimate the total from"
                )
                text.append(f" · {words}", "dim italic")
            return text
        fraction = view.overall_fraction() or 0.0
        # an endpoint the previous snapshot had no count for makes the total a lower bound
        rough = fraction < 1 and any(
            ep.expected is None and ep.state != "idle" for ep in view.endpoints.values()
        )
        text.append(f"{'~' if rough else ''}{fraction * 100:.0f}%", "bold")
        text.append(f" · {count(done)}/{count(expected)} rows")
        if view.active:
            eta = view.overall_eta_s(now)
            if eta is not None:
                text.append(f" · {eta_text(eta)}", "bold")
            elif view.overall_rate(now) is None and view.phase == "crawl":
                text.append(" · ETA once the rate is known", "dim")
            rate = view.overall_rate(now)
            if rate is not None:
                text.append(f" · {rate:,.0f} rows/s", "dim")
        return text

    def _rate_bar(self) -> Text:
        text = Text()
        overall = self._overall()
        if overall is not None:
            text.append_text(overall)
            text.append("\n")
        text.append("requests ", "dim")
        stats = self.stats
        if stats is None or (not self.view.active and self.view.result is None):
            text.append("-", "dim")
        else:
            per_s = stats.last_window_requests / stats.window_s if stats.window_s else 0.0
            load = stats.last_window_requests / stats.limit if stats.limit else 0.0
            style = "bold red" if load >= 0.95 else "bold yellow" if load >= 0.8 else "bold"
            if self.view.active:
                text.append(f"{per_s:.1f} req/s", style)
                window = (
                    f"{stats.last_window_requests}/{stats.limit} per {stats.window_s:g} s"
                    if stats.limit
                    else "pacing off"
                )
                text.append(f" · {window} · ")
            text.append(f"{count(stats.total_requests)} requests in {duration(stats.elapsed_s)}")
        if self.webform is not None:
            wf = self.webform
            text.append("\nweb forms ", "dim")
            text.append(
                f"{wf.forms_done}/{wf.forms_total} forms · {count(wf.new_rows)} new"
                f" · {wf.dropped} dropped · {wf.skipped_forms} skipped"
            )
        return text

    def _checkpoint_panel(self) -> Group | Text:
        cp = self.checkpoint
        if cp is None:
            return Text("no checkpoint saved in this run yet", style="dim italic")
        now = self.context.now()
        saved = parse_iso(cp.saved_at)
        header = Text(middle(Path(cp.path).name, 44 if not self.compact else 30))
        header.append(f"\nsaved {clock_time(saved, now)} · {age(saved, now)} · {cp.phase}", "dim")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        if not self.compact:
            grid.add_column(no_wrap=True)
        for endpoint, info in cp.endpoints.items():
            done = bool(info.get("done"))
            cursor = info.get("cursor")
            cells = [
                Text(endpoint),
                Text(f"{count(info.get('pages'))} p · {count(info.get('rows'))}"),
                Text("done" if done else "", style="green"),
            ]
            if not self.compact:
                cells.append(
                    Text(short(str(cursor), 10) if cursor and not done else "", style="dim")
                )
            grid.add_row(*cells)
        return Group(header, grid)

    def _summary_panel(self) -> Table | Text | Group:
        main = self._run_summary()
        held = self.held_back
        if held is None or self.view.active:
            return main
        # what waits for a decision comes first: the pane is short at 80x24
        return Group(self._held_panel(held), Text(""), main)

    def _held_panel(self, held: HeldBack) -> Group:
        """A snapshot the shrink guard held back: which tables shrank, and what to press."""
        now = self.context.now()
        base = self.context.base_dir
        width = self._summary_width()
        title = Text("held back by the shrink guard", "bold yellow")
        title.append(" (exit 5): the live DB was not replaced", "yellow")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        started = parse_iso(held.started_at or "")
        run = Text(held.run_tag)
        if started is not None:  # as the last-run lines below say it: when it started
            run.append(f" · started {age(started, now)}", "dim")
        grid.add_row(Text("run"), run)
        shrank = Text()
        for index, shrink in enumerate(held.shrinks):
            if index:
                shrank.append("\n")
            shrank.append(shrink.table, "bold")
            shrank.append(f" {count(shrink.before)} → {count(shrink.after)} rows ")
            shrank.append(f"(-{shrink.fraction:.0%})", "bold red")
        if not held.shrinks:  # the live DB changed since: the engine's words then
            shrank.append(held.reason or "no list table is smaller than in the live DB now", "dim")
        grid.add_row(Text("shrank"), shrank)
        grid.add_row(Text("kept at"), Text(short_path(show_path(held.path, base), width)))
        keys = Text()
        keys.append("i", "bold")
        keys.append(" let it in (asks first; the live DB is backed up first) · ")
        keys.append("D", "bold")
        keys.append(" discard it (asks first; deletes only that file)")
        others = len(self.overview.held_back) - 1 if self.overview else 0
        if others > 0:
            keys.append(
                f"\n{others} older held-back snapshot(s) follow once this one is decided", "dim"
            )
        return Group(title, keys, grid)

    def _run_summary(self) -> Table | Text | Group:
        result = self.result
        view = self.view
        if result is None:
            if view.start_error:
                return Text(view.start_error, style="red")
            if view.active:
                if self.holder is not None:
                    return Text(
                        f"watching a run of another process (PID {self.holder.pid}); its "
                        "result appears here when it ends. x stops it safely (it saves a "
                        "checkpoint).",
                        style="dim italic",
                    )
                return Text("the summary appears when the run ends", style="dim italic")
            return self._idle_panel()
        return self._result_grid(result)

    def _idle_panel(self) -> Group | Text:
        """Before any run in this session: the newest run from the history, and what to press."""
        now = self.context.now()
        parts: list[Text | Table] = []
        ov = self.overview
        last = ov.last_run if ov else None
        if ov is None:
            parts.append(Text("reading the run history…", style="dim italic"))
        elif last is None:
            parts.append(Text("no run yet in the history", style="italic"))
        else:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column()
            status = str(last.get("status") or "?")
            line = Text(status, status_style(status))
            exit_code = last.get("exit_code")
            if exit_code is not None:
                line.append(f" · exit {exit_code}", "dim")
            grid.add_row(Text("last run"), line)
            grid.add_row(Text(""), Text(f"{last.get('kind', 'snapshot')} {last.get('run_tag')}"))
            started = parse_iso(str(last.get("started_at") or ""))
            when = Text(f"{clock_time(started, now)} · {age(started, now)}")
            if last.get("duration_s") is not None:
                when.append(f" · took {duration(float(last['duration_s']))}", "dim")
            grid.add_row(Text("when"), when)
            tables = last.get("tables") or {}
            if isinstance(tables, dict) and tables:
                total = sum(int((t or {}).get("rows") or 0) for t in tables.values())
                grid.add_row(Text("rows"), Text(f"{count(total)} in {len(tables)} tables"))
            errors = int(last.get("error_count") or len(last.get("errors") or []))
            grid.add_row(Text("errors"), Text(str(errors), style="red" if errors else "green"))
            if status == "running" and self.holder is None:
                grid.add_row(
                    Text(""),
                    Text("recorded as running, but no process holds the lock", style="yellow"),
                )
            parts.append(grid)
        keys = Text("\n")
        keys.append("r", "bold")
        keys.append(" start a snapshot · ")
        keys.append("s", "bold")
        keys.append(" resume · ")
        keys.append("b", "bold")
        keys.append(" backups · ")
        keys.append("w", "bold")
        keys.append(" web forms · ")
        keys.append("h", "bold")
        keys.append(" history")
        parts.append(keys)
        return Group(*parts)

    def _summary_width(self) -> int:
        """Cells for a path in the summary's value column (cut in the middle to fit)."""
        pane = self.query_one("#summary-scroll").size.width
        if pane <= 0:
            return 44 if not self.compact else 28
        return max(pane - 16, 20)  # border, padding, scrollbar, the label column

    def _result_grid(self, result: RunResult) -> Table:
        base = self.context.base_dir
        width = self._summary_width()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        status = Text(result.status, status_style(result.status))
        status.append(f" · exit {result.exit_code} · {duration(result.duration_s)}", "")
        grid.add_row(Text("status"), status)
        if self.holder is not None:
            grid.add_row(Text("ran in"), Text(f"PID {self.holder.pid} (watched)", "magenta"))
        grid.add_row(Text(""), Text(relativize(result.message, base)))
        if result.status == "interrupted":
            if self.checkpoint is not None:
                grid.add_row(
                    Text("checkpoint"), Text(middle(Path(self.checkpoint.path).name, width))
                )
            grid.add_row(
                Text("resume"),
                Text(f"press s and choose {result.run_tag} to continue it", "bold magenta"),
            )
        if result.tables:
            rows = Text()
            for index, (name, info) in enumerate(result.tables.items()):
                if index:
                    rows.append(" · ", "dim")
                rows.append(f"{name} {count(info.get('rows'))}")
            grid.add_row(Text("rows"), rows)
        live = Text(short_path(show_path(result.final_db_path, base), width))
        live.append(" (replaced)" if result.replaced else " (not replaced)", "dim")
        grid.add_row(Text("live DB"), live)
        if result.fallback_path:
            grid.add_row(
                Text("fallback"),
                Text(short_path(show_path(result.fallback_path, base), width), style="bold yellow"),
            )
        if result.backup_path:
            grid.add_row(
                Text("backup"), Text(short_path(show_path(result.backup_path, base), width))
            )
        if result.log_path:
            grid.add_row(Text("log"), Text(short_path(show_path(result.log_path, base), width)))
        if result.webform is not None:
            wf = result.webform
            line = Text(wf.status, "green" if wf.status == "done" else "yellow")
            line.append(
                f" · {wf.forms} forms · {count(wf.new_rows)} new · {wf.dropped} dropped"
                f" · {wf.skipped_forms} skipped"
            )
            if wf.error:
                line.append(" · ")
                line.append(wf.error, "red")
            grid.add_row(Text("web forms"), line)
        if result.errors:
            errors = Text()
            for index, error in enumerate(result.errors[:5]):
                if index:
                    errors.append("\n")
                errors.append(error, "red")
            if len(result.errors) > 5:
                errors.append(f"\n… and {len(result.errors) - 5} more (see the log)", "dim")
            grid.add_row(Text(f"errors ({len(result.errors)})"), errors)
        return grid


def _lines(content: object) -> int:
    return content.plain.count("\n") + 1 if isinstance(content, Text) else -1
