"""F1: the keys of every screen (read from their bindings) and where the files live."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from salesmap_tui.config import TOKEN_ENV
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import show_path
from salesmap_tui.tui.screens.dashboard import DashboardScreen
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.logview import LogScreen
from salesmap_tui.tui.screens.restore import RestoreScreen
from salesmap_tui.tui.screens.resume import ResumeScreen
from salesmap_tui.tui.screens.webform import WebformScreen

# What a key does, in more words than its footer label, by binding id. The keys themselves come
# from the bindings (`key_sections`): rebind one and the help follows; a binding without an
# entry here is listed with its footer label.
HELP_TEXT: dict[str, str] = {
    "app.run": "start a snapshot run (needs SALESMAP_TOKEN)",
    "app.cancel": "cancel the run (asks first; a checkpoint is saved)",
    "app.stop": "stop another process's run shown read-only (SIGTERM, asks first)",
    "app.dashboard": "dashboard",
    "app.resume": "resume",
    "app.restore": "backups/restore",
    "app.webform": "web forms",
    "app.history": "history",
    "app.help": "this help",
    "app.quit": "quit (asks first while a run is active)",
    "dashboard.log": "the run's log, and its events (e); / searches, f follows",
    "dashboard.let_in": "a snapshot the shrink guard held back: let it in (asks first)",
    "dashboard.discard": "a snapshot the shrink guard held back: discard it (asks first)",
    "resume.choose": "continue the highlighted checkpoint (a stale one asks first)",
    "resume.finished": "show / hide finished runs",
    "resume.reload": "reload the list",
    "restore.choose": "verify the highlighted backup, then confirm",
    "restore.stop": "stop verifying",
    "restore.reload": "reload the list",
    "webform.pass": "run the web-form-only pass",
    "webform.reload": "reload the status",
    "history.all": "all lines / last line per run tag",
    "history.chart": "changes per table / duration and errors per run",
    "history.log": "the highlighted run's log",
    "history.reload": "reload the history file",
    "log.search": "search the log",
    "log.next": "the next match",
    "log.switch": "the run log / its events file",
    "log.follow": "follow a running run's log",
    "log.back": "back",
}

# the screens whose own keys the help lists, in this order (the App's come first)
SCREENS: tuple[tuple[str, type[Screen[Any]]], ...] = (
    ("Dashboard", DashboardScreen),
    ("Resume", ResumeScreen),
    ("Backups / restore", RestoreScreen),
    ("Web forms", WebformScreen),
    ("History", HistoryScreen),
    ("Log viewer", LogScreen),
)


def _key(key: str) -> str:
    """A key as the help shows it: `/` for slash, `esc`, `enter` (not a glyph)."""
    return "enter" if key == "enter" else format_key(key)


def _own_bindings(owner: type[Any]) -> list[Binding]:
    return [item for item in owner.__dict__.get("BINDINGS", []) if isinstance(item, Binding)]


def key_sections(
    app_class: type[Any], screens: tuple[tuple[str, type[Any]], ...] = SCREENS
) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(keys, what they do)]) from the bindings of the App and of each screen; a key
    the App already binds to the same action is not listed again under a screen."""
    everywhere: set[tuple[str, str]] = set()
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    owners: list[tuple[str, type[Any]]] = [("Everywhere", app_class), *screens]
    for title, owner in owners:
        rows: list[tuple[str, str, bool]] = []  # keys, what, a screen switch
        for binding in _own_bindings(owner):
            action = binding.action.removeprefix("app.")
            keys = binding.key_display or " / ".join(_key(k) for k in binding.key.split(","))
            if (keys, action) in everywhere:
                continue
            if title == "Everywhere":
                everywhere.add((keys, action))
            what = HELP_TEXT.get(binding.id or "", binding.description)
            if action.startswith("switch_mode(") and rows and rows[-1][2]:
                # the screen switches read as one row: "d s b w h  dashboard · resume · ..."
                last_keys, last_what, _ = rows.pop()
                rows.append((f"{last_keys} {keys}", f"{last_what} · {what}", True))
                continue
            rows.append((keys, what, action.startswith("switch_mode(")))
        if title == "Everywhere" and getattr(app_class, "ENABLE_COMMAND_PALETTE", False):
            palette = getattr(app_class, "COMMAND_PALETTE_BINDING", "ctrl+p")
            rows.append((palette, "command palette: every action, themes", False))
        if rows:
            sections.append((title, [(keys, what) for keys, what, _ in rows]))
    return sections


class HelpScreen(ModalScreen[None]):
    """Keys and file locations; Esc or F1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss_help", "Close", id="help.close")
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__()
        self.context = context

    def compose(self) -> ComposeResult:
        settings = self.context.settings
        base = self.context.base_dir
        sections = key_sections(type(self.app))
        width = max(len(key) for _, rows in sections for key, _ in rows)
        parts: list[Text | Table] = []
        for section, rows in sections:
            # the heading on its own line: the key column stays as wide as its keys
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold cyan", no_wrap=True, min_width=width)
            grid.add_column()
            for key, what in rows:
                grid.add_row(Text(key), Text(what))
            parts += [Text(section, style="bold underline"), grid]
        keys = Group(*parts)
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
        if self.context.demo:
            # the demo's sandbox token is its own, never the user's environment
            token = Text("the demo sandbox's own token (SALESMAP_TOKEN is not used)", "green")
        elif settings.token:
            token = Text(f"{TOKEN_ENV} is set", style="green")
        else:
            token = Text(f"{TOKEN_ENV} is not set", style="bold red")
        files.add_row(Text("token"), token)
        if self.context.demo:
            files.add_row(Text("demo"), Text("a local sandbox API with made-up Korean data"))
        with Vertical(id="help-dialog", classes="modal-dialog"):
            yield Label(Text("salesmap-tui — help"), id="dialog-title")
            with VerticalScroll():
                yield Static(keys)
                yield Static(Text("\nFiles", style="bold underline"))
                yield Static(files)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
