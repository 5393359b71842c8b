"""A yes/no confirmation modal: `ModalScreen[bool]`."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a destructive or interrupting action. y / Enter = yes, n / Esc = no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, body: str | Text, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self._title = title
        self._body = body if isinstance(body, Text) else Text(body)
        self._yes = yes
        self._no = no

    # the safe answer has the focus (Enter keeps things as they are); AUTO_FOCUS, not a query in
    # on_mount, which fails when the app closes while the dialog mounts
    AUTO_FOCUS = "#no"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="modal-dialog"):
            yield Label(Text(self._title), id="dialog-title")
            yield Static(self._body, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button(self._yes, id="yes", variant="warning")
                yield Button(self._no, id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
