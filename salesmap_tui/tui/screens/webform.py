"""Web forms: what webform_history holds, and a web-form-only pass with its progress."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Label, ProgressBar, Static

from salesmap_tui.engine.api import FormCount, WebformStatus
from salesmap_tui.engine.events import (
    EngineEvent,
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
    parse_iso,
    short,
    show_path,
)
from salesmap_tui.tui.messages import StartWebformPass
from salesmap_tui.tui.screens.base import AppScreen


class WebformScreen(AppScreen):
    """The live DB's webform_history and the pass that refreshes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "start_pass", "Web-form pass", id="webform.pass"),
        Binding("f5", "reload", "Reload", show=False, id="webform.reload"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context, id="webform")
        self.status: WebformStatus | None = None
        self.forms: list[FormCount] = []
        self.result: RunResult | None = None
        self.progress: WebformProgress | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        yield Static(id="webform-intro", classes="screen-intro")
        with Horizontal(id="webform-top"):
            yield Static(id="webform-status", classes="panel")
            with Vertical(id="webform-forms-pane", classes="panel"):
                yield DataTable(id="webform-forms", cursor_type="row", zebra_stripes=True)
        with Vertical(id="webform-pass", classes="panel"):
            with Horizontal(id="webform-line"):
                yield Button("Run web-form pass (p)", id="start-pass", variant="primary")
                yield Label(Text("idle"), id="webform-stage")
                yield ProgressBar(total=None, show_eta=False, id="webform-bar")
            yield Static(id="webform-result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#webform-status").border_title = "webform_history in the live DB"
        self.query_one("#webform-pass").border_title = "Web-form-only pass"
        self.query_one("#webform-forms-pane").border_title = "Forms"
        forms = self.query_one("#webform-forms", DataTable)
        for label, width in (("form", 24), ("rows", 6), ("newest", 10)):
            forms.add_column(label, width=width)
        settings = self.context.settings
        intro = Text(
            "The pass fetches every form's submissions for the people in the live DB's deals "
            "and adds new ones to webform_history in ",
            "dim",
        )
        intro.append(show_path(settings.db_path, self.context.base_dir), "bold")
        intro.append(
            ", in one transaction; no other table is touched and no backup is taken.", "dim"
        )
        self.query_one("#webform-intro", Static).update(intro)
        self.query_one("#webform-result", Static).update(
            Text("No pass in this session yet.", style="dim")
        )
        self.query_one("#webform-bar", ProgressBar).update(total=1, progress=0)
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from salesmap_tui.engine import api

        settings = self.context.settings
        self.run_in_thread(
            lambda: api.webform_status(settings),
            group="webform-status",
            description="web-form status",
        )

    def thread_done(self, group: str, result: Any) -> None:
        if group == "webform-status":
            self.show_status(result)

    def show_status(self, status: WebformStatus) -> None:
        self.status = status
        self.query_one("#webform-status", Static).update(self._status_table(status))
        self.forms = list(status.form_rows)
        table = self.query_one("#webform-forms", DataTable)
        table.clear()
        now = self.context.now()
        for form in self.forms:
            newest = parse_iso(form.newest)
            table.add_row(
                Text(short(form.name, 24)),
                Text(count(form.rows), justify="right"),
                Text(newest.astimezone(now.tzinfo).strftime("%Y-%m-%d") if newest else "-"),
                key=form.form_id,
            )

    def _status_table(self, status: WebformStatus) -> Table | Text:
        if not status.db_exists:
            return Text(
                "No live DB yet: run a full snapshot first (r), or the pass creates "
                "webform_history in a new DB.",
                style="yellow",
            )
        now = self.context.now()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        newest = parse_iso(status.newest_created_at)
        grid.add_row(Text("rows"), Text(count(status.rows), style="bold"))
        grid.add_row(Text("forms"), Text(count(status.forms)))
        newest_text = Text(status.newest_created_at or "-")
        if newest is not None:
            newest_text.append(f"  ({age(newest, now)})", "dim")
        grid.add_row(Text("newest submission"), newest_text)
        grid.add_row(Text("allowed people"), Text(f"{count(status.allowed_people)} (from deals)"))
        grid.add_row(Text("last pass"), self._last_pass(status.last_pass))
        return grid

    def _last_pass(self, record: dict[str, Any] | None) -> Text:
        if not record:
            return Text("none recorded", style="dim")
        now = self.context.now()
        wf = record.get("webform") or {}
        finished = parse_iso(record.get("finished_at") or record.get("started_at"))
        text = Text(str(wf.get("status", "?")), "green" if wf.get("status") == "done" else "yellow")
        text.append(
            f" · {record.get('kind', '?')} run {record.get('run_tag', '?')}"
            f" · {clock_time(finished, now)} ({age(finished, now)})"
        )
        text.append(
            f"\n{count(wf.get('forms'))} forms · {count(wf.get('new_rows'))} new · "
            f"{count(wf.get('dropped'))} dropped · {count(wf.get('skipped_forms'))} skipped"
        )
        if wf.get("error"):
            text.append("\n")
            text.append(str(wf["error"]), "red")
        return text

    # --- the pass -------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start-pass":
            event.stop()
            self.action_start_pass()

    def action_start_pass(self) -> None:
        self.post_message(StartWebformPass())  # the App calls pass_started if it starts

    def pass_started(self) -> None:
        """The App started the web-form-only pass this screen asked for."""
        self.running = True
        self.result = None
        self.progress = None
        self.query_one("#webform-stage", Label).update(Text("starting"))
        self.query_one("#webform-bar", ProgressBar).update(total=None)
        self.query_one("#webform-result", Static).update(Text("running …", style="bold"))

    def apply(self, event: EngineEvent) -> None:
        """Engine events of a web-form-only run (the app routes them here)."""
        if isinstance(event, RunStarted):
            self.running = True
        elif isinstance(event, WebformProgress):
            self.progress = event
            bar = self.query_one("#webform-bar", ProgressBar)
            if event.forms_total:
                bar.update(total=event.forms_total, progress=event.forms_done)
            self.query_one("#webform-stage", Label).update(
                Text(f"{event.forms_done}/{event.forms_total} forms")
            )
            self.query_one("#webform-result", Static).update(
                Text(
                    f"{count(event.new_rows)} new rows · {event.dropped} dropped · "
                    f"{event.skipped_forms} skipped forms so far"
                )
            )

    def show_result(self, result: RunResult) -> None:
        self.running = False
        self.result = result
        bar = self.query_one("#webform-bar", ProgressBar)
        bar.update(total=1, progress=1 if result.status == "done" else 0)
        self.query_one("#webform-stage", Label).update(Text(result.status))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        style = "bold green" if result.status == "done" else "bold red"
        grid.add_row(
            Text("status"),
            Text(
                f"{result.status} · exit {result.exit_code} · {duration(result.duration_s)}",
                style=style,
            ),
        )
        grid.add_row(Text(""), Text(result.message))
        wf = result.webform
        if wf is not None:
            grid.add_row(
                Text("result"),
                Text(
                    f"{wf.forms} forms · {count(wf.new_rows)} new rows · {wf.dropped} dropped"
                    f" · {wf.skipped_forms} skipped forms"
                ),
            )
            if wf.error:
                grid.add_row(Text("error"), Text(wf.error, style="red"))
        for error in result.errors[:5]:
            grid.add_row(Text("error"), Text(error, style="red"))
        if result.log_path:
            grid.add_row(Text("log"), Text(show_path(result.log_path, self.context.base_dir)))
        self.query_one("#webform-result", Static).update(grid)
        self.reload()
