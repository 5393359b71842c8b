"""Resume: the checkpoints on disk; Enter continues one on the dashboard."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar
from urllib.parse import urlsplit

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from salesmap_tui.engine.checkpoint import Checkpoint, CheckpointInfo, workspace_problem
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import (
    age,
    count,
    from_epoch,
    parse_iso,
    relativize,
    short,
    short_path,
    show_path,
    size,
)
from salesmap_tui.tui.messages import StartRun
from salesmap_tui.tui.screens.base import AppScreen
from salesmap_tui.tui.widgets.confirm import ConfirmScreen


def workspace(cp: Checkpoint | None) -> str:
    """The API host a checkpoint's run crawled (its workspace), from its public settings."""
    if cp is None:
        return "-"
    url = str(cp.settings.get("base_url") or "")
    host = urlsplit(url).netloc or url
    return short(host or "-", 15)


# (label, width): every column fits 120 columns; at 80 the status follows the run tag and age,
# the workspace and temp DB (both in the detail below) go last
WIDE_COLUMNS = (
    ("run tag", 21),
    ("saved", 14),
    ("workspace", 15),
    ("phase", 8),
    ("endpoints · rows", 17),
    ("temp DB", 9),
    ("status", 18),
)
NARROW_COLUMNS = (
    ("run tag", 21),
    ("saved", 14),
    ("status", 18),
    ("phase", 8),
    ("endpoints · rows", 17),
    ("workspace", 15),
    ("temp DB", 9),
)


class ResumeScreen(AppScreen):
    """Every checkpoint, newest first; an unusable one says why and cannot be chosen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "resume", "Resume", id="resume.choose", priority=True),
        Binding("f", "toggle_finished", "Finished runs", id="resume.finished"),
        Binding("f5", "reload", "Reload", show=False, id="resume.reload"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context, id="resume")
        self.checkpoints: list[CheckpointInfo] = []
        self.all_checkpoints: list[CheckpointInfo] = []
        self.show_finished = False
        self.live_mtime: float | None = None
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
        self._columns: tuple[tuple[str, int], ...] = ()
        self._layout_columns()
        self.reload()

    def on_resize(self) -> None:
        if self._layout_columns() and self.loaded:
            self.show_checkpoints(self.all_checkpoints, self.live_mtime)

    def _layout_columns(self) -> bool:
        """The table's columns for this width; True when they changed."""
        columns = NARROW_COLUMNS if self.compact else WIDE_COLUMNS
        if columns == self._columns:
            return False
        self._columns = columns
        table = self.query_one("#checkpoints", DataTable)
        table.clear(columns=True)
        for label, width in columns:
            table.add_column(label, width=width, key=label)
        return True

    def action_reload(self) -> None:
        self.reload()

    def action_toggle_finished(self) -> None:
        self.show_finished = not self.show_finished
        self.show_checkpoints(self.all_checkpoints, self.live_mtime)

    def reload(self) -> None:
        from salesmap_tui.engine import api

        settings = self.context.settings

        def load() -> tuple[list[CheckpointInfo], float | None]:
            try:
                live = settings.db_path.stat().st_mtime
            except OSError:
                live = None
            return api.list_checkpoints(settings), live

        self.run_in_thread(load, group="resume-list", description="list checkpoints")

    def thread_done(self, group: str, result: Any) -> None:
        if group == "resume-list":
            self.show_checkpoints(*result)

    def _here(self, info: CheckpointInfo) -> CheckpointInfo:
        cp = info.checkpoint
        if cp is None or cp.done or info.problem is not None:
            return info
        settings = self.context.settings
        other = workspace_problem(
            cp, settings.base_url, settings.token, check_token=settings.token is not None
        )
        if other is None:
            return info
        return dataclasses.replace(info, problem=f"not resumable here: {other}")

    def flag(self, info: CheckpointInfo) -> str | None:
        """Why resuming this one deserves a second thought (stale data), or None."""
        cp = info.checkpoint
        if cp is None or info.problem:
            return None
        saved = parse_iso(cp.saved_at) or from_epoch(info.mtime, self.context.now())
        if self.live_mtime is not None and saved.timestamp() < self.live_mtime:
            return "older than the live DB"
        max_age_h = float(getattr(self.context.settings, "resume_max_age", 12.0) or 0)
        hours = (self.context.now() - saved).total_seconds() / 3600
        if max_age_h and hours > max_age_h:
            return f"older than --resume-max-age ({max_age_h:g} h)"
        return None

    def show_checkpoints(
        self, checkpoints: list[CheckpointInfo], live_mtime: float | None = None
    ) -> None:
        self.all_checkpoints = list(checkpoints)
        self.live_mtime = live_mtime
        # another workspace's unfinished run is not resumable here (the run would refuse it):
        # listed with the problems, with the reason, not offered as "can resume"
        checkpoints = [self._here(info) for info in checkpoints]

        def finished(info: CheckpointInfo) -> bool:
            return info.checkpoint is not None and info.checkpoint.done

        # resumable first, then the ones with a problem; finished ones only behind the toggle
        resumable = [i for i in checkpoints if i.problem is None]
        broken = [i for i in checkpoints if i.problem is not None and not finished(i)]
        finished_runs = [i for i in checkpoints if finished(i)]
        self.checkpoints = resumable + broken + (finished_runs if self.show_finished else [])
        self.loaded = True
        table = self.query_one("#checkpoints", DataTable)
        table.clear()
        now = self.context.now()
        list_pane = self.query_one("#resume-list")
        hidden = (
            f" · {len(finished_runs)} finished hidden (f)"
            if finished_runs and not self.show_finished
            else ""
        )
        list_pane.border_title = f"Checkpoints{hidden}"
        for index, info in enumerate(self.checkpoints):
            cp = info.checkpoint
            saved = parse_iso(cp.saved_at) if cp and cp.saved_at else from_epoch(info.mtime, now)
            if cp is not None:
                done = sum(1 for e in cp.endpoints.values() if e.done)
                rows = sum(e.rows for e in cp.endpoints.values())
                progress = Text(f"{done}/{len(cp.endpoints)} · {count(rows)} rows")
            else:
                progress = Text("-")
            # a finished run is the normal case, not an alarm: its temp DB went live (dim)
            is_done = finished(info)
            if info.temp_db_exists:
                temp = Text(size(info.temp_db_size))
            elif is_done:
                temp = Text("went live", style="dim")
            else:
                temp = Text("missing", style="red")
            stale = self.flag(info)
            if is_done:
                status = Text("finished", style="dim")
            elif info.problem:
                label = (
                    "other workspace"
                    if info.problem.startswith("not resumable here")
                    else short(relativize(info.problem, self.context.base_dir), 18)
                )
                status = Text(label, style="bold red")
            elif stale:
                status = Text(short(stale.replace("the ", ""), 18), style="bold yellow")
            else:
                status = Text("can resume", style="green")
            dim = "dim" if is_done else ""
            cells = {
                "run tag": Text(info.run_tag or info.path.name, style=dim),
                "saved": Text(age(saved, now), style=dim),
                "workspace": Text(workspace(cp), style="dim"),
                "phase": Text(cp.phase if cp else "-", style=dim),
                "endpoints · rows": progress if not is_done else Text(progress.plain, style="dim"),
                "temp DB": temp,
                "status": status,
            }
            table.add_row(*(cells[label] for label, _ in self._columns), key=str(index))
        if not self.checkpoints:
            more = f" {len(finished_runs)} finished: f shows them." if finished_runs else ""
            self.query_one("#checkpoint-detail", Static).update(
                Text("No unfinished run to resume." + more, style="dim")
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
        base = self.context.base_dir
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        width = max(self.app.size.width - 22, 24)
        grid.add_row(Text("file"), Text(short_path(show_path(info.path, base), width)))
        stale = self.flag(info)
        if stale:
            grid.add_row(Text("stale"), Text(stale, style="bold yellow"))
        cp = info.checkpoint
        done = cp is not None and cp.done  # a finished run: nothing to resume, no alarm
        if done:
            grid.add_row(Text("status"), Text("finished: nothing to resume", style="dim"))
        elif info.problem:
            grid.add_row(
                Text("cannot resume"), Text(relativize(info.problem, base), style="bold red")
            )
        if cp is not None:
            width = max(self.app.size.width - 22, 24)  # cut in the middle: the name stays
            temp = Text(short_path(show_path(cp.temp_db_path, base), width))
            if info.temp_db_exists:
                temp.append(f" ({size(info.temp_db_size)})", "dim")
            elif done:
                temp.append(" (went live)", "dim")
            else:
                temp.append(" (missing)", "red")
            grid.add_row(Text("temp DB"), temp)
            grid.add_row(Text("backup"), Text(short_path(show_path(cp.backup_path, base), width)))
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
            finished = info.checkpoint is not None and info.checkpoint.done
            self.notify(
                f"{info.run_tag} finished: nothing to resume (r starts a fresh run)."
                if finished
                else "This checkpoint cannot be resumed: "
                + relativize(info.problem or "no run tag", self.context.base_dir),
                severity="warning" if finished else "error",
                markup=False,
            )
            return
        tag = info.run_tag
        stale = self.flag(info)
        if stale is None:
            self.post_message(StartRun(resume_run_tag=tag))
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.post_message(StartRun(resume_run_tag=tag))

        self.app.push_screen(
            ConfirmScreen(
                "Resume a stale checkpoint?",
                f"Checkpoint {tag} is {stale}: the pages it kept may be out of date, and the "
                "finished snapshot would mix old and new data. A fresh run (r) fetches all.",
                yes="Resume anyway",
                no="Keep it",
            ),
            answer,
        )
