"""Backups and restore: pick a backup, verify it (gunzip + integrity check), confirm, swap."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static
from textual.widgets.data_table import ColumnKey

from salesmap_tui.engine import errors
from salesmap_tui.engine.api import RestoreResult, VerifiedBackup
from salesmap_tui.engine.backup import BackupInfo
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


class RestoreScreen(AppScreen):
    """Nothing reaches the live DB before the backup is verified and the user said yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "restore", "Verify & restore", id="restore.choose", priority=True),
        Binding("escape", "cancel_verify", "Stop verifying", show=False, id="restore.stop"),
        Binding("f5", "reload", "Reload", show=False, id="restore.reload"),
    ]

    def __init__(self) -> None:
        super().__init__(id="restore")
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
        with Vertical(id="verify-panel", classes="panel"):
            with Horizontal(id="verify-line"):
                yield Label(Text("idle"), id="verify-stage")
                yield ProgressBar(total=1.0, show_eta=False, id="verify-bar")
            yield Static(id="restore-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#backup-list").border_title = "Backups (newest first)"
        self.query_one("#verify-panel").border_title = "Verify and restore"
        settings = self.sapp.settings
        base = self.sapp.base_dir
        intro = Text("Enter verifies the highlighted backup, then asks before replacing ", "dim")
        intro.append(show_path(settings.db_path, base), "bold")
        intro.append("; the current live DB is backed up first into ", "dim")
        intro.append(show_path(settings.backup_dir, base), "bold")
        intro.append(".", "dim")
        self.query_one("#restore-intro", Static).update(intro)
        table = self.query_one("#backups", DataTable)
        table.add_column("backup", width=46)
        table.add_column("size", width=10)
        table.add_column("age", width=16)
        self._content_keys: list[ColumnKey] = [
            table.add_column("data of run", width=22),
            table.add_column("data as of", width=16),
            table.add_column("rows", width=30),
        ]
        self.set_status(Text("Choose a backup and press Enter.", style="dim"))
        self.reload()

    def set_status(self, text: Text) -> None:
        self.query_one("#restore-status", Static).update(text)

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from salesmap_tui.engine import api

        self._peek_cancel.set()  # a reading still going is for the old list
        self._peek_cancel = threading.Event()
        settings = self.sapp.settings
        self.sapp.run_in_thread(
            lambda: api.list_backups(settings),
            group="restore-list",
            description="list backups",
            on_success=self.show_backups,
        )

    def show_backups(self, backups: list[BackupInfo]) -> None:
        self.backups = list(backups)
        self.loaded = True
        table = self.query_one("#backups", DataTable)
        table.clear()
        now = self.sapp.now()
        for index, info in enumerate(self.backups):
            table.add_row(
                Text(info.path.name),
                Text(size(info.size_bytes), justify="right"),
                Text(age(from_epoch(info.mtime, now), now)),
                *self._content_cells(info),
                key=str(index),
            )
        if not self.backups:
            self.set_status(Text("No backups yet: a full run makes one first.", style="dim"))
        else:
            self._peek()

    def _content_cells(self, info: BackupInfo) -> tuple[Text, Text, Text]:
        """What the backup holds: its snapshot's run tag, date and rows (read inside it)."""
        found = self.contents.get((info.path, info.mtime))
        if found is None:
            return Text("reading…", style="dim"), Text(""), Text("")
        if found.error:
            return Text("unreadable", style="yellow"), Text(""), Text(short(found.error, 30), "dim")
        moment = parse_iso(found.finished_at)
        rows = " · ".join(f"{name} {count(n)}" for name, n in found.tables.items())
        return (
            Text(found.run_tag or "-"),
            Text(clock_time(moment, self.sapp.now()) if moment else "-"),
            Text(short(rows, 30) if rows else "-", style="dim"),
        )

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

        self.sapp.run_in_thread(read_all, group="restore-peek", description="read backups")

    def _peeked(self, info: BackupInfo, found: BackupContents) -> None:
        self.contents[(info.path, info.mtime)] = found
        if info not in self.backups:
            return
        index = self.backups.index(info)
        table = self.query_one("#backups", DataTable)
        for key, cell in zip(self._content_keys, self._content_cells(info), strict=True):
            table.update_cell(str(index), key, cell)

    def selected(self) -> BackupInfo | None:
        table = self.query_one("#backups", DataTable)
        if not self.backups or table.cursor_row < 0:
            return None
        return self.backups[min(table.cursor_row, len(self.backups) - 1)]

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
        if self.sapp.run_active:
            self.notify("A run is active: restore after it ends.", severity="warning")
            return
        from salesmap_tui.engine import api

        self.busy = True
        self._cancel = threading.Event()
        cancel = self._cancel
        settings = self.sapp.settings
        path = info.path
        status = Text("verifying ")
        status.append(path.name, "bold")
        status.append(" …")
        self.set_status(status)
        self._set_progress("gunzip", 0.0)

        def progress(stage: str, fraction: float) -> None:
            self.post_message(VerifyProgressMessage(stage, fraction))

        self.sapp.run_in_thread(
            lambda: api.verify_backup(settings, path, progress, cancel),
            group="restore-verify",
            description="verify backup",
            on_success=self._verified,
            on_error=self._verify_failed,
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
            text.append(relativize(str(error), self.sapp.base_dir))
            text.append("\nThe live DB was not touched.", "bold")
        else:
            self.outcome = "error"
            text = Text("Verification failed: ", style="bold red")
            text.append(relativize(str(error), self.sapp.base_dir))
            text.append("\nThe live DB was not touched.", "bold")
        self.set_status(text)

    def _verified(self, verified: VerifiedBackup) -> None:
        self._set_progress("integrity", 1.0)
        settings = self.sapp.settings
        base = self.sapp.base_dir
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

        def done(_: None) -> None:
            self.busy = False
            self.outcome = "discarded"
            self.set_status(Text("Restore cancelled; the verified copy was removed.", "dim"))

        self.sapp.run_in_thread(
            lambda: api.discard_verified(verified),
            group="restore-discard",
            description="discard verified copy",
            on_success=done,
            on_error=lambda _e: setattr(self, "busy", False),
        )

    def _restore(self, verified: VerifiedBackup) -> None:
        from salesmap_tui.engine import api

        settings = self.sapp.settings
        self.set_status(Text("restoring …", style="bold"))
        self.sapp.run_in_thread(
            lambda: api.restore_backup(settings, verified),
            group="restore-swap",
            description="restore backup",
            on_success=self._restored,
            on_error=self._restore_failed,
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
        base = self.sapp.base_dir
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
