"""Watching a run of another process: a real headless `salesmap-tui snapshot` in a subprocess,
the TUI attached to its events file (started before and after the TUI opened), stopped safely."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static
from tui_fixtures import make_app, rendered

from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.widgets.confirm import ConfirmScreen
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow
from tests.conftest import workspace_options


@pytest.fixture
def slow_server() -> Iterator[SandboxServer]:
    # slow enough that the headless run is still going when the TUI looks
    config = SandboxConfig(seed=6, scale=1500, forms=2, latency_ms=25, rate_limit=0)
    with SandboxServer(config) as server:
        yield server


def headless(root: Path, server: SandboxServer, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SALESMAP_TOKEN=server.token)
    cmd = [
        sys.executable,
        "-m",
        "salesmap_tui.cli",
        "snapshot",
        *workspace_options(root, server),
        "--concurrency",
        "1",
        "--checkpoint-interval",
        "1",
        "--quiet",
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def app_for(root: Path, server: SandboxServer) -> SalesmapApp:
    app = make_app(root, base_url=server.base_url, token=server.token)
    app.watch_poll_s = 0.05
    return app


async def wait_for(pilot: Any, condition: Any, tries: int = 3000) -> None:
    """Process messages until `condition()` holds (bounded; no timed assertion)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


def wait_for_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    import time

    for _ in range(3000):
        if path.exists() and path.stat().st_size > 0:
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def test_cli_module_runs() -> None:
    # the subprocess entry point these tests use
    out = subprocess.run(
        [sys.executable, "-m", "salesmap_tui.cli", "--help"], capture_output=True, check=False
    )
    assert out.returncode == 0, out.stderr


async def test_attach_to_a_run_started_before_the_tui_and_stop_it(
    tmp_path: Path, slow_server: SandboxServer
) -> None:
    proc = headless(tmp_path, slow_server)
    try:
        # the run holds the lock and writes its events before the TUI opens
        logs = tmp_path / "logs"
        wait_for_file(tmp_path / "salesmap_latest.db.lock", proc)
        for _ in range(3000):
            if any(p.name.endswith(".events.jsonl") for p in logs.glob("*")):
                break
            import time

            time.sleep(0.01)
        app = app_for(tmp_path, slow_server)
        async with app.run_test(size=(120, 36)) as pilot:
            dash = app.dashboard
            await wait_for(pilot, lambda: dash.holder is not None and dash.started is not None)
            assert dash.holder is not None and dash.holder.pid == proc.pid
            assert "snapshot" in dash.holder.cmdline
            assert dash.active and not app.run_active  # read-only: no run of our own
            bar = rendered(dash.query_one("#run-bar", Static))
            assert f"watching the run of PID {proc.pid}" in bar
            # the same bars: pages arrive live from the other process
            await wait_for(pilot, lambda: sum(r.pages for r in dash.query(EndpointRow)) > 2)
            # r does not start a second run into the lock
            await pilot.press("r")
            assert not app.run_active
            # stop it safely: asks first, then SIGTERM; the process saves a checkpoint
            await pilot.press("x")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: dash.result is not None)
            assert proc.wait(timeout=30) == 143
            assert dash.result is not None and dash.result.status == "interrupted"
            # its result stays on screen, rows end in their real state
            await wait_for(pilot, lambda: dash.watch_ended is not None)
            summary = rendered(dash.query_one("#summary-panel", Static))
            assert "interrupted" in summary and f"PID {proc.pid}" in summary
            states = {r.endpoint: r.state for r in dash.query(EndpointRow)}
            assert not {"fetching", "backoff", "waiting"} & set(states.values()), states
            assert "stopped" in states.values()
            assert (tmp_path / "logs" / "checkpoints").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_attach_to_a_run_started_after_the_tui_opened(tmp_path: Path) -> None:
    config = SandboxConfig(seed=7, scale=400, forms=2, latency_ms=5, rate_limit=0)
    with SandboxServer(config) as server:
        app = app_for(tmp_path, server)
        async with app.run_test(size=(80, 24)) as pilot:
            dash = app.dashboard
            await pilot.pause(0.2)
            assert dash.holder is None and not dash.active
            proc = headless(tmp_path, server)
            try:
                await wait_for(pilot, lambda: dash.holder is not None)
                await wait_for(pilot, lambda: dash.result is not None)
                assert proc.wait(timeout=60) == 0
                assert dash.result is not None and dash.result.status == "done"
                await wait_for(pilot, lambda: dash.watch_ended is not None)
                assert all(r.state == "done" for r in dash.query(EndpointRow))
                summary = rendered(dash.query_one("#summary-panel", Static))
                assert "done" in summary
                # once it ended, our own runs are possible again
                assert dash.check_action("app.start_run", ()) is True
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
