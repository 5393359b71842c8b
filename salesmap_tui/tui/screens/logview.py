"""A run's log (or its events file) in a scrollable, searchable view that follows a running run.

The file is read in a thread worker (a long run's log can be large); while the run goes on,
new lines are read every half second from where the last read stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Log, Static

from salesmap_tui.engine.events import events_path_for
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.format import short_path, show_path
from salesmap_tui.tui.screens.base import KeyedScreen

FOLLOW_S = 0.5
MAX_LINES = 200_000  # the view keeps the newest this many lines of a huge log


def read_from(path: Path, offset: int) -> tuple[list[str], int, bool]:
    """Complete lines after `offset`, the new offset, and whether the file exists."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset, False
    except OSError as exc:
        return [f"(cannot read {path}: {exc.strerror or exc})"], offset, True
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset, True
    chunk = data[: end + 1]
    lines = chunk.decode("utf-8", "replace").splitlines()
    return lines, offset + len(chunk), True


class LogScreen(KeyedScreen):
    """The run log of one run; `e` switches to its events file; `/` searches, `n` next."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="log.back"),
        Binding("slash", "search", "Search", id="log.search"),
        Binding("n", "next_match", "Next", id="log.next"),
        Binding("e", "switch_file", "Log/events", id="log.switch"),
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
    ]

    def __init__(
        self, context: ScreenContext, log_path: str | Path, *, follow: bool = True
    ) -> None:
        super().__init__(context, id="log-view")
        self.log_path = Path(log_path)
        self.events_path = events_path_for(self.log_path)
        self.path = self.log_path
        self.follow = follow
        self.lines: list[str] = []
        self.read_offset = 0
        self.exists = True
        self.loaded = False
        self.query_text = ""
        self.match_line: int | None = None
        self._reading = False

    def compose(self) -> ComposeResult:
        yield Static(id="log-header")
        yield Static(id="log-match")
        yield Log(id="log-lines", highlight=False, auto_scroll=True)
        yield Input(placeholder="search (Enter: find, Esc: close)", id="log-search")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False
        self.query_one("#log-match", Static).display = False
        self._header()
        self.load()
        self.set_interval(FOLLOW_S, self._follow_tick, name="log-follow")

    def _header(self) -> None:
        base = self.context.base_dir
        text = Text("log ", style="dim") if self.path == self.log_path else Text("events ", "dim")
        text.append(short_path(show_path(self.path, base), max(self.app.size.width - 40, 30)))
        text.append(f" · {len(self.lines):,} lines", "dim")
        if not self.exists:
            text.append(" · no such file (yet)", "yellow")
        if self.follow:
            text.append(" · following", "bold cyan")
        else:
            text.append(" · paused (f follows)", "dim")
        if self.query_text:
            where = "no match" if self.match_line is None else f"line {self.match_line + 1:,}"
            text.append(f" · /{self.query_text}: {where}", "magenta")
        self.query_one("#log-header", Static).update(text)

    # --- reading --------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the whole file (in a worker), then follow it."""
        self.lines = []
        self.read_offset = 0
        self.loaded = False
        self.match_line = None  # (the other file's line numbers)
        self.query_one("#log-match", Static).display = False
        self.query_one("#log-lines", Log).clear()
        self._read()

    def _read(self) -> None:
        if self._reading:
            return
        self._reading = True
        path, offset = self.path, self.read_offset

        def read() -> tuple[Path, list[str], int, bool]:
            return (path, *read_from(path, offset))

        self.run_in_thread(read, group="log-read", description="read log")

    def thread_done(self, group: str, result: Any) -> None:
        if group == "log-read":
            self._got(result)

    def thread_failed(self, group: str, error: BaseException) -> None:
        if group == "log-read":
            self._reading = False

    def _got(self, found: tuple[Path, list[str], int, bool]) -> None:
        path, lines, offset, exists = found
        self._reading = False
        if path != self.path:
            return  # the view switched files meanwhile
        self.exists = exists
        self.read_offset = offset
        self.loaded = True
        if lines:
            self.lines.extend(lines)
            log = self.query_one("#log-lines", Log)
            log.write_lines(lines)
            if len(self.lines) > MAX_LINES:
                drop = len(self.lines) - MAX_LINES
                del self.lines[:drop]
        self._header()

    def _follow_tick(self) -> None:
        if self.follow and self.loaded:
            self._read()

    # --- keys -----------------------------------------------------------------------------------
    def action_close(self) -> None:
        search = self.query_one("#log-search", Input)
        if search.display:
            search.display = False
            self.query_one("#log-lines", Log).focus()
            return
        self.dismiss(None)

    def action_switch_file(self) -> None:
        self.path = self.events_path if self.path == self.log_path else self.log_path
        self.load()
        self._header()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one("#log-lines", Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._header()

    def action_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.display = True
        search.focus()

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        self.match_line = None
        self.query_one("#log-search", Input).display = False
        self.query_one("#log-lines", Log).focus()
        self.action_next_match()

    def find(self, text: str, start: int) -> int | None:
        """The first line at or after `start` (wrapping) that holds `text`, case-insensitive."""
        needle = text.casefold()
        count = len(self.lines)
        for step in range(count):
            index = (start + step) % count
            if needle in self.lines[index].casefold():
                return index
        return None

    def action_next_match(self) -> None:
        if not self.query_text or not self.lines:
            self._header()
            return
        start = 0 if self.match_line is None else self.match_line + 1
        self.match_line = self.find(self.query_text, start)
        if self.match_line is not None:
            # stop following so the match stays on screen
            self.follow = False
            log = self.query_one("#log-lines", Log)
            log.auto_scroll = False
            log.scroll_to(y=max(self.match_line - 2, 0), animate=False)
        self._show_match()
        self._header()

    def _show_match(self) -> None:
        """The matching line whole (wrapped), the text found in it marked: the log's own lines
        are cut at the screen's edge, and nothing else says which one matched."""
        panel = self.query_one("#log-match", Static)
        if self.match_line is None or not 0 <= self.match_line < len(self.lines):
            panel.display = False
            return
        line = self.lines[self.match_line]
        text = Text(f"{self.match_line + 1:,}  ", "dim")
        body = Text(line)
        needle, folded = self.query_text.casefold(), line.casefold()
        # (marked only where folding keeps the positions: "ß" folds to two letters)
        start = folded.find(needle) if needle and len(folded) == len(line) else -1
        while start >= 0:
            body.stylize("bold reverse magenta", start, start + len(needle))
            start = folded.find(needle, start + len(needle))
        text.append_text(body)
        panel.update(text)
        panel.display = True
