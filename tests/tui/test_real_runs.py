"""The app against the real engine and the in-process sandbox: every screen, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static
from tui_fixtures import make_app, rendered, workers_done

from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.screens.dashboard import DashboardScreen
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.restore import RestoreScreen
from salesmap_tui.tui.screens.resume import ResumeScreen
from salesmap_tui.tui.screens.webform import WebformScreen
from salesmap_tui.tui.widgets.confirm import ConfirmScreen
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow
from salesmap_tui.tui.widgets.error_modal import ErrorModal


def sandbox_app(root: Path, server: SandboxServer, **changes: Any) -> SalesmapApp:
    values: dict[str, Any] = {"base_url": server.base_url, "token": server.token}
    values.update(changes)
    return make_app(root, **values)


async def settle(app: SalesmapApp, pilot: Any) -> None:
    """Let every worker finish and every posted message be handled."""
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def test_full_run_to_summary(tmp_path: Path, tui_sandbox: SandboxServer) -> None:
    app = sandbox_app(tmp_path, tui_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        assert dash.result is not None, rendered(dash.query_one("#summary-panel", Static))
        assert dash.result.status == "done"
        assert (tmp_path / "salesmap_latest.db").exists()
        summary = rendered(dash.query_one("#summary-panel", Static))
        assert "done" in summary
        assert "organization" in summary
        assert all(row.state == "done" for row in dash.query(EndpointRow))
        assert not app.run_active


async def wait_for(pilot: Any, condition: Any, tries: int = 400) -> None:
    """Process messages until `condition()` holds (bounded; no timed assertion)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


async def test_cancel_then_resume_to_completion(tmp_path: Path) -> None:
    # slow enough that the cancel lands mid-crawl
    config = SandboxConfig(seed=6, scale=400, forms=2, latency_ms=30, rate_limit=0)
    with SandboxServer(config) as server:
        app = sandbox_app(tmp_path, server, checkpoint_interval=1, concurrency=1)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            dash = app.dashboard
            await wait_for(pilot, lambda: dash.checkpoint is not None)
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(app, pilot)
            assert dash.result is not None
            assert dash.result.status == "interrupted"
            tag = dash.result.run_tag
            assert "continue it" in rendered(dash.query_one("#summary-panel", Static))

            await pilot.press("s")
            await settle(app, pilot)
            resume = app.screen
            assert isinstance(resume, ResumeScreen)
            assert [c.run_tag for c in resume.checkpoints if c.problem is None] == [tag]
            await pilot.press("enter")
            await settle(app, pilot)
            assert app.screen is dash
            assert dash.result is not None
            assert dash.result.status == "done", dash.result.message
            assert dash.result.run_tag == tag
            assert dash.started is not None and dash.started.resumed


async def two_runs(app: SalesmapApp, pilot: Any) -> None:
    for _ in range(2):
        await pilot.press("r")
        await settle(app, pilot)
        assert app.dashboard.result is not None
        assert app.dashboard.result.status == "done"


async def test_restore_refuses_corrupt_and_restores_good(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = sandbox_app(tmp_path, tui_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await two_runs(app, pilot)
        live = tmp_path / "salesmap_latest.db"
        corrupt = tmp_path / "backups" / "salesmap_latest_20990101T000000Z-dead.db.gz"
        corrupt.write_bytes(b"this is not gzip at all")
        before = live.read_bytes()

        await pilot.press("b")
        await settle(app, pilot)
        restore = app.screen
        assert isinstance(restore, RestoreScreen)
        assert restore.backups[0].path == corrupt  # newest first
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.error_title == "Backup refused"
        await pilot.press("escape")
        assert restore.outcome == "refused"
        assert "live DB was not touched" in rendered(restore.query_one("#restore-status", Static))
        assert live.read_bytes() == before

        # the good backup: verify, see the confirmation name the DB, say yes
        await pilot.press("down", "enter")
        await settle(app, pilot)
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        body = rendered(confirm.query_one("#dialog-body", Static))
        assert "salesmap_latest.db" in body and "backed up first" in body
        await pilot.press("y")
        await settle(app, pilot)
        assert restore.outcome == "restored"
        assert live.read_bytes() != before
        backups = sorted(p.name for p in (tmp_path / "backups").glob("*.db.gz"))
        assert len(backups) == 3  # the previous live DB was backed up first


async def test_restore_cancel_discards_verified_copy(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = sandbox_app(tmp_path, tui_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await two_runs(app, pilot)
        before = (tmp_path / "salesmap_latest.db").read_bytes()
        await pilot.press("b")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(app, pilot)
        restore = app.screen
        assert isinstance(restore, RestoreScreen)
        assert restore.outcome == "discarded"
        assert (tmp_path / "salesmap_latest.db").read_bytes() == before
        # the verified copy next to the live DB is gone (the lock file is the engine's)
        leftovers = [
            p.name
            for p in tmp_path.iterdir()
            if p.name not in ("logs", "backups") and not p.name.endswith(".lock")
        ]
        assert leftovers == ["salesmap_latest.db"]


async def test_webform_pass(tmp_path: Path, tui_sandbox: SandboxServer) -> None:
    app = sandbox_app(tmp_path, tui_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        await pilot.press("w")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, WebformScreen)
        assert screen.status is not None and screen.status.db_exists
        await pilot.press("p")
        await settle(app, pilot)
        assert screen.result is not None
        assert screen.result.kind == "webform"
        assert screen.result.status == "done", screen.result.message
        assert screen.result.webform is not None
        text = rendered(screen.query_one("#webform-result", Static))
        assert "new rows" in text
        assert screen.status is not None and screen.status.last_pass is not None


async def test_rejected_token_shows_error_modal(tmp_path: Path, tui_sandbox: SandboxServer) -> None:
    app = sandbox_app(tmp_path, tui_sandbox, token="not-the-sandbox-token")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert modal.error_title == "Token rejected"
        assert "not-the-sandbox-token" not in modal.error_message
        assert not app.run_active
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_missing_token_says_what_is_missing(tmp_path: Path) -> None:
    app = make_app(tmp_path, token=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert "SALESMAP_TOKEN" in modal.error_message
        await pilot.press("escape")
        # history, restore and checkpoints still open without a token
        for key, cls in (("h", HistoryScreen), ("b", RestoreScreen), ("s", ResumeScreen)):
            await pilot.press(key)
            await settle(app, pilot)
            assert isinstance(app.screen, cls)


async def test_a_run_holding_the_lock_shows_error_modal(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    """Cron and the TUI may collide: the second one says who holds the DB, and starts nothing."""
    import os

    from salesmap_tui.engine.lock import RunLock

    app = sandbox_app(tmp_path, tui_sandbox)
    holder = RunLock(app.settings.lock_path)  # another open file description: flock conflicts
    holder.acquire()
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            await settle(app, pilot)
            modal = app.screen
            assert isinstance(modal, ErrorModal)
            assert f"PID {os.getpid()}" in modal.error_message
            assert not app.run_active
            assert not (tmp_path / "salesmap_latest.db").exists()
    finally:
        holder.release()
