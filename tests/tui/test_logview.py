"""The run log viewer: from the summary and from history, searchable, following a live file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static
from tui_fixtures import make_app, rendered, workers_done

from salesmap_tui.sandbox import SandboxServer
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.logview import LogScreen


async def settle(app: Any, pilot: Any) -> None:
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def wait_for(pilot: Any, condition: Any, tries: int = 500) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


async def test_log_from_the_summary_search_and_events(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = make_app(tmp_path, base_url=tui_sandbox.base_url, token=tui_sandbox.token)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        assert app.dashboard.result is not None
        await pilot.press("l")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, LogScreen)
        await wait_for(pilot, lambda: screen.loaded and screen.lines)
        assert any("finished: done" in line for line in screen.lines)
        assert tui_sandbox.token not in "\n".join(screen.lines)
        # search: "/", text, Enter -> the matching line
        await pilot.press("slash", *"checkpoint saved", "enter")
        await pilot.pause()
        assert screen.match_line is not None
        assert "checkpoint saved" in screen.lines[screen.match_line]
        # the matching line is shown whole above the log (its own line is cut at 80 columns)
        match = screen.query_one("#log-match", Static)
        assert match.display
        assert screen.lines[screen.match_line] in rendered(match, width=400)
        first = screen.match_line
        await pilot.press("n")
        assert screen.match_line is not None and screen.match_line != first
        # e: the same run's events file
        await pilot.press("e")
        await settle(app, pilot)
        await wait_for(pilot, lambda: screen.loaded and screen.lines)
        assert screen.path.name.endswith(".events.jsonl")
        assert '"event": "run_finished"' in screen.lines[-1]
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_log_follows_a_growing_file_and_opens_from_history(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = make_app(tmp_path, base_url=tui_sandbox.base_url, token=tui_sandbox.token)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        await pilot.press("h")
        await settle(app, pilot)
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("l")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, LogScreen)
        await wait_for(pilot, lambda: screen.loaded and screen.lines)
        before = len(screen.lines)
        with screen.log_path.open("a", encoding="utf-8") as log:
            log.write("2026-12-01T00:00:00.000Z a line written later\n")
            log.write("2026-12-01T00:00:00.000Z and half a li")
        await wait_for(pilot, lambda: len(screen.lines) == before + 1, tries=300)
        assert screen.lines[-1].endswith("a line written later")
