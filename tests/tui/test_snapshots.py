"""SVG snapshots of every screen at 120x36, baselines in the top-level snapshots/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from tui_fixtures import finished, make_app, recorded_run, write_workspace

from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.messages import EngineEventMessage

SIZE = (120, 36)


def test_dashboard_mid_run(snap_compare: Any, tmp_path: Path) -> None:
    """The dashboard in the middle of a run: bars, a backoff, retries, a checkpoint."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in recorded_run(tmp_path):
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_dashboard_finished(snap_compare: Any, tmp_path: Path) -> None:
    """The dashboard's summary after the run finished."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in [*recorded_run(tmp_path), (5.0, finished(tmp_path))]:
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def workspace_app(root: Path) -> SalesmapApp:
    write_workspace(root)
    return make_app(root)


async def settle(pilot: Pilot[Any]) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def screen_snapshot(snap_compare: Any, root: Path, keys: tuple[str, ...]) -> bool:
    app = workspace_app(root)

    async def run_before(pilot: Pilot[Any]) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return bool(snap_compare(app, terminal_size=SIZE, run_before=run_before))


def test_resume_screen(snap_compare: Any, tmp_path: Path) -> None:
    """Two checkpoints: one resumable with its temp DB, one unreadable (says why)."""
    assert screen_snapshot(snap_compare, tmp_path, ("s",))


def test_restore_screen(snap_compare: Any, tmp_path: Path) -> None:
    """Three backups, newest first."""
    assert screen_snapshot(snap_compare, tmp_path, ("b",))


def test_restore_refused(snap_compare: Any, tmp_path: Path) -> None:
    """A backup that is gzip but not SQLite: refused, the live DB untouched."""
    assert screen_snapshot(snap_compare, tmp_path, ("b", "enter"))


def test_webform_screen(snap_compare: Any, tmp_path: Path) -> None:
    """webform_history of the live DB and the last pass."""
    assert screen_snapshot(snap_compare, tmp_path, ("w",))


def test_history_screen(snap_compare: Any, tmp_path: Path) -> None:
    """Last state per run tag, a garbage line as a warning row, detail and chart."""
    assert screen_snapshot(snap_compare, tmp_path, ("h",))


def test_history_failed_run_detail(snap_compare: Any, tmp_path: Path) -> None:
    """The failed run's detail shows its error (with markup characters) literally."""
    assert screen_snapshot(snap_compare, tmp_path, ("h", "t"))


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    assert screen_snapshot(snap_compare, tmp_path, ("f1",))


def test_cancel_confirmation(snap_compare: Any, tmp_path: Path) -> None:
    """Cancel asks first."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in recorded_run(tmp_path):
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()
        app.run_active = True  # as if the worker were running
        await pilot.press("c")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
