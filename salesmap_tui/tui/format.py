"""Formatting helpers shared by the screens: ages, durations, sizes, paths.

Everything that depends on "now" takes it as an argument, so a test can freeze the clock.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import humanize
from rich.cells import cell_len, set_cell_size

from salesmap_tui.engine.errors import printable

Clock = Callable[[], datetime]

# A run's status (RunStatus) in one colour everywhere. The dashboard shows one run, all bold; a
# list (history) makes only the alarming ones bold, so they stand out among many.
STATUS_COLORS = {
    "done": "green",
    "failed": "red",
    "interrupted": "yellow",
    "fallback": "yellow",
    "running": "cyan",
}
ALARMING_STATUSES = frozenset({"failed", "fallback"})


def status_style(status: str, *, in_list: bool = False) -> str:
    """The style of a run status: bold on the dashboard; in a list, bold only when alarming."""
    color = STATUS_COLORS.get(status)
    if in_list:
        if color is None:
            return ""
        return f"bold {color}" if status in ALARMING_STATUSES else color
    return f"bold {color}" if color else "bold"


def system_clock() -> datetime:
    """The real clock, in the local time zone."""
    return datetime.now().astimezone()


def parse_iso(text: str | None) -> datetime | None:
    """An ISO-8601 timestamp as the engine writes it (`...Z`), or None if empty/unparseable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def from_epoch(seconds: float, now: datetime) -> datetime:
    return datetime.fromtimestamp(seconds, tz=now.tzinfo or UTC)


def age(moment: datetime | None, now: datetime) -> str:
    """ "3 minutes ago"; "-" when unknown."""
    if moment is None:
        return "-"
    return humanize.naturaltime(now - moment)


def clock_time(moment: datetime | None, now: datetime) -> str:
    """A timestamp in the clock's zone: time only if today, else date and time."""
    if moment is None:
        return "-"
    local = moment.astimezone(now.tzinfo)
    if local.date() == now.date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """12.3 s, 4 m 05 s, 1 h 02 m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    return humanize.naturalsize(num_bytes, binary=True)


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def show_path(path: str | Path | None, base: Path) -> str:
    """A path relative to the working directory when it lies under it (short and stable)."""
    if path is None or path == "":
        return "-"
    return _show_path(str(path), str(base), os.getcwd())  # (relative paths: the cwd counts)


@functools.lru_cache(maxsize=512)
def _show_path(path: str, base: str, _cwd: str) -> str:
    # cached: the dashboard names the same few paths on every redraw, and resolve() is an
    # lstat per folder of the path
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(p)


def wait(seconds: float | None) -> str:
    """A retry wait: "8.3 s", "0.40 s" (short waits keep two decimals), "<0.01 s"."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "0 s"
    if seconds < 0.01:
        return "<0.01 s"
    if seconds < 1:
        return f"{seconds:.2f} s"
    return duration(seconds)


def short(text: str | None, width: int) -> str:
    """Cut to `width` terminal cells with an ellipsis (a Korean syllable takes two cells)."""
    if text is None:
        return "-"
    text = printable(text)  # CRM text (form names, cursors): escapes shown, never acted on
    if cell_len(text) <= width:
        return text
    # set_cell_size pads with a space when it would split a wide character; drop that pad
    return set_cell_size(text, max(width - 1, 0)).rstrip(" ") + "…"


def relativize(text: str, base: Path) -> str:
    """Shorten absolute paths under the working directory inside a message."""
    for prefix in {str(base.resolve()), str(base)}:
        text = text.replace(prefix + "/", "")
    return text


def middle(text: str, width: int) -> str:
    """Cut in the middle so both ends stay (a path keeps its file name): `logs/sna…1a2b.log`."""
    text = printable(text)
    if cell_len(text) <= width or width < 5:
        return text
    tail = max((width - 1) * 3 // 5, 1)  # the end (the file name) gets the larger part
    head = width - 1 - tail
    start = set_cell_size(text, head).rstrip(" ")
    # the tail: the last `tail` cells, never half a wide character
    end = ""
    for ch in reversed(text):
        if cell_len(ch + end) > tail:
            break
        end = ch + end
    return start + "…" + end


def short_path(path: str, width: int) -> str:
    """A path in `width` cells keeping its file name whole: the folders are cut in the middle
    first (`b…s/snapshot_….log`); a name longer than the width stays whole (it wraps, but no
    one has to guess which file it is)."""
    text = printable(path)
    if cell_len(text) <= width:
        return text
    head, sep, name = text.rpartition("/")
    if not sep:
        return text
    room = width - cell_len(name) - 1  # cells left for the folders
    if room >= 5:
        return middle(head, room) + "/" + name
    return "…/" + name
