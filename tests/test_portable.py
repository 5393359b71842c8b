"""Windows-ready: no POSIX-only call outside a guarded branch, a lock that works without fcntl."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import salesmap_tui
from salesmap_tui.cli import cancel_signals, exit_code_for_signal
from salesmap_tui.config import Settings
from salesmap_tui.engine.errors import LockHeld
from salesmap_tui.engine.lock import LockFileUnusable, RunLock, lock_kind
from salesmap_tui.sandbox import SandboxServer

from .conftest import SNAPSHOT_TABLES, dataset_of, expected_records, table_records

PACKAGE = Path(salesmap_tui.__file__).parent
NO_FCNTL = "import sys\nsys.modules['fcntl'] = None  # `import fcntl` now raises ImportError\n"
posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks and SIGKILL as on POSIX")


def py(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


# --- no POSIX-only call outside a guard -----------------------------------------------------------
POSIX_ONLY_MODULES = {"fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "posix"}
POSIX_ONLY_CALLS = {"pread", "pwrite", "fork", "getuid", "geteuid", "killpg", "setsid", "getpgid"}


def _guarded_import_lines(tree: ast.AST) -> set[int]:
    """Lines of imports inside a `try: ... except ImportError` (the guarded branch)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            for inner in node.body:
                lines.add(inner.lineno)
    return lines


def test_no_posix_only_import_or_call_outside_a_guarded_branch():
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _guarded_import_lines(tree)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            if any(n in POSIX_ONLY_MODULES for n in names) and node.lineno not in guarded:
                found.append(f"{path.name}:{node.lineno} imports {names}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in POSIX_ONLY_CALLS
            ):
                found.append(f"{path.name}:{node.lineno} uses os.{node.attr}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "signal"
                and node.attr in ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGBREAK")
            ):
                found.append(f"{path.name}:{node.lineno} uses signal.{node.attr} (use getattr)")
    assert found == []


def test_every_module_imports_without_fcntl():
    code = NO_FCNTL + (
        "import importlib, pkgutil, salesmap_tui\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(salesmap_tui.__path__, 'salesmap_tui.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{m.name}: {exc!r}')\n"
        "from salesmap_tui.engine.lock import lock_kind\n"
        "n = len(list(pkgutil.walk_packages(salesmap_tui.__path__, 'salesmap_tui.')))\n"
        "print(n, lock_kind())\n"
        "print('\\n'.join(bad))\n"
    )
    done = py(code)
    assert done.returncode == 0, done.stderr
    first, *bad = done.stdout.splitlines()
    count, kind = first.split()
    assert int(count) > 30 and kind == "exclusive-file"
    assert [line for line in bad if line] == []


def test_a_whole_snapshot_runs_without_fcntl(tmp_path, sandbox: SandboxServer):
    code = NO_FCNTL + (
        "from salesmap_tui.cli import main\n"
        "from salesmap_tui.engine.lock import lock_kind\n"
        "assert lock_kind() == 'exclusive-file', lock_kind()\n"
        "code = main(sys.argv[1:])\n"
        "assert sys.modules.get('fcntl') is None\n"
        "sys.exit(code)\n"
    )
    args = ["snapshot", "--db-path", str(tmp_path / "live.db"), "--log-dir", str(tmp_path / "l")]
    args += ["--backup-dir", str(tmp_path / "b"), "--base-url", sandbox.base_url]
    args += ["--min-interval", "0", "--max-wait", "0.05"]
    env = {**os.environ, "SALESMAP_TOKEN": sandbox.token}
    first = py(code, *args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    second = py(code, *args, env=env)  # a second run: backup, swap, all without fcntl
    assert second.returncode == 0, second.stdout + second.stderr
    data = dataset_of(sandbox.config)
    for table in SNAPSHOT_TABLES:
        assert table_records(tmp_path / "live.db", table) == expected_records(data, table)
    assert list((tmp_path / "b").glob("*.db.gz"))
    assert not (tmp_path / "live.db.lock").exists()  # the exclusive lock file goes with its run
    history = [
        json.loads(x) for x in (tmp_path / "l" / "run_history.jsonl").read_text().splitlines()
    ]
    assert [r["status"] for r in history if r["status"] != "running"] == ["done", "done"]


# --- the exclusive-file lock (no fcntl, no msvcrt) ------------------------------------------------
HOLDER = NO_FCNTL + (
    "import time\n"
    "from pathlib import Path\n"
    "from salesmap_tui.engine.lock import RunLock\n"
    "lock = RunLock(Path(sys.argv[1]))\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)
TAKER = NO_FCNTL + (
    "from pathlib import Path\n"
    "from salesmap_tui.engine.errors import LockHeld\n"
    "from salesmap_tui.engine.lock import RunLock\n"
    "lock = RunLock(Path(sys.argv[1]))\n"
    "try:\n"
    "    lock.acquire()\n"
    "except LockHeld as exc:\n"
    "    print('refused', getattr(exc, 'pid', None), exc)\n"
    "else:\n"
    "    print('taken', open(sys.argv[1]).read().strip())\n"
    "    lock.release()\n"
)


@posix_only
def test_exclusive_file_lock_refuses_a_second_process_naming_the_pid_and_survives_sigkill(
    tmp_path,
):
    path = tmp_path / "live.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        refused = py(TAKER, str(path))
        assert refused.stdout.startswith(f"refused {holder.pid} "), refused.stdout
        assert f"PID {holder.pid}" in refused.stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert path.exists()  # a killed holder leaves its file: stale, and taken over
    taken = py(TAKER, str(path))
    assert taken.stdout.split()[0] == "taken", taken.stdout + taken.stderr
    assert int(taken.stdout.split()[1]) != holder.pid
    assert not path.exists()  # released: removed


# --- symlinks and spellings -----------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize("without_fcntl", [False, True])
def test_a_planted_symlink_lock_is_refused_and_its_target_untouched(tmp_path, without_fcntl):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    lock = tmp_path / "live.db.lock"
    lock.symlink_to(target)
    if without_fcntl:
        done = py(TAKER.replace("except LockHeld", "except Exception"), str(lock))
        assert done.stdout.startswith("refused None "), done.stdout + done.stderr
        assert "symlink" in done.stdout
    else:
        with pytest.raises(LockFileUnusable, match="symlink") as info:
            RunLock(lock).acquire()
        assert info.value.exit_code == 2
    assert target.read_text() == "keep me\n"
    assert lock.is_symlink()


@posix_only
def test_one_lock_per_db_file_however_it_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "alias.db").symlink_to(tmp_path / "data" / "crm.db")
    monkeypatch.chdir(tmp_path)
    spellings = [
        Path("data/crm.db"),
        tmp_path / "data" / "crm.db",
        Path("./data/../data/crm.db"),
        Path("link/crm.db"),
        Path("data/alias.db"),
    ]
    locks = {Settings(db_path=p).lock_path for p in spellings}
    assert locks == {(tmp_path / "data" / "crm.db.lock").resolve()}
    held = RunLock(Settings(db_path=spellings[0]).lock_path)
    held.acquire()
    try:
        with pytest.raises(LockHeld):
            RunLock(Settings(db_path=spellings[-1]).lock_path).acquire()
    finally:
        held.release()


def test_lock_kind_here_is_the_native_one():
    assert lock_kind() == ("msvcrt" if os.name == "nt" else "flock")


# --- signals --------------------------------------------------------------------------------------
def test_cancel_signals_are_the_ones_this_platform_has():
    sigs = cancel_signals()
    assert sigs[0] == signal.SIGINT
    assert (getattr(signal, "SIGBREAK", None) in sigs) == hasattr(signal, "SIGBREAK")
    assert exit_code_for_signal(signal.SIGINT) == 130
    assert exit_code_for_signal(signal.SIGTERM) == 143
