"""What the list screens share: a typed handle on the app and a header line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.binding import Binding, BindingType
from textual.screen import Screen

if TYPE_CHECKING:
    from salesmap_tui.tui.app import SalesmapApp


class KeyedScreen(Screen[Any]):
    """A screen whose footer starts with Quit and Help, so no terminal is too narrow for them
    (a screen's bindings lead its footer; these come before the screen's own)."""

    # below 100 columns a screen gets the class -narrow (app.tcss lays it out for 80x24)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit", id="screen.quit"),
        Binding("f1", "app.help", "Help", id="screen.help"),
    ]


class AppScreen(KeyedScreen):
    """A screen of SalesmapApp; `reload()` re-reads its data in a thread worker."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "app.switch_mode('dashboard')", "Dashboard", id="screen.dashboard"),
    ]

    @property
    def sapp(self) -> SalesmapApp:
        return cast("SalesmapApp", self.app)

    def reload(self) -> None:  # pragma: no cover - overridden
        """Read the screen's data again (never on the event loop)."""

    def on_screen_resume(self) -> None:
        # Coming back to a screen shows what is on disk now (a run may have changed it).
        self.reload()
