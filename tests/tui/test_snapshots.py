"""SVG snapshots of every screen at 120x36 and 80x24; baselines in the top-level snapshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_fixtures import (
    FIXED_EPOCH,
    KOREAN_DB,
    KOREAN_FORM_ERROR,
    KOREAN_FORMS,
    finished,
    korean_run,
    make_app,
    recorded_run,
    workers_done,
    write_held_back_workspace,
    write_korean_workspace,
    write_run_log,
    write_workspace,
)

from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.messages import EngineEventMessage

SIZES = [pytest.param((120, 36), id="120x36"), pytest.param((80, 24), id="80x24")]
pytestmark = pytest.mark.parametrize("size", SIZES)


def test_dashboard_mid_run(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The dashboard in the middle of a run: bars, a backoff, retries, a checkpoint."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in recorded_run(tmp_path):
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_dashboard_finished(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The dashboard's summary after the run finished."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in [*recorded_run(tmp_path), (5.0, finished(tmp_path))]:
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def workspace_app(root: Path) -> SalesmapApp:
    write_workspace(root)
    return make_app(root)


async def settle(pilot: Pilot[Any]) -> None:
    for _ in range(3):
        await workers_done(pilot.app)
        await pilot.pause()


def screen_snapshot(
    snap_compare: Any, root: Path, keys: tuple[str, ...], size: tuple[int, int]
) -> bool:
    app = workspace_app(root)

    async def run_before(pilot: Pilot[Any]) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return bool(snap_compare(app, terminal_size=size, run_before=run_before))


def test_resume_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Two checkpoints: one resumable with its temp DB, one unreadable (says why)."""
    assert screen_snapshot(snap_compare, tmp_path, ("s",), size)


def test_restore_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Three backups, newest first."""
    assert screen_snapshot(snap_compare, tmp_path, ("b",), size)


def test_restore_refused(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """A backup that is gzip but not SQLite: refused, the live DB untouched."""
    assert screen_snapshot(snap_compare, tmp_path, ("b", "enter"), size)


def test_webform_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """webform_history of the live DB and the last pass."""
    assert screen_snapshot(snap_compare, tmp_path, ("w",), size)


def test_history_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Last state per run tag, a garbage line as a warning row, detail and chart."""
    assert screen_snapshot(snap_compare, tmp_path, ("h",), size)


def test_history_failed_run_detail(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """The failed run's detail shows its error (with markup characters) literally."""
    assert screen_snapshot(snap_compare, tmp_path, ("h", "t"), size)


def test_help_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert screen_snapshot(snap_compare, tmp_path, ("f1",), size)


def test_cancel_confirmation(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
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

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# --- Korean: wide characters must keep every column in line ------------------------------------
def korean_app(root: Path) -> SalesmapApp:
    write_korean_workspace(root)
    return make_app(root, db_path=root / KOREAN_DB)


def korean_snapshot(
    snap_compare: Any, root: Path, keys: tuple[str, ...], size: tuple[int, int]
) -> bool:
    app = korean_app(root)

    async def run_before(pilot: Pilot[Any]) -> None:
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return bool(snap_compare(app, terminal_size=size, run_before=run_before))


def test_korean_history_detail(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """세일즈맵.db: Korean table names line up in the detail; the Korean error reason shows."""
    assert korean_snapshot(snap_compare, tmp_path, ("h",), size)


def test_korean_resume_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert korean_snapshot(snap_compare, tmp_path, ("s",), size)


def test_korean_restore_list(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Backup names start with the DB's Korean stem: 세일즈맵_<tag>.db.gz."""
    assert korean_snapshot(snap_compare, tmp_path, ("b",), size)


def test_korean_webform_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Korean form names (one longer than its column) in the forms table."""
    assert korean_snapshot(snap_compare, tmp_path, ("w",), size)


def test_korean_dashboard_retry_log(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """Korean causes and warnings in the retry log, sub-second waits with two decimals."""
    app = make_app(tmp_path, db_path=tmp_path / KOREAN_DB)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in korean_run(tmp_path):
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_korean_error_modal(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, db_path=tmp_path / KOREAN_DB)

    async def run_before(pilot: Pilot[Any]) -> None:
        app.show_error(
            "API error",
            f"webForm {KOREAN_FORMS[0]}: 404 {KOREAN_FORM_ERROR} 세일즈맵.db는 바뀌지 않았습니다. "
            "잠시 후 다시 실행하거나 웹 폼 화면(w)에서 웹 폼만 다시 받으세요.",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_dashboard_on_open_after_runs(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """Opened after runs: the newest run from the history, the live DB, what to press."""
    assert screen_snapshot(snap_compare, tmp_path, (), size)


def test_korean_dashboard_on_open(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert korean_snapshot(snap_compare, tmp_path, (), size)


def test_dashboard_attached(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Watching another process's run (read-only): who runs it, the same bars, x to stop it."""
    from salesmap_tui.tui.overview import Holder

    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        holder = Holder(
            4242,
            FIXED_EPOCH - 600,
            "/usr/bin/python3 /usr/local/bin/salesmap-tui "
            "snapshot --db-path /srv/crm/salesmap_latest.db --log-dir /srv/crm/logs",
        )
        app.dashboard.attach(holder)
        app.dashboard.view.active = True
        for advance, event in recorded_run(tmp_path):
            app.now.advance(advance)
            app.dashboard.apply(event)
        # the retry log lays out its columns after a resize, a frame later, and stays anchored
        # at its end; the picture waits until its scroll is at its end and steady (the stored
        # picture once showed it short of its end: the scroll ran before the table grew)
        await settle(pilot)
        from textual.widgets import DataTable

        table = app.dashboard.query_one("#retry-log", DataTable)
        seen: list[tuple[float, float]] = []
        for _ in range(40):  # at most 2 s: until it shows its newest entry, three times alike
            await pilot.pause(0.05)
            seen.append((table.scroll_y, table.max_scroll_y))
            if len(seen) >= 3 and len(set(seen[-3:])) == 1 and seen[-1][0] >= seen[-1][1]:
                break
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_dashboard_attached_run_ended(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """The watched run was stopped safely: its result stays, rows say where each stopped."""
    from salesmap_tui.tui.overview import Holder

    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        app.dashboard.attach(Holder(4242, FIXED_EPOCH - 600, "salesmap-tui snapshot"))
        app.dashboard.view.active = True
        for advance, event in [*recorded_run(tmp_path), (5.0, finished(tmp_path, "interrupted"))]:
            app.now.advance(advance)
            app.dashboard.apply(event)
        app.dashboard.watched_run_ended(None)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def held_back_app(root: Path) -> SalesmapApp:
    write_held_back_workspace(root)
    return make_app(root)


def test_dashboard_held_back(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """On open: a snapshot the shrink guard held back, which tables shrank, i / D to decide."""
    app = held_back_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_held_back_let_in_confirmation(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """'Let it in' asks first, naming what shrank and where the live DB is backed up."""
    app = held_back_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("i")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_log_viewer(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """l on the dashboard: the newest run's log; /429 finds the Korean retry line."""
    app = workspace_app(tmp_path)
    write_run_log(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("slash", *"429", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
