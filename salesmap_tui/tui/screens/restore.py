"""Backups and restore: pick a backup, verify it (gunzip + integrity check), confirm, swap."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static

from salesmap_tui.engine import errors
from salesmap_tui.engine.api import RestoreResult, VerifiedBackup
from salesmap_tui.engine.backup import BackupInfo
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import (
    age,
    clock_time,
    count,
    from_epoch,
    parse_iso,
    relativize,
    short,
    show_path,
    size,
)
from salesmap_tui.tui.messages import VerifyProgressMessage
from salesmap_tui.tui.overview import BackupContents, backup_contents
from salesmap_tui.tui.screens.base import AppScreen
from salesmap_tui.tui.widgets.confirm import ConfirmScreen

STAGES = {"gunzip": "decompressing", "integrity": "integrity check"}

# (key, label, width): what the backup holds leads; its file name and size are in the line under
# the list (the name is the time it was made, which "age" says); rows take the width left (0)
WIDE_COLUMNS = (
    ("as_of", "data as of", 16),
    ("run", "data of run", 21),
    ("rows", "rows", 0),
    ("age", "age", 14),
    ("size", "size", 10),
)
NARROW_COLUMNS = (
    ("as_of", "data as of", 11),
    ("run", "data of run", 21),
    ("rows", "rows", 0),
    ("age", "age", 14),
)
ROWS_MIN = 20


class RestoreScreen(AppScreen):
    """Nothing reaches the live DB before the backup is verified and the user said yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "restore", "Verify & restore", id="restore.choose", priority=True),
        Binding("escape", "cancel_verify", "Stop verifying", show=False, id="restore.stop"),
        Binding("f5", "reload", "Reload", show=False, id="restore.reload"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context, id="restore")
        self.backups: list[BackupInfo] = []
        self.loaded = False
        self.busy = False
        self.outcome: str | None = None  # last verify/restore outcome, for tests and the status
        self._cancel = threading.Event()
        self._peek_cancel = threading.Event()
        self.contents: dict[tuple[Path, float], BackupContents] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="restore-intro", classes="screen-intro")
        with Vertical(id="backup-list", classes="panel"):
            yield DataTable(id="backups", cursor_type="row", zebra_stripes=True)
            yield Static(id="backup-detail")
        with Vertical(id="verify-panel", classes="panel"):
            with Horizontal(id="verify-line"):
                yield Label(Text("idle"), id="verify-stage")
                yield ProgressBar(total=1.0, show_eta=False, id="verify-bar")
            yield Static(id="restore-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#backup-list").border_title = "Backups (newest first)"
        self.query_one("#verify-panel").border_title = "Verify and restore"
        settings = self.context.settings
        base = self.context.base_dir
        intro = Text("Enter verifies the highlighted backup, then asks before replacing ", "dim")
        intro.append(show_path(settings.db_path, base), "bold")
        intro.append("; the current live DB is backed up first into ", "dim")
        intro.append(show_path(settings.backup_dir, base), "bold")
        intro.append(".", "dim")
        self.query_one("#restore-intro", Static).update(intro)
        self._columns: tuple[tuple[str, str, int], ...] = ()
        self._layout_columns()
        self.set_status(Text("Choose a backup and press Enter.", style="dim"))
        self.reload()

    def on_resize(self) -> None:
        if self._layout_columns() and self.loaded:
            self.show_backups(self.backups)

    def _layout_columns(self) -> bool:
        """The table's columns for this width; True when they changed."""
        spec = NARROW_COLUMNS if self.compact else WIDE_COLUMNS
        # the panel's border and padding and the scrollbar (6), each cell's padding (2)
        rest = self.app.size.width - 6 - sum(width + 2 for _, _, width in spec)
        columns = tuple((k, label, w or max(rest, ROWS_MIN)) for k, label, w in spec)
        if columns == self._columns:
            return False
        self._columns = columns
        table = self.query_one("#backups", DataTable)
        table.clear(columns=True)
        for key, label, width in columns:
            table.add_column(label, width=width, key=key)
        return True

    def set_status(self, text: Text) -> None:
        self.query_one("#restore-status", Static).update(text)

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from salesmap_tui.engine import api

        self._peek_cancel.set()  # a reading still going is for the old list
        self._peek_cancel = threading.Event()
        settings = self.context.settings
        self.run_in_thread(
            lambda: api.list_backups(settings), group="restore-list", description="list backups"
        )

    def thread_done(self, group: str, result: Any) -> None:
        if group == "restore-list":
            self.show_backups(result)
        elif group == "restore-verify":
            self._verified(result)
        elif group == "restore-discard":
            self._discarded()
        elif group == "restore-swap":
            self._restored(result)

    def thread_failed(self, group: str, error: BaseException) -> None:
        if group == "restore-verify":
            self._verify_failed(error)
        elif group == "restore-discard":
            self.busy = False
        elif group == "restore-swap":
            self._restore_failed(error)

    def show_backups(self, backups: list[BackupInfo]) -> None:
        # the cursor stays on the backup it was on when the list is read again
        before = self.selected()
        cursor = next((n for n, i in enumerate(backups) if before and i.path == before.path), 0)
        self.backups = list(backups)
        self.loaded = True
        table = self.query_one("#backups", DataTable)
        table.clear()
        now = self.context.now()
        for index, info in enumerate(self.backups):
            cells = {
                "backup": Text(info.path.name),
                "size": Text(size(info.size_bytes), justify="right"),
                "age": Text(age(from_epoch(info.mtime, now), now)),
                **self._content_cells(info),
            }
            table.add_row(*(cells[key] for key, _, _ in self._columns), key=str(index))
        if cursor:
            table.move_cursor(row=cursor)
        if not self.backups:
            self.set_status(Text("No backups yet: a full run makes one first.", style="dim"))
            self.query_one("#backup-detail", Static).update("")
        else:
            if self.outcome is None and not self.busy:
                self.set_status(Text("Choose a backup and press Enter.", style="dim"))
            self._describe(self.selected())
            self._peek()

    def _content_cells(self, info: BackupInfo) -> dict[str, Text]:
        """What the backup holds: its snapshot's run tag, date and rows (read inside it)."""
        found = self.contents.get((info.path, info.mtime))
        width = {key: w for key, _, w in self._columns}["rows"]
        # (no empty cell: the table drew a row with one shifted by a column under a dialog)
        if found is None:
            return {
                "run": Text("reading…", style="dim"),
                "as_of": Text("…", style="dim"),
                "rows": Text("…", style="dim"),
            }
        if found.error:
            return {
                "run": Text("unreadable", style="yellow"),
                "as_of": Text("-", style="dim"),
                "rows": Text(short(found.error, width), "dim"),
            }
        moment = parse_iso(found.finished_at)
        rows = " · ".join(f"{name} {count(n)}" for name, n in found.tables.items())
        return {
            "run": Text(found.run_tag or "-"),
            "as_of": Text(self._when(moment) if moment else "-"),
            "rows": Text(short(rows, width) if rows else "-", style="dim"),
        }

    def _when(self, moment: datetime) -> str:
        when = clock_time(moment, self.context.now())
        # 80 columns: "03-12 02:00" (the detail line below gives the year)
        return when[5:] if self.compact and len(when) == 16 else when

    def _peek(self) -> None:
        """Read what every listed backup holds, one after another, in a worker."""
        todo = [i for i in self.backups if (i.path, i.mtime) not in self.contents]
        if not todo:
            return
        cancel = self._peek_cancel

        def read_all() -> None:
            for info in todo:
                if cancel.is_set():
                    return
                found = backup_contents(info.path, cancel)
                self.app.call_from_thread(self._peeked, info, found)

        self.run_in_thread(read_all, group="restore-peek", description="read backups")

    def _peeked(self, info: BackupInfo, found: BackupContents) -> None:
        self.contents[(info.path, info.mtime)] = found
        if info not in self.backups:
            return
        index = self.backups.index(info)
        table = self.query_one("#backups", DataTable)
        for key, cell in self._content_cells(info).items():
            table.update_cell(str(index), key, cell)
        if self.selected() is info:
            self._describe(info)

    def selected(self) -> BackupInfo | None:
        table = self.query_one("#backups", DataTable)
        if not self.backups or table.cursor_row < 0:
            return None
        return self.backups[min(table.cursor_row, len(self.backups) - 1)]

    @on(DataTable.RowHighlighted, "#backups")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            index = int(event.row_key.value)
            if 0 <= index < len(self.backups):
                self._describe(self.backups[index])

    def _describe(self, info: BackupInfo | None) -> None:
        """What the highlighted backup holds, in full (the columns cut it at 80 columns).

        It has its own line under the list: the verify/restore outcome below stays on screen
        while the cursor moves or the list is read again (it is reread on every return).
        """
        detail = self.query_one("#backup-detail", Static)
        if info is None:
            detail.update("")
            return
        found = self.contents.get((info.path, info.mtime))
        text = Text(info.path.name, "bold")
        text.append(f" · {size(info.size_bytes)}", "dim")
        if found is None:
            text.append(" · reading what it holds…", "dim")
        elif found.error:
            text.append(f"\ncannot read it: {found.error}", "yellow")
        else:
            moment = parse_iso(found.finished_at)
            text.append("\nholds the data of run ")
            text.append(found.run_tag or "?", "bold")
            text.append(f" (as of {clock_time(moment, self.context.now()) if moment else '?'}): ")
            rows = " · ".join(f"{name} {count(n)}" for name, n in found.tables.items())
            text.append(rows or "no tables", "dim")
        detail.update(text)

    @on(DataTable.RowSelected, "#backups")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_restore()

    # --- verify ---------------------------------------------------------------------------------
    def action_restore(self) -> None:
        info = self.selected()
        if info is None:
            self.notify("No backup to restore.", severity="warning")
            return
        if self.busy:
            self.notify("A backup is being verified or restored.", severity="warning")
            return
        if self.run_active:
            self.notify("A run is active: restore after it ends.", severity="warning")
            return
        from salesmap_tui.engine import api

        self.busy = True
        self._cancel = threading.Event()
        cancel = self._cancel
        settings = self.context.settings
        path = info.path
        status = Text("verifying ")
        status.append(path.name, "bold")
        status.append(" …")
        self.set_status(status)
        self._set_progress("gunzip", 0.0)

        def progress(stage: str, fraction: float) -> None:
            self.post_message(VerifyProgressMessage(stage, fraction))

        self.run_in_thread(
            lambda: api.verify_backup(settings, path, progress, cancel),
            group="restore-verify",
            description="verify backup",
        )

    def action_cancel_verify(self) -> None:
        if self.busy:
            self._cancel.set()

    def on_verify_progress_message(self, message: VerifyProgressMessage) -> None:
        self._set_progress(message.stage, message.fraction)

    def _set_progress(self, stage: str, fraction: float) -> None:
        self.query_one("#verify-stage", Label).update(Text(STAGES.get(stage, stage)))
        self.query_one("#verify-bar", ProgressBar).update(total=1.0, progress=fraction)

    def _verify_failed(self, error: BaseException) -> None:
        self.busy = False
        self._set_progress("refused", 0.0)
        if isinstance(error, errors.BadBackup):
            self.outcome = "refused"
            text = Text("Refused: ", style="bold red")
            text.append(relativize(str(error), self.context.base_dir))
            text.append("\nThe live DB was not touched.", "bold")
        else:
            self.outcome = "error"
            text = Text("Verification failed: ", style="bold red")
            text.append(relativize(str(error), self.context.base_dir))
            text.append("\nThe live DB was not touched.", "bold")
        self.set_status(text)

    def _verified(self, verified: VerifiedBackup) -> None:
        self._set_progress("integrity", 1.0)
        settings = self.context.settings
        base = self.context.base_dir
        body = Text("Verified ")
        body.append(verified.backup_path.name, "bold")
        body.append(
            f": {size(verified.size_bytes)}, "
            f"{count(sum(verified.tables.values()))} rows in {len(verified.tables)} tables.\n\n"
        )
        body.append("This replaces the live DB ")
        body.append(show_path(settings.db_path, base), "bold")
        body.append(".\nThe current live DB is backed up first into ")
        body.append(show_path(settings.backup_dir, base), "bold")
        body.append(".")

        def answer(yes: bool | None) -> None:
            if yes:
                self._restore(verified)
            else:
                self._discard(verified)

        self.app.push_screen(
            ConfirmScreen("Restore this backup?", body, yes="Restore", no="Cancel"), answer
        )

    def _discard(self, verified: VerifiedBackup) -> None:
        from salesmap_tui.engine import api

        self.run_in_thread(
            lambda: api.discard_verified(verified),
            group="restore-discard",
            description="discard verified copy",
        )

    def _discarded(self) -> None:
        self.busy = False
        self.outcome = "discarded"
        self.set_status(Text("Restore cancelled; the verified copy was removed.", "dim"))

    def _restore(self, verified: VerifiedBackup) -> None:
        from salesmap_tui.engine import api

        settings = self.context.settings
        self.set_status(Text("restoring …", style="bold"))
        self.run_in_thread(
            lambda: api.restore_backup(settings, verified),
            group="restore-swap",
            description="restore backup",
        )

    def _restore_failed(self, error: BaseException) -> None:
        self.busy = False
        self.outcome = "error"
        text = Text("Restore failed: ", style="bold red")
        text.append(str(error))
        self.set_status(text)

    def _restored(self, result: RestoreResult) -> None:
        self.busy = False
        self.outcome = "restored"
        base = self.context.base_dir
        text = Text("Restored ", style="bold green")
        text.append(Path(result.restored_from).name, "bold")
        text.append(" → ")
        text.append(show_path(result.db_path, base))
        if result.previous_backup_path is not None:
            text.append("\nprevious live DB saved as ")
            text.append(show_path(result.previous_backup_path, base))
        self.set_status(text)
        self.notify(
            f"Restored {Path(result.restored_from).name}", title="Restore done", markup=False
        )
        self.reload()
