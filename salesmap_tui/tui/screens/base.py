"""What the list screens share: a typed handle on the app and a header line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from salesmap_tui.tui.app import SalesmapApp


class AppScreen(Screen[Any]):
    """A screen of SalesmapApp; `reload()` re-reads its data in a thread worker."""

    @property
    def sapp(self) -> SalesmapApp:
        return cast("SalesmapApp", self.app)

    def reload(self) -> None:  # pragma: no cover - overridden
        """Read the screen's data again (never on the event loop)."""

    def on_screen_resume(self) -> None:
        # Coming back to a screen shows what is on disk now (a run may have changed it).
        self.reload()
