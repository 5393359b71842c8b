"""The run dashboard (home screen): endpoints, request rate, phase, retries, checkpoint, summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

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
from salesmap_tui.tui.format import (
    age,
    clock_time,
    count,
    duration,
    parse_iso,
    short,
    show_path,
    size,
    wait,
)
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow
from salesmap_tui.tui.widgets.quiet_static import set_text

if TYPE_CHECKING:
    from salesmap_tui.tui.app import SalesmapApp

ENDPOINTS = ("organization", "people", "deal", "lead", "memo", "user", "team")
PHASES = (
    ("backup", "backup"),
    ("crawl", "crawl"),
    ("webform", "web forms"),
    ("finalize", "finalize"),
    ("swap", "swap"),
)
STATUS_STYLES = {
    "done": "bold green",
    "failed": "bold red",
    "interrupted": "bold yellow",
    "fallback": "bold yellow",
    "running": "bold cyan",
}
MAX_LOG_ROWS = 500
DEFAULT_REFRESH_S = 0.1  # the dashboard draws progress at most this often (app.ui_refresh_s)
# Where a wait came from, in the few cells the log has for it.
REASONS = {"Retry-After header": "header", "body hint": "hint", "backoff": "backoff"}


class DashboardScreen(Screen[None]):
    """Everything a running (or finished) snapshot tells: one place to watch it."""

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.run_tag: str | None = None
        self.kind = "snapshot"
        self.phase: str | None = None
        self.phase_detail = ""
        self.active = False
        self.cancelling = False
        self.result: RunResult | None = None
        self.started: RunStarted | None = None
        self.backup: BackupMade | None = None
        self.checkpoint: CheckpointSaved | None = None
        self.stats: RequestStats | None = None
        self.webform: WebformProgress | None = None
        self.warnings: list[str] = []
        self.start_error: str | None = None
        self._checkpoint_key: tuple[object, ...] | None = None
        self._summary_key: tuple[object, ...] | None = None
        self._rows: dict[str, EndpointRow] = {}
        self._dirty_rows: set[EndpointRow] = set()
        self._panels_dirty = False
        self._flush_pending = False
        self._last_flush = 0.0

    @property
    def sapp(self) -> SalesmapApp:
        return cast("SalesmapApp", self.app)

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
                yield EndpointRow(endpoint)
        yield Static(id="rate-bar")
        with Horizontal(id="bottom"):
            with Vertical(id="retry-pane"):
                yield DataTable(id="retry-log", cursor_type="row", zebra_stripes=True)
                yield Static(id="retry-detail")
            with Vertical(id="side-pane"):
                yield Static(id="checkpoint-panel")
                with VerticalScroll(id="summary-scroll"):
                    yield Static(id="summary-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#endpoints").border_title = "Endpoints"
        self.query_one("#retry-pane").border_title = "Retries and backoff"
        self.query_one("#checkpoint-panel").border_title = "Checkpoint"
        self.query_one("#summary-scroll").border_title = "Summary"
        table = self.query_one("#retry-log", DataTable)
        for label, width in (
            ("time", 8),
            ("endpoint", 12),
            ("try", 3),
            ("cause", 21),
            ("wait", 15),
        ):
            table.add_column(label, width=width)
        # is_mounted turns true only after this handler; draw on the next turn
        self.call_later(self.refresh_panels)

    # --- events ---------------------------------------------------------------------------------
    def row(self, endpoint: str) -> EndpointRow | None:
        # a dict, not a DOM query: this runs for every progress event of a fast run
        if not self._rows:
            self._rows = {row.endpoint: row for row in self.query(EndpointRow)}
        return self._rows.get(endpoint)

    def run_requested(self) -> None:
        """The user started a run: clear the last run's state before its events arrive."""
        self.active = True
        self.cancelling = False
        self.result = None
        self.started = None
        self.backup = None
        self.checkpoint = None
        self.stats = None
        self.webform = None
        self.warnings = []
        self.start_error = None
        self.phase = None
        self.phase_detail = ""
        for row in self.query(EndpointRow):
            row.reset(None)
        self.query_one("#retry-log", DataTable).clear()
        self.query_one("#retry-detail", Static).display = False
        self.refresh_panels()

    def run_failed_to_start(self, message: str) -> None:
        self.active = False
        self.start_error = message
        self.refresh_panels()

    def cancel_requested(self) -> None:
        self.cancelling = True
        self.refresh_panels()

    def apply(self, event: EngineEvent) -> None:
        now = self.sapp.now()
        if isinstance(event, RunStarted):
            self.started = event
            self.run_tag = event.run_tag
            self.kind = event.kind
            self.active = True
            for endpoint_row in self.query(EndpointRow):
                endpoint_row.reset(event.expected_rows.get(endpoint_row.endpoint))
        elif isinstance(event, PhaseChanged):
            self.phase = event.phase
            self.phase_detail = event.detail
        elif isinstance(event, EndpointProgress):
            row = self.row(event.endpoint)
            if row is not None:
                row.apply(event, now, render=False)
                self._dirty_rows.add(row)
            self._schedule_flush()
            return
        elif isinstance(event, RequestRetried):
            self._log_retry(event)
            row = self.row(event.endpoint)
            if row is not None:
                row.backing_off(event.wait_s, self.sapp.now())
            return
        elif isinstance(event, WorkspacePaused):
            # once per pause: every request of the workspace holds off, not only this one
            self._log_line("workspace paused", f"{event.wait_s:.1f} s ({event.status})")
            return
        elif isinstance(event, RequestStats):
            self.stats = event
        elif isinstance(event, CheckpointSaved):
            self.checkpoint = event
        elif isinstance(event, BackupMade):
            self.backup = event
        elif isinstance(event, EngineWarning):
            self.warnings.append(event.message)
            self._log_line("warning", event.message)
        elif isinstance(event, WebformProgress):
            self.webform = event
        elif isinstance(event, RunFinished):
            self.finish(event.result)
            return
        if isinstance(event, RequestStats | CheckpointSaved | WebformProgress):
            # the frequent ones: drawn with the next flush
            self._panels_dirty = True
            self._schedule_flush()
        else:
            self.refresh_panels()

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
        interval = float(getattr(self.app, "ui_refresh_s", DEFAULT_REFRESH_S))
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

    def finish(self, result: RunResult) -> None:
        self.flush()
        self.result = result
        self.run_tag = result.run_tag
        self.active = False
        self.cancelling = False
        if result.status in ("done", "fallback"):
            self.phase = "done"  # an interrupted or failed run keeps the phase it stopped in
        for endpoint, info in result.tables.items():
            row = self.row(endpoint)
            if row is not None and row.state not in ("done", "failed") and result.status == "done":
                row.state = "done"
                row.rows = info.get("rows", row.rows)
                row.set_expected(row.expected)
        self.refresh_panels()

    def _log_retry(self, event: RequestRetried) -> None:
        table = self.query_one("#retry-log", DataTable)
        table.add_row(
            Text(clock_time(self.sapp.now(), self.sapp.now())),
            Text(event.endpoint),
            Text(f"{event.attempt}/{event.max_attempts}"),
            Text(event.error, style="yellow" if event.status == 429 else "red"),
            Text.assemble(
                f"{wait(event.wait_s)} ", (REASONS.get(event.reason, event.reason), "dim")
            ),
        )
        self._trim_log(table)

    def _log_line(self, kind: str, message: str) -> None:
        table = self.query_one("#retry-log", DataTable)
        table.add_row(
            Text(clock_time(self.sapp.now(), self.sapp.now())),
            Text("-"),
            Text("!", style="bold yellow"),
            Text.assemble((f"{kind}: ", "bold yellow"), message),
            Text(""),
        )
        self._trim_log(table)

    @on(DataTable.RowHighlighted, "#retry-log")
    def _retry_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The cause column is cut to its width (Korean server messages often are longer):
        # the highlighted entry is shown whole below the log.
        cells = event.data_table.get_row(event.row_key)
        line = Text.assemble(("› ", "dim"), cells[0], " ", cells[1], " ", cells[3])
        if cells[4].plain:
            line.append(" · wait ")
            line.append_text(cells[4])
        detail = self.query_one("#retry-detail", Static)
        detail.update(line)
        detail.display = True

    @staticmethod
    def _trim_log(table: DataTable[Text]) -> None:
        while table.row_count > MAX_LOG_ROWS:
            first = next(iter(table.rows))
            table.remove_row(first)
        table.scroll_end(animate=False, immediate=False, x_axis=False)

    # --- rendering ------------------------------------------------------------------------------
    def refresh_panels(self) -> None:
        self._panels_dirty = False
        if not self.is_mounted:
            return
        # Fixed heights (run bar 2 lines, phase bar 1) never need a layout pass; the others only
        # when their line count changes. A fast run sends dozens of events a second.
        set_text(self.query_one("#run-bar", Static), self._run_bar())
        set_text(self.query_one("#phase-bar", Static), self._phase_bar())
        rate = self._rate_bar()
        rate_widget = self.query_one("#rate-bar", Static)
        set_text(rate_widget, rate, layout=_lines(rate_widget.content) != _lines(rate))
        panel = self.query_one("#checkpoint-panel", Static)
        checkpoint_key = (id(self.checkpoint), self._checkpoint_age())
        if checkpoint_key != self._checkpoint_key:
            self._checkpoint_key = checkpoint_key
            panel.update(self._checkpoint_panel())
        # Once a run ended the summary needs the room; an interrupted run names its checkpoint.
        panel.display = self.result is None
        summary_key = (id(self.result), id(self.checkpoint), self.start_error, self.active)
        if summary_key != self._summary_key:
            self._summary_key = summary_key
            self.query_one("#summary-panel", Static).update(self._summary_panel())

    def _checkpoint_age(self) -> str:
        # the panel says "12 seconds ago": redraw it when that text would change
        if self.checkpoint is None:
            return ""
        return age(parse_iso(self.checkpoint.saved_at), self.sapp.now())

    def _run_bar(self) -> Text:
        app = self.sapp
        base = app.base_dir
        text = Text()
        if self.run_tag:
            text.append("run ", "dim")
            text.append(self.run_tag, "bold")
            text.append(f" · {self.kind}", "dim")
            if self.started and self.started.resumed:
                text.append(" · resumed", "bold magenta")
            text.append("  ")
        if self.active:
            if self.cancelling:
                text.append("cancelling — saving a checkpoint…", "bold yellow")
            else:
                text.append("running", "bold cyan")
        elif self.result is not None:
            text.append(self.result.status, STATUS_STYLES.get(self.result.status, "bold"))
        elif self.start_error:
            text.append("not started", "bold red")
        else:
            text.append("no run yet — press r to start a snapshot, s to resume one", "italic")
        text.append("\n")
        text.append("db ", "dim")
        text.append(show_path(app.settings.db_path, base))
        if self.backup:
            text.append("  backup ", "dim")
            text.append(f"{show_path(self.backup.path, base)} ({size(self.backup.size_bytes)})")
        if not app.settings.token:
            text.append("  SALESMAP_TOKEN not set", "bold red")
        if app.demo:
            text.append("  demo: local sandbox ", "bold magenta")
            text.append(app.settings.base_url, "dim")
        return text

    def _phase_bar(self) -> Text:
        text = Text("phase ", style="dim")
        order = [key for key, _ in PHASES]
        current = order.index(self.phase) if self.phase in order else None
        for index, (key, label) in enumerate(PHASES):
            if index:
                text.append(" › ", "dim")
            if key == self.phase:
                text.append(f" {label} ", "bold reverse")
            elif self.phase == "done" or (current is not None and index < current):
                text.append(label, "green")
            else:
                text.append(label, "dim")
        if self.phase in ("lock", "prepare"):
            text.append(f"  ({self.phase})", "italic")
        if self.phase_detail:
            text.append("  ")
            text.append(short(self.phase_detail, 60), "italic")
        return text

    def _rate_bar(self) -> Text:
        text = Text("requests ", style="dim")
        stats = self.stats
        if stats is None:
            text.append("-")
        else:
            per_s = stats.last_window_requests / stats.window_s if stats.window_s else 0.0
            load = stats.last_window_requests / stats.limit if stats.limit else 0.0
            style = "bold red" if load >= 0.95 else "bold yellow" if load >= 0.8 else "bold"
            text.append(f"{per_s:.1f} req/s", style)
            window = (
                f"{stats.last_window_requests}/{stats.limit} per {stats.window_s:g} s"
                if stats.limit
                else "pacing off"
            )
            text.append(
                f" · {window} · {count(stats.total_requests)} requests in "
                f"{duration(stats.elapsed_s)}"
            )
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
        now = self.sapp.now()
        saved = parse_iso(cp.saved_at)
        header = Text(Path(cp.path).name)
        header.append(f"\nsaved {clock_time(saved, now)} · {age(saved, now)} · {cp.phase}", "dim")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_column()
        grid.add_column()
        for endpoint, info in cp.endpoints.items():
            done = bool(info.get("done"))
            cursor = info.get("cursor")
            grid.add_row(
                Text(endpoint),
                Text(f"{count(info.get('pages'))} p · {count(info.get('rows'))} rows"),
                Text("done" if done else "", style="green"),
                Text(short(str(cursor), 10) if cursor and not done else "", style="dim"),
            )
        return Group(header, grid)

    def _summary_panel(self) -> Table | Text:
        result = self.result
        if result is None:
            if self.start_error:
                return Text(self.start_error, style="red")
            if self.active:
                return Text("the summary appears when the run ends", style="dim italic")
            return Text(
                "r start a snapshot · s resume · b restore a backup · w web forms · h history",
                style="dim italic",
            )
        base = self.sapp.base_dir
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        status = Text(result.status, STATUS_STYLES.get(result.status, "bold"))
        status.append(f" · exit {result.exit_code} · {duration(result.duration_s)}", "")
        grid.add_row(Text("status"), status)
        grid.add_row(Text(""), Text(result.message))
        if result.status == "interrupted":
            if self.checkpoint is not None:
                grid.add_row(Text("checkpoint"), Text(Path(self.checkpoint.path).name))
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
        live = Text(show_path(result.final_db_path, base))
        live.append(" (replaced)" if result.replaced else " (not replaced)", "dim")
        grid.add_row(Text("live DB"), live)
        if result.fallback_path:
            grid.add_row(
                Text("fallback"),
                Text(show_path(result.fallback_path, base), style="bold yellow"),
            )
        if result.backup_path:
            grid.add_row(Text("backup"), Text(show_path(result.backup_path, base)))
        if result.log_path:
            grid.add_row(Text("log"), Text(show_path(result.log_path, base)))
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
