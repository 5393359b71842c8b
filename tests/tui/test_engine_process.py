"""The app's own runs go in a child process (tui/engine_process.py): real processes, real kills.

What must hold: the run is another process whose command line and environment carry no token;
the app never mistakes its own child for "another run" to attach to; the child stops with a
checkpoint when the terminal closes (SIGHUP) or the app's process dies (SIGKILL), and a child
killed outright is reported, not waited on forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from tui_fixtures import make_app, workers_done

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import CheckpointManager
from salesmap_tui.engine.errors import LockHeld
from salesmap_tui.engine.history import read_history
from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.engine_process import (
    EngineProcessDied,
    describe_for_pipe,
    rebuild_error,
    run_in_child,
)
from salesmap_tui.tui.overview import find_holder
from salesmap_tui.tui.widgets.error_modal import ErrorModal

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")


@pytest.fixture
def slow_sandbox() -> Iterator[SandboxServer]:
    """Slow enough that a run lasts seconds: 200 ms a request, 30 pages per list."""
    config = SandboxConfig(seed=7, scale=3000, forms=2, rate_limit=0, latency_ms=200)
    with SandboxServer(config) as server:
        yield server


def app_on(root: Path, server: SandboxServer) -> SalesmapApp:
    return make_app(root, base_url=server.base_url, token=server.token)


async def until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def settings_of(root: Path) -> Settings:
    return Settings(db_path=root / "salesmap_latest.db", log_dir=root / "logs")


def unfinished_checkpoints(root: Path) -> list[str]:
    infos = CheckpointManager(settings_of(root).checkpoint_dir).list()
    return [i.run_tag or "?" for i in infos if i.checkpoint is not None and i.problem is None]


def final_records(root: Path) -> list[dict[str, Any]]:
    history = read_history(settings_of(root).history_path)
    records = [getattr(item, "record", None) for item in history]
    return [r for r in records if isinstance(r, dict) and r.get("status") != "running"]


async def test_own_run_is_a_child_without_the_token_on_its_command_line(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    app = app_on(tmp_path, slow_sandbox)
    token = slow_sandbox.token
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        holder = await until(lambda: find_holder(app.settings.lock_path))
        assert holder.pid != os.getpid()
        child = psutil.Process(holder.pid)
        assert child.ppid() == os.getpid()
        assert token not in " ".join(child.cmdline())
        assert not any(token in value for value in child.environ().values())
        await until(lambda: app.last_result is not None, timeout=120)
        await workers_done(app)
        await asyncio.sleep(3 * app.watch_poll_s)  # time for the watcher to (wrongly) attach
        await pilot.pause()
        assert app.last_result is not None and app.last_result.status == "done"
        assert app.dashboard.holder is None, "the app attached to its own child"
        assert not app.run_active
    assert not psutil.pid_exists(holder.pid) or psutil.Process(holder.pid).status() == "zombie"


async def test_terminal_closed_sighup_child_saves_a_checkpoint(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    app = app_on(tmp_path, slow_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        holder = await until(lambda: find_holder(app.settings.lock_path))
        await asyncio.sleep(1.5)  # some pages committed
        os.kill(holder.pid, signal.SIGHUP)
        await until(lambda: app.last_result is not None, timeout=60)
        await workers_done(app)
        await pilot.pause()
        result = app.last_result
        assert result is not None
        assert result.exit_code == 143, result
        assert not app.run_active
    assert result.run_tag in unfinished_checkpoints(tmp_path)
    assert not (tmp_path / "salesmap_latest.db").exists()  # a first run never swapped


async def test_child_killed_outright_is_reported(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    app = app_on(tmp_path, slow_sandbox)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("r")
        holder = await until(lambda: find_holder(app.settings.lock_path))
        os.kill(holder.pid, signal.SIGKILL)
        await until(lambda: isinstance(app.screen, ErrorModal), timeout=60)
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ErrorModal)
        assert "signal 9" in modal.error_message
        assert not app.run_active
        assert app.last_result is None


def test_cancel_after_the_child_was_killed_still_returns(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    """A cancel that reaches a child already SIGKILLed must not wait for it (a multiprocessing
    Event's set() waited forever for the dead process to wake: the app could not quit)."""
    settings = settings_of(tmp_path).replace(
        base_url=slow_sandbox.base_url, token=slow_sandbox.token, min_interval=0.0
    )
    cancel = threading.Event()
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(run_in_child(settings, "snapshot", lambda event: None, cancel))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    holder = wait_until(lambda: find_holder(settings.lock_path))
    os.kill(holder.pid, signal.SIGKILL)
    cancel.set()  # at once: the dying child may still be waiting for a stop
    thread.join(timeout=60)
    assert not thread.is_alive(), "run_in_child hung after its child was killed"
    assert len(outcome) == 1 and isinstance(outcome[0], EngineProcessDied), outcome


CHILD_OWNER = """
import json, sys, threading
from pathlib import Path
from salesmap_tui.config import Settings
from salesmap_tui.tui.engine_process import run_in_child

if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    root = Path(a["root"])
    settings = Settings(
        db_path=root / "salesmap_latest.db", log_dir=root / "logs", backup_dir=root / "backups",
        token=sys.stdin.readline().strip(), base_url=a["url"], min_interval=0.0,
    )
    run_in_child(settings, "snapshot", lambda event: None, threading.Event())
"""


def test_app_process_killed_child_checkpoints_and_stops(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    """SIGKILL to the app's process: its child notices within a second or two, saves a
    checkpoint, releases the lock and exits; nothing is swapped in."""
    script = tmp_path / "owner.py"
    script.write_text(CHILD_OWNER, encoding="utf-8")
    args = json.dumps({"root": str(tmp_path), "url": slow_sandbox.base_url})
    owner = subprocess.Popen(
        [sys.executable, str(script), args], stdin=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert owner.stdin is not None
        owner.stdin.write(slow_sandbox.token + "\n")
        owner.stdin.close()
        lock = settings_of(tmp_path).lock_path
        holder = wait_until(lambda: find_holder(lock))
        assert holder.pid != owner.pid
        child = psutil.Process(holder.pid)
        time.sleep(1.5)  # some pages committed
        owner.kill()
        owner.wait(timeout=10)
        child.wait(timeout=60)  # it stops by itself: nobody signals it
    finally:
        if owner.poll() is None:
            owner.kill()
    assert find_holder(settings_of(tmp_path).lock_path) is None
    tags = unfinished_checkpoints(tmp_path)
    assert len(tags) == 1
    records = [r for r in final_records(tmp_path) if r.get("run_tag") == tags[0]]
    assert records and records[-1]["exit_code"] == 143, records
    assert not (tmp_path / "salesmap_latest.db").exists()


def test_exceptions_cross_the_pipe_with_their_attributes() -> None:
    error = rebuild_error(describe_for_pipe(LockHeld("another run holds it", pid=4242)))
    assert isinstance(error, LockHeld)
    assert error.pid == 4242
    assert str(error) == "another run holds it"

    class Local(Exception):  # not importable by name on the other side
        pass

    stranger = rebuild_error(describe_for_pipe(Local("odd")))
    assert type(stranger) is RuntimeError
    assert "odd" in str(stranger)
    died = EngineProcessDied(-9)
    assert "signal 9" in str(died)
