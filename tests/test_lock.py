"""RunLock: one run per DB; a second process is refused with the holder's PID."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from salesmap_tui.engine.errors import LockHeld
from salesmap_tui.engine.lock import RunLock

HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from salesmap_tui.engine.lock import RunLock\n"
    "lock = RunLock(Path(sys.argv[1]))\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def start_holder(lock_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_acquire_writes_pid_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite.lock"
    lock = RunLock(path)
    lock.acquire()
    assert path.read_text().strip() == str(os.getpid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(LockHeld):  # held: another taker is refused
        RunLock(path).acquire()
    lock.release()
    # released: it can be taken again
    RunLock(path).acquire()


def test_second_process_is_refused_with_pid(tmp_path: Path) -> None:
    path = tmp_path / "live.db.lock"
    proc = start_holder(path)
    try:
        with pytest.raises(LockHeld) as info:
            RunLock(path).acquire()
        assert info.value.pid == proc.pid
        assert str(info.value) == (
            f"another salesmap-tui run (PID {proc.pid}) holds {path}; "
            "wait for it to finish or stop it"
        )
        assert info.value.exit_code == 2
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "live.db.lock"
    proc = start_holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.exists()  # the file stays; the flock is gone with the process
    lock = RunLock(path)
    lock.acquire()
    assert path.read_text().strip() == str(os.getpid())
    lock.release()


def test_release_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = RunLock(path)
    lock.acquire()
    lock.release()
    lock.release()
    other = RunLock(path)
    other.acquire()
    other.release()
