"""Resume: the checkpoints on disk; Enter continues one on the dashboard."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from salesmap_tui.engine.checkpoint import CheckpointInfo
from salesmap_tui.tui.format import (
    age,
    count,
    from_epoch,
    parse_iso,
    relativize,
    short,
    show_path,
    size,
)
from salesmap_tui.tui.screens.base import AppScreen


class ResumeScreen(AppScreen):
    """Every checkpoint, newest first; an unusable one says why and cannot be chosen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "resume", "Resume", id="resume.choose"),
        Binding("f5", "reload", "Reload", show=False, id="resume.reload"),
    ]

    def __init__(self) -> None:
        super().__init__(id="resume")
        self.checkpoints: list[CheckpointInfo] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(
            Text(
                "Checkpoints of unfinished runs. Enter continues the highlighted one on the "
                "dashboard, with its run tag, temp DB and backup.",
                style="dim",
            ),
            classes="screen-intro",
        )
        with Vertical(id="resume-list", classes="panel"):
            yield DataTable(id="checkpoints", cursor_type="row", zebra_stripes=True)
        yield Static(id="checkpoint-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#resume-list").border_title = "Checkpoints"
        self.query_one("#checkpoint-detail").border_title = "Detail"
        table = self.query_one("#checkpoints", DataTable)
        table.add_column("run tag", width=22)
        table.add_column("saved", width=14)
        table.add_column("phase", width=8)
        table.add_column("progress", width=26)
        table.add_column("temp DB", width=8)
        table.add_column("status", width=24)
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from salesmap_tui.engine import api

        settings = self.sapp.settings
        self.sapp.run_in_thread(
            lambda: api.list_checkpoints(settings),
            group="resume-list",
            description="list checkpoints",
            on_success=self.show_checkpoints,
        )

    def show_checkpoints(self, checkpoints: list[CheckpointInfo]) -> None:
        self.checkpoints = list(checkpoints)
        self.loaded = True
        table = self.query_one("#checkpoints", DataTable)
        table.clear()
        now = self.sapp.now()
        for index, info in enumerate(self.checkpoints):
            cp = info.checkpoint
            saved = parse_iso(cp.saved_at) if cp and cp.saved_at else from_epoch(info.mtime, now)
            if cp is not None:
                done = sum(1 for e in cp.endpoints.values() if e.done)
                rows = sum(e.rows for e in cp.endpoints.values())
                progress = Text(f"{done}/{len(cp.endpoints)} endpoints · {count(rows)} rows")
            else:
                progress = Text("-")
            temp = (
                Text(size(info.temp_db_size))
                if info.temp_db_exists
                else Text("missing", style="red")
            )
            # a finished run is the normal case, not an alarm: only real problems are red
            finished = info.checkpoint is not None and info.checkpoint.done
            status = (
                Text(
                    short(relativize(info.problem, self.sapp.base_dir), 24),
                    style="dim" if finished else "bold red",
                )
                if info.problem
                else Text("can resume", style="green")
            )
            table.add_row(
                Text(info.run_tag or info.path.name),
                Text(age(saved, now)),
                Text(cp.phase if cp else "-"),
                progress,
                temp,
                status,
                key=str(index),
            )
        if not self.checkpoints:
            self.query_one("#checkpoint-detail", Static).update(
                Text("No checkpoints: every run so far finished (or none ran yet).", style="dim")
            )
        else:
            self.show_detail(0)

    @on(DataTable.RowHighlighted, "#checkpoints")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_detail(int(event.row_key.value))

    @on(DataTable.RowSelected, "#checkpoints")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_resume()

    def selected(self) -> CheckpointInfo | None:
        table = self.query_one("#checkpoints", DataTable)
        if not self.checkpoints or table.cursor_row < 0:
            return None
        return self.checkpoints[min(table.cursor_row, len(self.checkpoints) - 1)]

    def show_detail(self, index: int) -> None:
        if not 0 <= index < len(self.checkpoints):
            return
        info = self.checkpoints[index]
        base = self.sapp.base_dir
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        grid.add_row(Text("file"), Text(show_path(info.path, base)))
        if info.problem:
            grid.add_row(
                Text("cannot resume"), Text(relativize(info.problem, base), style="bold red")
            )
        cp = info.checkpoint
        if cp is not None:
            temp = Text(show_path(cp.temp_db_path, base))
            temp.append(
                f" ({size(info.temp_db_size)})" if info.temp_db_exists else " (missing)",
                "dim" if info.temp_db_exists else "red",
            )
            grid.add_row(Text("temp DB"), temp)
            grid.add_row(Text("backup"), Text(show_path(cp.backup_path, base)))
            grid.add_row(Text("started"), Text(cp.started_at or "-"))
            endpoints = Table(box=None, padding=(0, 1), show_edge=False)
            endpoints.add_column("endpoint")
            endpoints.add_column("pages", justify="right")
            endpoints.add_column("rows", justify="right")
            endpoints.add_column("state")
            endpoints.add_column("cursor")
            for name, ep in cp.endpoints.items():
                endpoints.add_row(
                    Text(name),
                    Text(count(ep.pages)),
                    Text(count(ep.rows)),
                    Text("done", style="green") if ep.done else Text("partial", style="yellow"),
                    Text(short(ep.cursor, 38) if ep.cursor else "", style="dim"),
                )
            grid.add_row(Text("endpoints"), endpoints)
        self.query_one("#checkpoint-detail", Static).update(grid)

    def action_resume(self) -> None:
        info = self.selected()
        if info is None:
            self.notify("No checkpoint to resume.", severity="warning")
            return
        if info.problem or info.run_tag is None:
            self.notify(
                "This checkpoint cannot be resumed: "
                + relativize(info.problem or "no run tag", self.sapp.base_dir),
                severity="error",
                markup=False,
            )
            return
        self.sapp.action_start_run(resume_run_tag=info.run_tag)
