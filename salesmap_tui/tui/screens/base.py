"""What the screens share: the context they are handed, their own thread workers, the footer's
first keys and a `reload()` hook.

Attributes down, messages up: a screen gets its `ScreenContext` (settings, base folder, clock)
in its constructor, and the App sets `run_active` on it; what the screen wants done beyond
itself it posts as a message (tui/messages.py). It never imports the App.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import relativize
from salesmap_tui.tui.widgets.error_modal import ErrorModal, describe_error

T = TypeVar("T")

NARROW = 100  # below this many columns a screen uses its compact layout (80x24 must work)


class KeyedScreen(Screen[Any]):
    """A screen whose footer starts with Quit and Help, so no terminal is too narrow for them
    (a screen's bindings lead its footer; these come before the screen's own).

    Its blocking work (SQLite, gzip, file listing) runs in its own thread workers
    (`run_in_thread`); Textual posts their `Worker.StateChanged` to this screen, which hands a
    result to `thread_done` and an error to `thread_failed` and then to the error modal.
    """

    # below NARROW columns a screen gets the class -narrow (app.tcss lays it out for 80x24)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit", id="screen.quit"),
        Binding("f1", "app.help", "Help", id="screen.help"),
    ]

    def __init__(self, context: ScreenContext, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.context = context
        self.run_active = False  # set by the App: is a run of ours (or a swap) going?

    @property
    def compact(self) -> bool:
        """The terminal is narrower than NARROW: the screen's compact layout."""
        return self.app.size.width < NARROW

    def run_in_thread(self, fn: Callable[[], T], *, group: str, description: str) -> Worker[T]:
        """`fn` off the event loop; one at a time per group (a newer one cancels the older)."""
        return self.run_worker(
            fn,
            thread=True,
            exclusive=True,
            group=group,
            description=description,
            exit_on_error=False,
        )

    def thread_done(self, group: str, result: Any) -> None:
        """A thread worker of this screen returned `result`."""

    def thread_failed(self, group: str, error: BaseException) -> None:
        """A thread worker of this screen raised `error` (the error modal follows)."""

    @on(Worker.StateChanged)
    def _thread_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        group = worker.group
        if event.state == WorkerState.SUCCESS:
            self.thread_done(group, worker.result)
        elif event.state == WorkerState.ERROR:
            error = worker.error or Exception("unknown error")
            self.thread_failed(group, error)
            self.show_error(*describe_error(error, self.context.settings.token))

    def show_error(self, title: str, message: str) -> None:
        self.app.push_screen(ErrorModal(title, relativize(message, self.context.base_dir)))


class AppScreen(KeyedScreen):
    """A screen of one of the App's modes; `reload()` re-reads its data in a thread worker."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "app.switch_mode('dashboard')", "Dashboard", id="screen.dashboard"),
    ]

    def reload(self) -> None:  # pragma: no cover - overridden
        """Read the screen's data again (never on the event loop)."""

    def on_screen_resume(self) -> None:
        # Coming back to a screen shows what is on disk now (a run may have changed it).
        self.reload()
