"""The dashboard tells the truth: on open (the last run, the live DB), and at every end of a run
(cancel, rejected token, failure) every row says what really became of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from textual.widgets import ProgressBar, Static
from tui_fixtures import make_app, rendered, workers_done

from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp, run_tui
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow

ACTIVE = {"fetching", "backoff", "waiting"}


def sandbox_app(root: Path, server: SandboxServer, **changes: Any) -> SalesmapApp:
    values: dict[str, Any] = {"base_url": server.base_url, "token": server.token}
    values.update(changes)
    return make_app(root, **values)


async def settle(app: SalesmapApp, pilot: Any) -> None:
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def wait_for(pilot: Any, condition: Any, tries: int = 2000) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


def states(app: SalesmapApp) -> dict[str, str]:
    return {row.endpoint: row.state for row in app.dashboard.query(EndpointRow)}


def nothing_moves(app: SalesmapApp) -> bool:
    """No bar animates: none is indeterminate with frames running."""
    for row in app.dashboard.query(EndpointRow):
        for inner in row.query("ProgressBar > #bar"):
            if getattr(inner, "percentage", 0) is None and inner.auto_refresh:
                return False
    return True


async def test_open_after_runs_shows_the_last_run_and_the_live_db(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    first = sandbox_app(tmp_path, tui_sandbox)
    async with first.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(first, pilot)
        assert first.dashboard.result is not None
        tag = first.dashboard.result.run_tag
        rows = first.dashboard.result.tables["deal"]["rows"]
    app = sandbox_app(tmp_path, tui_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.overview is not None)
        await pilot.pause()
        summary = rendered(dash.query_one("#summary-panel", Static))
        assert "last run" in summary and "done" in summary and tag in summary
        assert "errors" in summary and "took" in summary
        record = dash.overview.last_run if dash.overview else None
        if record is not None and "exit_code" in record:  # CONTRACT's field, once recorded
            assert f"exit {record['exit_code']}" in summary
        bar = rendered(dash.query_one("#run-bar", Static))
        assert f"data of {tag}" in bar and "nothing running" in bar
        deal = dash.row("deal")
        assert deal is not None and deal.state == "idle"
        assert f"{rows:,} rows in the live DB" in rendered(deal.query_one(".ep-detail", Static))
        assert all(row.query_one(ProgressBar).total == 1 for row in dash.query(EndpointRow))
        assert nothing_moves(app)


async def test_first_open_says_there_is_no_run_and_nothing_animates(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.pause()
        summary = rendered(app.dashboard.query_one("#summary-panel", Static))
        assert "no run yet" in summary and "start a snapshot" in summary
        assert "no live DB yet" in rendered(app.dashboard.query_one("#run-bar", Static))
        assert set(states(app).values()) == {"idle"}
        assert nothing_moves(app)


async def test_cancel_leaves_every_row_in_its_real_state(tmp_path: Path) -> None:
    config = SandboxConfig(seed=6, scale=4000, forms=2, latency_ms=40, rate_limit=0)
    with SandboxServer(config) as server:
        app = sandbox_app(tmp_path, server, checkpoint_interval=1, concurrency=2)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            await wait_for(pilot, lambda: app.dashboard.checkpoint is not None)
            await pilot.press("c", "y")
            await settle(app, pilot)
            await wait_for(pilot, lambda: app.dashboard.result is not None)
            assert app.dashboard.result is not None
            assert app.dashboard.result.status == "interrupted"
            got = states(app)
            assert not ACTIVE & set(got.values()), got
            assert "stopped" in got.values() or "not run" in got.values(), got
            for row in app.dashboard.query(EndpointRow):
                assert "backing off" not in rendered(row.query_one(".ep-state", Static))
            assert nothing_moves(app)
            assert "stopped in crawl" in rendered(app.dashboard.query_one("#phase-bar", Static))


async def test_rejected_token_leaves_no_row_fetching(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = sandbox_app(tmp_path, tui_sandbox, token="not-the-sandbox-token")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        got = states(app)
        assert not ACTIVE & set(got.values()), got
        assert nothing_moves(app)
        assert not app.dashboard.active


async def test_a_failed_endpoint_fails_and_the_rest_end_truthfully(tmp_path: Path) -> None:
    config = SandboxConfig(seed=6, scale=200, forms=2, rate_limit=0, faults="500:1:path=deal")
    with SandboxServer(config) as server:
        app = sandbox_app(tmp_path, server, max_wait=0.01)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            await settle(app, pilot)
            await wait_for(pilot, lambda: app.dashboard.result is not None)
            assert app.dashboard.result is not None
            assert app.dashboard.result.status == "failed"
            got = states(app)
            assert got["deal"] == "failed", got
            assert not ACTIVE & set(got.values()), got
            assert nothing_moves(app)


def test_no_terminal_exits_2_naming_the_headless_command(tmp_path: Path, capsys: Any) -> None:
    from tui_fixtures import tmp_settings

    assert not sys.stdin.isatty() or not sys.stdout.isatty()  # pytest captures both
    assert run_tui(tmp_settings(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "salesmap-tui snapshot" in err
    assert not (tmp_path / "logs").exists()  # nothing started


def test_no_terminal_through_the_cli(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "salesmap_tui.cli", "--db-path", str(tmp_path / "x.db")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert b"salesmap-tui snapshot" in out.stderr
    assert len(out.stdout) == 0  # no screens of escapes
