"""Updating a Static without needless work: the cheap path for widgets fed by a fast run."""

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
