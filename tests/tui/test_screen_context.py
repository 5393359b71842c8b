"""Attributes down, messages up: what the screens are handed, what the App tells them, and how a
failed worker of a screen ends (the error modal, never the token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tui_fixtures import make_app

from salesmap_tui.engine import api
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.restore import RestoreScreen
from salesmap_tui.tui.widgets.error_modal import ErrorModal


async def wait_for(pilot: Any, condition: Any, tries: int = 500) -> None:
    """Process messages until `condition()` holds (bounded; no timed assertion)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


async def test_a_screen_worker_error_ends_in_the_error_modal_without_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    token = app.settings.token
    assert token
    history_file = app.settings.history_path

    def broken(_settings: object) -> None:
        raise OSError(f"cannot read {history_file} (sent with {token})")

    monkeypatch.setattr(api, "read_history", broken)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert token not in modal.error_message and "***" in modal.error_message
        # the path relative to the base folder, as every other message shows it
        assert str(tmp_path) not in modal.error_message
        assert "logs/run_history.jsonl" in modal.error_message
        history = app.get_screen_for_mode("history")
        assert isinstance(history, HistoryScreen) and not history.loaded
        # the worker was the screen's own: Textual gave its state to the screen
        assert all(w.node is history for w in app.workers if w.group == "history-read")


async def test_run_active_is_pushed_down_to_every_screen(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.run_active = True  # as the App sets it when its run starts
        await pilot.press("b")  # a screen made after the run started is told too
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreScreen))
        restore = app.screen
        assert isinstance(restore, RestoreScreen)
        assert restore.run_active and app.dashboard.run_active
        app.run_active = False
        assert not restore.run_active and not app.dashboard.run_active
        # the screens and the App share one context, handed down at construction
        assert restore.context is app.dashboard.context is app.screen_context
        assert restore.context.base_dir == tmp_path
