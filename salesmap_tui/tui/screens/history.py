"""History browser: every run in run_history.jsonl, a detail pane and a chart across runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from salesmap_tui.engine.history import HistoryEntry, HistoryItem, HistoryProblem, latest_per_tag
from salesmap_tui.tui.changes import (
    TABLE_COLORS,
    color_of,
    sharp_moves,
    snapshot_runs,
    sparkline,
    table_series,
)
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import (
    clock_time,
    count,
    duration,
    parse_iso,
    short,
    short_path,
    show_path,
    status_style,
)
from salesmap_tui.tui.messages import OpenLog
from salesmap_tui.tui.screens.base import AppScreen


def total_rows(record: dict[str, Any]) -> int | None:
    tables = record.get("tables")
    if not isinstance(tables, dict) or not tables:
        return None
    total = 0
    for info in tables.values():
        if isinstance(info, dict) and isinstance(info.get("rows"), int):
            total += info["rows"]
    return total


# (label, width): every column fits 120 columns; at 80 the date, outcome and rows lead and the
# run tag (named in the detail pane, with the backup and fallback files) goes last
WIDE_COLUMNS = (
    ("run tag", 21),
    ("kind", 8),
    ("status", 11),
    ("started", 16),
    ("duration", 9),
    ("rows", 7),
    ("err", 3),
    ("moved", 20),
)
NARROW_COLUMNS = (
    ("started", 11),
    ("kind", 8),
    ("status", 11),
    ("rows", 7),
    ("err", 3),
    ("moved", 13),
    ("duration", 9),
    ("run tag", 21),
)


class HistoryScreen(AppScreen):
    """Newest run first; Enter/highlight shows its detail; the chart compares runs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "toggle_all", "All lines", id="history.all"),
        Binding("t", "toggle_chart", "Chart", id="history.chart"),
        Binding("l", "open_log", "Log", id="history.log"),
        Binding("f5", "reload", "Reload", show=False, id="history.reload"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context, id="history")
        self.items: list[HistoryItem] = []
        self.shown: list[HistoryItem] = []
        self.show_all = False
        self.chart = "rows"
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(id="history-intro", classes="screen-intro")
        with Vertical(id="history-list", classes="panel"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="history-bottom"):
            with VerticalScroll(id="history-detail-scroll", classes="panel"):
                yield Static(id="history-detail")
            with Vertical(id="history-chart-pane", classes="panel"):
                yield Static(id="history-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#history-list").border_title = "Runs (newest first)"
        self.query_one("#history-detail-scroll").border_title = "Detail"
        self._chart_title()
        self._columns: tuple[tuple[str, int], ...] = ()
        self._layout_columns()
        self.reload()

    def on_resize(self) -> None:
        if self._layout_columns() and self.loaded:
            self.show_items(self.items)

    def _layout_columns(self) -> bool:
        """The table's columns for this width; True when they changed."""
        columns = NARROW_COLUMNS if self.compact else WIDE_COLUMNS
        if columns == self._columns:
            return False
        self._columns = columns
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        for label, width in columns:
            table.add_column(label, width=width, key=label)
        return True

    def _chart_title(self) -> None:
        title = "Did a table change? rows per run" if self.chart == "rows" else "Duration, errors"
        self.query_one("#history-chart-pane").border_title = f"{title} · t switches"

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from salesmap_tui.engine import api

        settings = self.context.settings
        self.run_in_thread(
            lambda: api.read_history(settings), group="history-read", description="read history"
        )

    def thread_done(self, group: str, result: Any) -> None:
        if group == "history-read":
            self.show_items(result)

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.show_items(self.items)

    def action_toggle_chart(self) -> None:
        self.chart = "duration" if self.chart == "rows" else "rows"
        self._chart_title()
        self.draw_chart()

    def show_items(self, items: list[HistoryItem]) -> None:
        self.items = list(items)
        self.loaded = True
        shown = self.items if self.show_all else latest_per_tag(self.items)
        # newest first by start time, as `salesmap-tui history` lists them (file order breaks
        # ties); unreadable lines after the runs
        entries = [i for i in reversed(shown) if isinstance(i, HistoryEntry)]
        entries.sort(key=lambda i: str(i.record.get("started_at") or ""), reverse=True)
        self.shown = [*entries, *(i for i in reversed(shown) if isinstance(i, HistoryProblem))]
        problems = sum(1 for item in self.items if isinstance(item, HistoryProblem))
        intro = Text(
            f"{show_path(self.context.settings.history_path, self.context.base_dir)} · "
            f"{len(self.items)} lines · ",
            "dim",
        )
        intro.append(
            "all lines" if self.show_all else "last state per run tag (a shows all lines)", "dim"
        )
        if problems:
            intro.append(f" · {problems} unreadable line(s)", "bold yellow")
        self.query_one("#history-intro", Static).update(intro)
        table = self.query_one("#runs", DataTable)
        table.clear()
        now = self.context.now()
        # each snapshot against the one before it in time: which tables moved sharply
        ordered = snapshot_runs(
            [i.record for i in latest_per_tag(self.items) if isinstance(i, HistoryEntry)],
            limit=10_000,
        )
        previous = {
            str(rec.get("run_tag")): ordered[n - 1] if n else None for n, rec in enumerate(ordered)
        }
        order = [label for label, _ in self._columns]
        for index, item in enumerate(self.shown):
            if isinstance(item, HistoryProblem):
                cells = {
                    order[0]: Text(f"line {item.line_no}", style="yellow"),
                    "kind": Text("⚠", style="bold yellow"),
                    "status": Text("unreadable", style="bold yellow"),
                    # why, in the first column with room for it after the status
                    "moved" if self.compact else "started": Text(
                        short(item.error, 13 if self.compact else 16), style="yellow"
                    ),
                }
                table.add_row(*(cells.get(label, Text("")) for label in order), key=str(index))
                continue
            rec = item.record
            status = str(rec.get("status", "?"))
            errors_n = rec.get("error_count")
            rows = total_rows(rec)
            started = clock_time(parse_iso(rec.get("started_at")), now)
            if self.compact and len(started) == 16:
                started = started[5:]  # "03-13 02:00"; the detail pane gives the year
            cells = {
                "run tag": Text(str(rec.get("run_tag", "?"))),
                "kind": Text(str(rec.get("kind", "?"))),
                "status": Text(status, style=status_style(status, in_list=True)),
                "started": Text(started),
                "duration": Text(duration(_float(rec.get("duration_s"))), justify="right"),
                "rows": Text(count(rows), justify="right"),
                "err": Text(
                    str(errors_n) if errors_n is not None else "-",
                    style="red" if errors_n else "",
                    justify="right",
                ),
                "moved": _moved(sharp_moves(previous.get(str(rec.get("run_tag"))), rec)),
            }
            table.add_row(*(cells[label] for label in order), key=str(index))
        if self.shown:
            self.show_detail(0)
        else:
            self.query_one("#history-detail", Static).update(
                Text("No runs recorded yet.", style="dim")
            )
        self.draw_chart()

    def action_open_log(self) -> None:
        """The highlighted run's log (and its events), following it if it still runs."""
        table = self.query_one("#runs", DataTable)
        if not self.shown or table.cursor_row < 0:
            self.notify("No run to show the log of.", severity="warning")
            return
        item = self.shown[min(table.cursor_row, len(self.shown) - 1)]
        log = item.record.get("log_path") if isinstance(item, HistoryEntry) else None
        if not log:
            self.notify("This history line names no log.", severity="warning")
            return
        self.post_message(OpenLog(str(log)))

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_detail(int(event.row_key.value))

    def show_detail(self, index: int) -> None:
        if not 0 <= index < len(self.shown):
            return
        item = self.shown[index]
        detail = self.query_one("#history-detail", Static)
        if isinstance(item, HistoryProblem):
            text = Text(f"Line {item.line_no} could not be read\n", style="bold yellow")
            text.append(item.error, "yellow")
            text.append("\n\n")
            text.append(item.text, "dim")
            detail.update(text)
            return
        detail.update(self._record_detail(item.record))

    def _record_detail(self, rec: dict[str, Any]) -> Table:
        base = self.context.base_dir
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        status = str(rec.get("status", "?"))
        head = Text(f"{rec.get('kind', '?')} ", "bold")
        head.append(status, status_style(status, in_list=True))
        head.append(f" · {duration(_float(rec.get('duration_s')))}")
        grid.add_row(Text("run"), Text(str(rec.get("run_tag", "?")), "bold"))
        grid.add_row(Text("outcome"), head)
        grid.add_row(Text("started"), Text(str(rec.get("started_at") or "-")))
        grid.add_row(Text("finished"), Text(str(rec.get("finished_at") or "-")))
        pane = self.query_one("#history-detail-scroll").size.width
        width = max((pane or self.app.size.width // 2) - 15, 24)  # border, padding, labels
        tables = rec.get("tables")
        if isinstance(tables, dict) and tables:
            t = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
            t.add_column("table")
            t.add_column("rows", justify="right")
            t.add_column("cols", justify="right")
            for name, info in tables.items():
                info = info if isinstance(info, dict) else {}
                t.add_row(
                    Text(str(name)), Text(count(info.get("rows"))), Text(count(info.get("cols")))
                )
            grid.add_row(Text("tables"), t)
        for label, key in (
            ("live DB", "final_db_path"),
            ("fallback", "fallback_path"),
            ("backup", "backup_path"),
            ("temp DB", "temp_db_path"),
            ("log", "log_path"),
        ):
            value = rec.get(key)
            if value:
                # cut in the middle to the pane's width: the file name stays
                grid.add_row(Text(label), Text(short_path(show_path(str(value), base), width)))
        if "replaced" in rec:
            grid.add_row(Text("replaced"), Text("yes" if rec.get("replaced") else "no"))
        wf = rec.get("webform")
        if isinstance(wf, dict):
            line = Text(str(wf.get("status", "?")))
            line.append(
                f" · {count(wf.get('forms'))} forms · {count(wf.get('new_rows'))} new · "
                f"{count(wf.get('dropped'))} dropped · {count(wf.get('skipped_forms'))} skipped"
            )
            if wf.get("error"):
                line.append("\n")
                line.append(str(wf.get("error")), "red")
            grid.add_row(Text("web forms"), line)
        errs = rec.get("errors")
        if isinstance(errs, list) and errs:
            text = Text()
            for index, error in enumerate(errs):
                if index:
                    text.append("\n")
                text.append(str(error), "red")
            grid.add_row(Text(f"errors ({len(errs)})"), text)
        return grid

    def draw_chart(self) -> None:
        """Rows per table over the runs in time order, and what moved sharply (or duration and
        errors per run, with t)."""
        chart = self.query_one("#history-chart", Static)
        records = [i.record for i in latest_per_tag(self.items) if isinstance(i, HistoryEntry)]
        width = max(self.app.size.width // 2 - 34, 6)
        runs = snapshot_runs(records)[-width:]
        if not runs:
            chart.update(Text("no snapshot runs with table counts yet", style="dim"))
            return
        now = self.context.now()
        first = parse_iso(str(runs[0].get("started_at") or ""))
        last = parse_iso(str(runs[-1].get("started_at") or ""))
        head = Text(f"{len(runs)} run{'s' if len(runs) != 1 else ''}, oldest → newest: ", "dim")
        head.append(_when(first, now))
        if len(runs) > 1:
            head.append(" … ", "dim")
            head.append(_when(last, now))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)  # what
        grid.add_column(no_wrap=True)  # sparkline, oldest to newest
        grid.add_column(justify="right", no_wrap=True)  # newest
        grid.add_column(justify="right", no_wrap=True)  # against the run before
        grid.add_column(no_wrap=True, overflow="ellipsis")  # range (dim, gives way first)
        if self.chart == "rows":
            grid.add_row(
                Text("table", "bold"), Text(""), Text("newest", "bold"), Text("Δ", "bold"),
                Text("lo–hi", "dim"),
            )  # fmt: skip
            all_series = table_series(runs)
            extra = [s.name for s in all_series if s.name not in TABLE_COLORS]
            for series in all_series:
                color = color_of(series.name, extra)
                known = [v for v in series.rows if v is not None]
                span = f"{count(min(known))}–{count(max(known))}" if known else "-"
                grid.add_row(
                    Text(short(series.name, 16), style=color),
                    Text(sparkline(series.rows), style=color),
                    Text(count(series.rows[-1])),
                    _change_text(series.last_change, series.sharp),
                    Text(span, "dim"),
                )
        else:
            durations = [_float(r.get("duration_s")) for r in runs]
            errors = [r.get("error_count") if isinstance(r.get("error_count"), int) else None
                      for r in runs]  # fmt: skip
            grid.add_row(Text("per run", "bold"), Text(""), Text("newest", "bold"), Text(""),
                         Text("lo–hi", "dim"))  # fmt: skip
            known_d = [d for d in durations if d is not None]
            grid.add_row(
                Text("duration", "cyan"),
                Text(sparkline(durations), "cyan"),
                Text(duration(durations[-1])),
                Text(""),
                Text(_span(known_d), "dim"),
            )
            known_e = [e for e in errors if e is not None]
            grid.add_row(
                Text("errors", "red"),
                Text(sparkline(errors), "red"),
                Text(str(errors[-1]) if errors[-1] is not None else "-"),
                Text(""),
                Text(f"{min(known_e)}–{max(known_e)}" if known_e else "-", "dim"),
            )
        chart.update(Group(head, grid))


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _moved(moves: list[tuple[str, float]]) -> Text:
    """The table that moved most against the run before (the others counted)."""
    if not moves:
        return Text("")
    name, delta = moves[0]
    text = Text(f"{name} {delta * 100:+.0f}%", style="bold yellow" if delta > 0 else "bold red")
    if len(moves) > 1:
        text.append(f" +{len(moves) - 1}", "dim")
    return text


def _span(values: list[float]) -> str:
    return f"{duration(min(values))}–{duration(max(values))}" if values else "-"


def _when(moment: datetime | None, now: datetime) -> str:
    """A run's start as a date and HH:MM (never a bare HHMM that reads as a year)."""
    if moment is None:
        return "?"
    return moment.astimezone(now.tzinfo).strftime("%m-%d %H:%M")


def _change_text(delta: float | None, sharp: bool) -> Text:
    if delta is None:
        return Text("")
    text = f"{delta * 100:+.0f}%"
    if sharp:
        return Text(f"{text} ⚠", style="bold yellow" if delta > 0 else "bold red")
    return Text(text, style="dim")
