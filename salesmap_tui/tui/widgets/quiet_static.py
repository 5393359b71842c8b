"""Drawing without needless work: the cheap path for widgets fed by a fast run.

A fast run sends dozens of events a second, and most leave what a widget shows as it was.
`LastDrawn` is the one place the dashboard (its bars and panels, each endpoint row) decides a
redraw would show the same; `set_text` skips an update to the text a Static already shows.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def set_text(widget: Static, text: Text, *, layout: bool = False) -> bool:
    """Show `text` unless it is already shown; no layout pass unless `layout` (size may change).

    During a fast run every progress event would otherwise re-layout the whole screen, which
    costs the event loop (and, through the GIL, the engine thread) far more than the text itself.
    """
    current = widget.content
    if isinstance(current, Text) and current == text:
        return False
    widget.update(text, layout=layout)
    return True


class LastDrawn:
    """What each part of a widget was last drawn from (a key: the figures it shows)."""

    def __init__(self) -> None:
        self._keys: dict[str, object] = {}

    def changed(self, part: str, key: object) -> bool:
        """Whether `part` was last drawn from anything but `key`; `key` is kept as the last."""
        if part in self._keys and self._keys[part] == key:
            return False
        self._keys[part] = key
        return True

    def forget(self, part: str) -> None:
        """Draw `part` next time whatever its key (its widget was rebuilt or rebound)."""
        self._keys.pop(part, None)
