"""Backups: consistent gzip copies, retention, verified restore that never harms the live DB."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.backup import (
    BackupInfo,
    RestoreFailed,
    apply_retention,
    list_backups,
    make_backup,
    verify_backup,
)
from salesmap_tui.engine.errors import BadBackup, LockHeld
from salesmap_tui.engine.events import BackupMade, EngineEvent
from salesmap_tui.engine.history import HistoryEntry, read_history
from salesmap_tui.engine.runs.restore import restore_backup
from salesmap_tui.engine.writer import TableWriter, prepare_connection

T1, T2, T3 = "20260101T000000Z-0001", "20260102T000000Z-0002", "20260103T000000Z-0003"


def make_db(path: Path, rows: int, *, label: str = "v") -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE deal (id TEXT PRIMARY KEY, label)")
    conn.executemany("INSERT INTO deal VALUES (?, ?)", [(str(i), label) for i in range(rows)])
    conn.execute("CREATE TABLE team (id TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()


def deal_labels(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT label FROM deal")}
    finally:
        conn.close()


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        db_path=tmp_path / "live.db",
        log_dir=tmp_path / "logs",
        backup_dir=tmp_path / "backups",
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# --- make_backup ----------------------------------------------------------------------------------


def test_make_backup_is_a_gzip_of_a_consistent_copy(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    make_db(db, 100)
    dest = tmp_path / "backups" / f"live_{T1}.db.gz"
    size = make_backup(db, dest)
    assert size == dest.stat().st_size > 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
    assert leftovers(dest.parent) == []
    raw = tmp_path / "check.db"
    raw.write_bytes(gzip.decompress(dest.read_bytes()))
    conn = sqlite3.connect(raw)
    assert conn.execute("SELECT COUNT(*) FROM deal").fetchone()[0] == 100
    conn.close()


def test_make_backup_of_a_wal_db_with_uncheckpointed_rows(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    conn = prepare_connection(db)
    TableWriter(conn, "deal").write_page([{"id": i} for i in range(50)])
    assert Path(str(db) + "-wal").stat().st_size > 0  # rows only in the WAL so far
    dest = tmp_path / "b" / f"live_{T1}.db.gz"
    make_backup(db, dest)
    conn.close()
    raw = tmp_path / "check.db"
    raw.write_bytes(gzip.decompress(dest.read_bytes()))
    check = sqlite3.connect(raw)
    assert check.execute("SELECT COUNT(*) FROM deal").fetchone()[0] == 50
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    check.close()


def test_make_backup_failures_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_backup(tmp_path / "missing.db", tmp_path / "b" / "x.db.gz")
    not_sqlite = tmp_path / "junk.db"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    (tmp_path / "b").mkdir(exist_ok=True)
    with pytest.raises(OSError, match="cannot back up"):
        make_backup(not_sqlite, tmp_path / "b" / "y.db.gz")
    assert list((tmp_path / "b").iterdir()) == []


# --- list / retention -----------------------------------------------------------------------------


def test_list_backups_and_retention(tmp_path: Path) -> None:
    bdir = tmp_path / "backups"
    bdir.mkdir()
    db = tmp_path / "live.db"
    for i, tag in enumerate((T2, T1, T3)):
        p = bdir / f"live_{tag}.db.gz"
        p.write_bytes(b"x" * (i + 1))
        os.utime(p, (1000 + i, 1000 + i))
    (bdir / "live_manual.db.gz").write_bytes(b"mine")
    (bdir / "other_20260109T000000Z-0009.db.gz").write_bytes(b"other db")
    (bdir / "live_20260109T000000Z-0009.db.gz.1234.tmp").write_bytes(b"partial")
    infos = list_backups(bdir, db)
    assert [i.run_tag for i in infos] == [T3, T2, T1, None]
    assert infos[0] == BackupInfo(bdir / f"live_{T3}.db.gz", 3, 1002.0, T3)
    assert apply_retention(bdir, db, keep=0) == []  # 0 keeps all
    deleted = apply_retention(bdir, db, keep=1)
    assert deleted == [bdir / f"live_{T2}.db.gz", bdir / f"live_{T1}.db.gz"]
    remaining = sorted(p.name for p in bdir.iterdir())
    assert f"live_{T3}.db.gz" in remaining
    assert "live_manual.db.gz" in remaining  # no run tag: not ours to delete
    assert "other_20260109T000000Z-0009.db.gz" in remaining
    assert list_backups(tmp_path / "nope", db) == []


# --- verify ---------------------------------------------------------------------------------------


def test_verify_good_backup(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    src = tmp_path / "src.db"
    make_db(src, 3000)
    backup = s.backup_path(T1)
    make_backup(src, backup)
    progress: list[tuple[str, float]] = []
    v = verify_backup(s, backup, lambda st, f: progress.append((st, f)), threading.Event())
    assert v.tables == {"deal": 3000, "team": 0}
    assert v.temp_path.parent == tmp_path and v.temp_path.name.startswith("live.db.restore-")
    assert v.temp_path.name.endswith(".tmp") and v.size_bytes == v.temp_path.stat().st_size
    assert stat.S_IMODE(v.temp_path.stat().st_mode) == 0o600
    assert progress[-1] == ("integrity", 1.0)
    fractions = [f for st, f in progress if st == "gunzip"]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert not (tmp_path / "live.db").exists()  # the live DB is never touched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"plain text, not gzip", "is not a gzip file"),
        (gzip.compress(b"no sqlite here" * 100), "does not hold a SQLite database"),
        (None, "is truncated"),
        (None, "integrity check|malformed"),
    ],
    ids=["not-gzip", "not-sqlite", "truncated", "corrupt"],
)
def test_verify_rejects_bad_backups(tmp_path: Path, content: bytes | None, message: str) -> None:
    s = settings_for(tmp_path)
    make_db(s.db_path, 5, label="live")
    before = s.db_path.read_bytes()
    src = tmp_path / "src.db"
    make_db(src, 5000)
    raw = src.read_bytes()
    bad = tmp_path / "bad.db.gz"
    if content is not None:
        bad.write_bytes(content)
    elif "truncated" in message:
        full = gzip.compress(raw)
        bad.write_bytes(full[: len(full) // 2])
    else:
        # a valid header but a page overwritten with garbage
        damaged = bytearray(raw)
        page = 4096
        damaged[page * 2 : page * 3] = b"\xab" * page
        bad.write_bytes(gzip.compress(bytes(damaged)))
    with pytest.raises(BadBackup, match=message) as info:
        verify_backup(s, bad, None, threading.Event())
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path) == []
    assert s.db_path.read_bytes() == before


def test_verify_missing_and_cancelled(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    with pytest.raises(BadBackup, match="cannot read backup"):
        verify_backup(s, tmp_path / "nope.db.gz", None, threading.Event())
    src = tmp_path / "src.db"
    make_db(src, 10)
    backup = tmp_path / "b.db.gz"
    make_backup(src, backup)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BadBackup, match="cancelled"):
        verify_backup(s, backup, None, cancel)
    assert leftovers(tmp_path) == []


# --- restore --------------------------------------------------------------------------------------


def test_restore_swaps_in_and_backs_up_the_live_db(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    make_db(s.db_path, 5, label="live")
    os.chmod(s.db_path, 0o640)  # a dashboard user was granted read
    Path(str(s.db_path) + "-wal").write_bytes(b"")  # a stale sidecar must not survive
    src = tmp_path / "src.db"
    make_db(src, 7, label="old")
    backup = s.backup_path(T1)
    make_backup(src, backup)
    v = verify_backup(s, backup, None, threading.Event())
    events: list[EngineEvent] = []
    result = restore_backup(s, v, events.append)
    assert result.db_path == s.db_path and result.restored_from == backup
    assert result.tables == {"deal": 7, "team": 0}
    assert deal_labels(s.db_path) == {"old"}
    assert stat.S_IMODE(s.db_path.stat().st_mode) == 0o640
    assert not v.temp_path.exists()
    assert not Path(str(s.db_path) + "-wal").exists()
    # the replaced live DB is in a safety backup
    assert result.previous_backup_path == s.backup_path(result.run_tag)
    assert result.previous_backup_path.exists()
    assert [e for e in events if isinstance(e, BackupMade)] == [
        BackupMade(str(result.previous_backup_path), result.previous_backup_path.stat().st_size)
    ]
    check = tmp_path / "check.db"
    check.write_bytes(gzip.decompress(result.previous_backup_path.read_bytes()))
    assert deal_labels(check) == {"live"}
    # one history record, and the restore's own run log
    entries = [e for e in read_history(s.history_path) if isinstance(e, HistoryEntry)]
    assert [e.record["status"] for e in entries] == ["done"]
    rec = entries[-1].record
    assert rec["log_path"] and "restore" in Path(rec["log_path"]).read_text()
    assert rec["kind"] == "restore" and rec["status"] == "done" and rec["replaced"] is True
    assert rec["run_tag"] == result.run_tag
    assert rec["backup_path"] == str(result.previous_backup_path)
    assert rec["final_db_path"] == str(s.db_path)
    assert rec["tables"] == {"deal": {"rows": 7, "cols": 2}, "team": {"rows": 0, "cols": 1}}
    assert rec["error_count"] == 0 and rec["finished_at"]
    json.dumps(rec)


def test_restore_without_a_live_db(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    src = tmp_path / "src.db"
    make_db(src, 2, label="old")
    backup = tmp_path / "b.db.gz"
    make_backup(src, backup)
    v = verify_backup(s, backup, None, threading.Event())
    result = restore_backup(s, v, lambda e: None)
    assert result.previous_backup_path is None
    assert deal_labels(s.db_path) == {"old"}
    assert stat.S_IMODE(s.db_path.stat().st_mode) == 0o600


def test_restore_refused_while_another_run_holds_the_lock(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    make_db(s.db_path, 5, label="live")
    before = s.db_path.read_bytes()
    src = tmp_path / "src.db"
    make_db(src, 2, label="old")
    backup = tmp_path / "b.db.gz"
    make_backup(src, backup)
    v = verify_backup(s, backup, None, threading.Event())
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from salesmap_tui.engine.lock import RunLock\n"
        "RunLock(Path(sys.argv[1])).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(s.lock_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=f"PID {proc.pid}"):
            restore_backup(s, v, lambda e: None)
    finally:
        proc.kill()
        proc.wait()
    assert s.db_path.read_bytes() == before
    assert not v.temp_path.exists()


def test_restore_failure_keeps_the_live_db(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    make_db(s.db_path, 5, label="live")
    before = s.db_path.read_bytes()
    src = tmp_path / "src.db"
    make_db(src, 2, label="old")
    backup = tmp_path / "b.db.gz"
    make_backup(src, backup)
    v = verify_backup(s, backup, None, threading.Event())
    # the safety backup cannot be written: a file stands where the backup dir should be
    s.backup_dir.write_bytes(b"not a directory")
    with pytest.raises(RestoreFailed, match="restore failed while backing up the live DB"):
        restore_backup(s, v, lambda e: None)
    assert s.db_path.read_bytes() == before
    assert not v.temp_path.exists()
    entries = [e for e in read_history(s.history_path) if isinstance(e, HistoryEntry)]
    assert [e.record["status"] for e in entries] == ["failed"]
    assert entries[-1].record["error_count"] == 1
