"""What the dashboard shows before any run of its own: the newest run, the live DB, who holds
the lock and which events file that run writes. Plain Python (no Textual); blocking file and
SQLite reads, so the app calls these from thread workers.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sqlite3
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from salesmap_tui.config import Settings
from salesmap_tui.engine.events import EVENTS_SUFFIX
from salesmap_tui.engine.history import last_records
from salesmap_tui.engine.shrink import Shrink, shrunk_tables, table_rows
from salesmap_tui.engine.webform import open_readonly


@dataclass(frozen=True)
class LiveDb:
    path: str
    exists: bool
    run_tag: str | None = None
    mtime: float | None = None
    size_bytes: int | None = None
    tables: dict[str, int] = field(default_factory=dict)  # rows per table (manifest)
    error: str | None = None


@dataclass(frozen=True)
class HeldBack:
    """A snapshot the shrink guard held back (exit 5), still beside the live DB."""

    run_tag: str
    path: str
    started_at: str | None
    finished_at: str | None
    shrinks: tuple[Shrink, ...]  # the list tables that lost rows against the live DB now
    reason: str  # the engine's words when it held the snapshot back
    size_bytes: int | None = None


@dataclass(frozen=True)
class Overview:
    last_run: dict[str, Any] | None  # the newest history record by start time (its last line)
    live: LiveDb
    held_back: tuple[HeldBack, ...] = ()  # newest first


@dataclass(frozen=True)
class Holder:
    """The process holding the DB's lock (another salesmap-tui run)."""

    pid: int
    started: float | None  # epoch seconds
    cmdline: str

    def describe(self) -> str:
        return f"PID {self.pid}" + (f" · {self.cmdline}" if self.cmdline else "")


def newest_run(settings: Settings) -> dict[str, Any] | None:
    """The newest run by start time, as `salesmap-tui history` orders them (last line per tag)."""
    records = last_records(settings.history_path)
    if not records:
        return None
    return max(records.values(), key=lambda r: (str(r.get("started_at") or ""), r["run_tag"]))


def live_db(path: Path) -> LiveDb:
    try:
        st = path.stat()
    except FileNotFoundError:
        return LiveDb(str(path), False)
    except OSError as exc:
        return LiveDb(str(path), False, error=exc.strerror or str(exc))
    tag: str | None = None
    tables: dict[str, int] = {}
    error: str | None = None
    try:
        conn = open_readonly(path)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "run_info" in names:
                row = conn.execute("SELECT run_tag FROM run_info LIMIT 1").fetchone()
                tag = str(row[0]) if row and row[0] else None
            if "manifest" in names:
                for name, rows in conn.execute("SELECT table_name, rows FROM manifest"):
                    tables[str(name)] = int(rows or 0)
            if "webform_history" in names:
                n = conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0]
                tables["webform_history"] = int(n)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        error = str(exc)
    return LiveDb(str(path), True, tag, st.st_mtime, st.st_size, tables, error)


def overview(settings: Settings) -> Overview:
    return Overview(newest_run(settings), live_db(settings.db_path), held_back(settings))


def held_back(settings: Settings) -> tuple[HeldBack, ...]:
    """The held-back snapshots of this DB, newest first, each compared with the live DB as it is
    now (every list table that lost rows, not only those past the guard's limit)."""
    from salesmap_tui.engine import api

    live = table_rows(settings.db_path)
    out = []
    for record in api.held_back_snapshots(settings):
        path = Path(str(record.get("fallback_path")))
        try:
            size_bytes: int | None = path.stat().st_size
        except OSError:
            continue  # gone since the engine listed it
        shrinks = shrunk_tables(live, table_rows(path), 0.0, min_rows=1)
        out.append(
            HeldBack(
                run_tag=str(record.get("run_tag") or "?"),
                path=str(path),
                started_at=record.get("started_at"),
                finished_at=record.get("finished_at"),
                shrinks=tuple(shrinks),
                reason=str(record.get("reason") or ""),
                size_bytes=size_bytes,
            )
        )
    return tuple(out)


def discard_held_back(settings: Settings, path: Path) -> None:
    """Delete a held-back snapshot, and nothing else (the live DB, backups, history stay).

    Only a file the engine lists as held back now: one let in (or discarded) meanwhile by another
    window is not there any more, and the live DB is never one.
    """
    from salesmap_tui.engine import api
    from salesmap_tui.engine.errors import UsageError

    listed = {str(r.get("fallback_path")) for r in api.held_back_snapshots(settings)}
    live = settings.db_path
    if str(path) not in listed or (live.exists() and path.resolve() == live.resolve()):
        raise UsageError(f"{path} is not a held-back snapshot any more (let in or removed)")
    path.unlink()


# --- the lock's holder ---------------------------------------------------------------------------
def _flock_pids(lock_path: Path) -> list[int]:
    """PIDs holding an flock on `lock_path`, from /proc/locks (Linux); [] if unknown."""
    try:
        st = lock_path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    inode = st.st_ino
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    pids: list[int] = []
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue
        try:
            dev_major, dev_minor, ino = parts[5].split(":")
            if int(ino) == inode and int(dev_major, 16) == major and int(dev_minor, 16) == minor:
                pids.append(int(parts[4]))
        except ValueError:
            continue
    return pids


def _pid_in_file(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text(encoding="ascii", errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _holds_open(pid: int, lock_path: Path) -> bool:
    try:
        files = psutil.Process(pid).open_files()
    except psutil.AccessDenied:
        return True  # another user's process that exists: trust the PID it wrote
    except psutil.Error:
        return False
    target = str(lock_path.resolve())
    return any(f.path == target for f in files)


def find_holder(lock_path: Path, me: int | None = None) -> Holder | None:
    """The other live process holding the lock, or None (never takes the lock itself)."""
    me = os.getpid() if me is None else me
    if not lock_path.exists():
        return None
    pids = _flock_pids(lock_path)
    if not pids and not Path("/proc/locks").exists():
        pid = _pid_in_file(lock_path)
        if pid is not None and psutil.pid_exists(pid) and _holds_open(pid, lock_path):
            pids = [pid]
    for pid in pids:
        if pid == me:
            continue
        started: float | None = None
        cmdline = ""
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            started = proc.create_time()
            cmdline = " ".join(proc.cmdline())
        return Holder(pid, started, cmdline)
    return None


def events_file_of(log_dir: Path, holder: Holder) -> Path | None:
    """The events file the holder's run writes: the newest one touched since it started."""
    try:
        candidates = [p for p in log_dir.iterdir() if p.name.endswith(EVENTS_SUFFIX)]
    except OSError:
        return None
    newest: tuple[float, Path] | None = None
    for path in candidates:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if holder.started is not None and mtime < holder.started - 1:
            continue  # an older run's file
        if newest is None or mtime > newest[0]:
            newest = (mtime, path)
    return newest[1] if newest else None


def process_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


# --- what a backup holds -------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupContents:
    run_tag: str | None  # the run whose snapshot the backup holds
    finished_at: str | None  # when that snapshot was finished (its data's date)
    tables: dict[str, int]  # rows per table
    error: str | None = None


def backup_contents(path: Path, cancel: threading.Event | None = None) -> BackupContents:
    """Gunzip a backup into a private temp dir and read its run_info and row counts.

    The copy is deleted before returning. `cancel` stops a long gunzip between chunks.
    """
    tmpdir = tempfile.mkdtemp(prefix="salesmap-backup-peek-")
    target = Path(tmpdir) / "peek.db"
    try:
        with gzip.open(path, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                if cancel is not None and cancel.is_set():
                    return BackupContents(None, None, {}, "cancelled")
                dst.write(chunk)
        db = live_db(target)
        if db.error:
            return BackupContents(None, None, {}, f"not a readable SQLite file: {db.error}")
        finished: str | None = None
        conn = open_readonly(target)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "run_info" in names:
                sql = "SELECT finished_at, started_at FROM run_info LIMIT 1"
                row = conn.execute(sql).fetchone()
                if row:
                    finished = row[0] or row[1]
        finally:
            conn.close()
        return BackupContents(db.run_tag, finished, db.tables)
    except (OSError, EOFError, sqlite3.Error, zlib.error) as exc:
        return BackupContents(None, None, {}, str(exc) or type(exc).__name__)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
