"""F1: the keys of every screen and where the files live."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from salesmap_tui.config import TOKEN_ENV
from salesmap_tui.tui.format import show_path

if TYPE_CHECKING:
    from salesmap_tui.tui.app import SalesmapApp

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("r", "start a snapshot run (needs SALESMAP_TOKEN)"),
            ("c", "cancel the run (asks first; a checkpoint is saved)"),
            ("x", "stop another process's run shown read-only (SIGTERM, asks first)"),
            ("l", "the run's log, and its events (e); / searches, f follows"),
            ("i  D", "a snapshot the shrink guard held back: let it in / discard it (both ask)"),
            ("d s b w h", "dashboard · resume · backups/restore · web forms · history"),
            ("ctrl+p", "command palette: every action, themes"),
            ("f1", "this help"),
            ("q / ctrl+q", "quit (asks first while a run is active)"),
        ],
    ),
    (
        "Resume",
        [
            ("enter", "continue the highlighted checkpoint (a stale one asks first)"),
            ("f", "show / hide finished runs"),
            ("f5", "reload the list"),
        ],
    ),
    (
        "Backups / restore",
        [("enter", "verify the highlighted backup, then confirm"), ("f5", "reload the list")],
    ),
    ("Web forms", [("p", "run the web-form-only pass"), ("f5", "reload the status")]),
    (
        "History",
        [
            ("a", "all lines / last line per run tag"),
            ("t", "changes per table / duration and errors per run"),
            ("l", "the highlighted run's log"),
            ("f5", "reload the history file"),
        ],
    ),
]


class HelpScreen(ModalScreen[None]):
    """Keys and file locations; Esc or F1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss_help", "Close", id="help.close")
    ]

    def compose(self) -> ComposeResult:
        app = cast("SalesmapApp", self.app)
        settings = app.settings
        base = app.base_dir
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        for section, rows in KEYS:
            keys.add_row(Text(section, style="bold underline"), Text(""))
            for key, what in rows:
                keys.add_row(Text(key), Text(what))
        files = Table.grid(padding=(0, 2))
        files.add_column(style="dim", no_wrap=True)
        files.add_column()
        for label, path in (
            ("live DB", settings.db_path),
            ("logs", settings.log_dir),
            ("history", settings.history_path),
            ("checkpoints", settings.checkpoint_dir),
            ("backups", settings.backup_dir),
        ):
            files.add_row(Text(label), Text(show_path(path, base)))
        files.add_row(Text("API"), Text(settings.base_url))
        if app.demo:
            # the demo's sandbox token is its own, never the user's environment
            token = Text("the demo sandbox's own token (SALESMAP_TOKEN is not used)", "green")
        elif settings.token:
            token = Text(f"{TOKEN_ENV} is set", style="green")
        else:
            token = Text(f"{TOKEN_ENV} is not set", style="bold red")
        files.add_row(Text("token"), token)
        if app.demo:
            files.add_row(Text("demo"), Text("a local sandbox API with made-up Korean data"))
        with Vertical(id="help-dialog", classes="modal-dialog"):
            yield Label(Text("salesmap-tui — help"), id="dialog-title")
            with VerticalScroll():
                yield Static(keys)
                yield Static(Text("\nFiles", style="bold underline"))
                yield Static(files)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
