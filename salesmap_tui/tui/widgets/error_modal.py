"""The error modal every failed worker ends in (never a crash, never the token)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from salesmap_tui.engine import errors
from salesmap_tui.engine.outcome import Failure, kind_of


def describe_error(error: BaseException, token: str | None) -> tuple[str, str]:
    """(title, message) for the error modal; the token never appears in either."""
    title = "Unexpected error"
    if isinstance(error, errors.SalesmapTuiError):
        title = Failure(kind_of(error), str(error)).title
        message = str(error) or type(error).__name__
    else:
        message = f"{type(error).__name__}: {error}"
    if token:
        message = message.replace(token, "***")
    return title, message


class ErrorModal(ModalScreen[None]):
    """Shows what failed and what to do next; Enter / Esc closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", id="error.close")
    ]

    # focused once mounted (a query in on_mount failed when the app closed while it mounted)
    AUTO_FOCUS = "#close"

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.error_title = title
        self.error_message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="modal-dialog error-dialog"):
            yield Label(Text(self.error_title), id="dialog-title")
            yield Static(Text(self.error_message), id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Close", id="close", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
