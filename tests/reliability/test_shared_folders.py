"""Shared folders: several DBs, other users, planted symlinks, crafted state files.

Two DBs with the same stem share one backup folder; symlinks are planted where the tool writes
its history, checkpoints, run logs and temp DB; a dashboard's group on the live DB must survive a
swap and a restore; a checkpoint that names another SQLite file as its temp DB must be refused.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.api import restore_backup, run_snapshot, verify_backup
from salesmap_tui.engine.backup import apply_retention, list_backups
from salesmap_tui.engine.backup_owner import owner_tag, read_owner
from salesmap_tui.engine.checkpoint import CheckpointManager
from salesmap_tui.engine.errors import BadCheckpoint, SalesmapTuiError
from salesmap_tui.engine.events import CheckpointSaved
from salesmap_tui.sandbox import SandboxServer

from ..conftest import make_settings


def settings_at(db: Path, server: SandboxServer, **changes: Any) -> Settings:
    values: dict[str, Any] = {"db_path": db, "log_dir": db.parent / "logs"}
    values.update(changes)
    return make_settings(db.parent, server, **values)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- one backup folder, two DBs of the same stem -----------------------------------------------
def test_two_dbs_share_a_backup_folder(tmp_path: Path, sandbox: SandboxServer) -> None:
    shared = tmp_path / "shared"
    a = settings_at(tmp_path / "a" / "crm.db", sandbox, backup_dir=shared, keep_backups=2)
    b = settings_at(tmp_path / "b" / "crm.db", sandbox, backup_dir=shared, keep_backups=2)
    for s in (a, b):
        s.db_path.parent.mkdir()
    for _ in range(4):  # three backups each; each run's retention keeps its own two
        for s in (a, b):
            assert run_snapshot(s).exit_code == 0
    mine = {s.db_path.parent.name: list_backups(shared, s.db_path) for s in (a, b)}
    assert [len(v) for v in mine.values()] == [2, 2], mine
    assert len(list(shared.glob("crm_*.db.gz"))) == 4
    for s in (a, b):
        owners = {read_owner(info.path) for info in list_backups(shared, s.db_path)}
        assert owners == {str(s.db_path.resolve())}, owners
    # each DB's restore list offers only its own backups, and they hold its snapshots
    a_tags = {i.run_tag for i in mine["a"]}
    assert a_tags.isdisjoint({i.run_tag for i in mine["b"]})
    # a backup from before owners were recorded stays, while the folder is shared
    legacy = shared / "crm_20200101T000000Z-0000.db.gz"
    shutil.copyfile(mine["a"][0].path, legacy)
    with open(legacy, "r+b") as fh:  # the header without its comment: an older backup
        data = fh.read()
        end = data.index(b"\0", 10)
        fh.seek(0)
        fh.write(b"\x1f\x8b\x08\x00" + data[4:10] + data[end + 1 :])
        fh.truncate()
    assert read_owner(legacy) is None
    assert apply_retention(shared, a.db_path, 1) == [mine["a"][1].path]
    assert legacy.exists()


def test_orphan_sweep_leaves_another_dbs_partial_backup(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    a = settings_at(tmp_path / "a" / "crm.db", sandbox, backup_dir=shared)
    b_db = tmp_path / "b" / "crm.db"
    a.db_path.parent.mkdir()
    theirs = shared / f"crm_20260101T000000Z-0000.db.gz.{owner_tag(b_db)}0123456789abcdef.tmp"
    ours = shared / f"crm_20260101T000000Z-0000.db.gz.{owner_tag(a.db_path)}0123456789abcdef.tmp"
    for p in (theirs, ours):
        p.write_bytes(b"partial")
    assert run_snapshot(a).exit_code == 0
    assert theirs.exists() and not ours.exists()


# --- planted symlinks ----------------------------------------------------------------------------
def interrupted_run(settings: Settings) -> str:
    """A run stopped after its first checkpoint; returns its run tag."""
    cancel = threading.Event()

    def stop(event: Any) -> None:
        # after committed pages (a run that committed none leaves nothing to resume)
        if isinstance(event, CheckpointSaved) and any(
            ep.get("pages") for ep in event.endpoints.values()
        ):
            cancel.set()

    result = run_snapshot(settings.replace(checkpoint_interval=1), stop, cancel)
    assert result.exit_code == 130, result.message
    return result.run_tag


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_bytes(b"precious\n")
    return target


def test_planted_history_symlink_is_not_followed(
    tmp_path: Path, sandbox: SandboxServer, victim: Path
) -> None:
    s = make_settings(tmp_path, sandbox)
    s.log_dir.mkdir()
    s.history_path.symlink_to(victim)
    result = run_snapshot(s)
    assert result.exit_code == 1 and "run history" in result.message, result.message
    assert victim.read_bytes() == b"precious\n"
    assert not s.db_path.exists()


def test_planted_checkpoint_tmp_symlink_is_replaced_not_followed(
    tmp_path: Path, sandbox: SandboxServer, victim: Path
) -> None:
    s = make_settings(tmp_path, sandbox)
    tag = interrupted_run(s)
    tmp = s.checkpoint_dir / f"checkpoint_{tag}.json.tmp"
    tmp.symlink_to(victim)
    result = run_snapshot(s.replace(resume_run_tag=tag))
    assert result.exit_code == 0, result.message
    assert victim.read_bytes() == b"precious\n"
    assert not tmp.is_symlink()
    assert json.loads((s.checkpoint_dir / f"checkpoint_{tag}.json").read_text())["done"]


def test_planted_run_log_symlink_is_not_followed(
    tmp_path: Path, sandbox: SandboxServer, victim: Path
) -> None:
    s = make_settings(tmp_path, sandbox)
    tag = interrupted_run(s)
    log = s.log_path(tag)
    log.unlink()
    log.symlink_to(victim)
    with pytest.raises(SalesmapTuiError, match="run log"):
        run_snapshot(s.replace(resume_run_tag=tag))
    assert victim.read_bytes() == b"precious\n"


@pytest.mark.parametrize("suffix", ["", "-wal", "-journal"])
def test_planted_temp_db_symlinks_are_not_written_through(
    tmp_path: Path, sandbox: SandboxServer, victim: Path, suffix: str
) -> None:
    s = make_settings(tmp_path, sandbox)
    tag = interrupted_run(s)
    temp = s.temp_db_path(tag)
    link = temp.with_name(temp.name + suffix)
    if suffix == "":
        temp.unlink()
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    result: Any
    try:
        result = run_snapshot(s.replace(resume_run_tag=tag))
    except SalesmapTuiError as exc:
        result = exc
    assert victim.read_bytes() == b"precious\n", f"{suffix}: written through the link"
    if suffix:
        assert result.exit_code == 0, result  # the link was ours to remove
    else:
        assert not (s.db_path.exists() and s.db_path.is_symlink())


def test_planted_lock_symlink_is_not_followed(
    tmp_path: Path, sandbox: SandboxServer, victim: Path
) -> None:
    s = make_settings(tmp_path, sandbox)
    s.lock_path.symlink_to(victim)
    with pytest.raises(SalesmapTuiError) as info:
        run_snapshot(s)
    assert info.value.exit_code == 2
    assert victim.read_bytes() == b"precious\n", "the lock truncated the link's target"
    assert not s.db_path.exists()


# --- group ownership ---------------------------------------------------------------------------
def dashboard_group() -> int:
    for name in ("daemon", "nogroup", "users"):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    raise AssertionError("no spare group on this machine")


def test_group_and_mode_kept_across_swap_and_restore(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    s = make_settings(tmp_path, sandbox)
    assert run_snapshot(s).exit_code == 0
    gid = dashboard_group()
    os.chown(s.db_path, -1, gid)
    os.chmod(s.db_path, 0o640)
    assert run_snapshot(s).exit_code == 0  # a rename swap
    st = s.db_path.stat()
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid, 0o640), "lost after a swap"
    backup = list_backups(s.backup_dir, s.db_path)[0].path
    restore_backup(s, verify_backup(s, backup))
    st = s.db_path.stat()
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid, 0o640), "lost after a restore"


# --- crafted checkpoint ------------------------------------------------------------------------
def test_checkpoint_naming_another_file_is_refused(tmp_path: Path, sandbox: SandboxServer) -> None:
    s = make_settings(tmp_path, sandbox)
    tag = interrupted_run(s)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE run_info (run_tag TEXT)")
    conn.execute("INSERT INTO run_info VALUES (?)", (tag,))
    conn.commit()
    conn.close()
    before = sha(other)
    path = s.checkpoint_dir / f"checkpoint_{tag}.json"
    data = json.loads(path.read_text())
    data["temp_db_path"] = str(other)
    path.write_text(json.dumps(data))
    live_before = s.db_path.exists()
    with pytest.raises(BadCheckpoint, match="temp DB"):
        run_snapshot(s.replace(resume_run_tag=tag))
    assert sha(other) == before and other.exists()
    assert s.db_path.exists() == live_before
    # `--resume` skips it with a warning and starts afresh, never touching that file
    result = run_snapshot(s.replace(resume=True))
    assert result.exit_code == 0 and result.run_tag != tag
    assert sha(other) == before
    assert CheckpointManager(s.checkpoint_dir).load(tag).temp_db_path == str(other)


# --- leftovers swept under the lock -------------------------------------------------------------
def test_superseded_temp_db_and_old_restore_copies_are_swept(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    s = make_settings(tmp_path, sandbox)
    assert run_snapshot(s).exit_code == 0
    old_tag = interrupted_run(s)
    old_temp = s.temp_db_path(old_tag)
    assert old_temp.is_file()
    assert run_snapshot(s).exit_code == 0  # a fresh run goes live: newer than the interrupted one
    # `--resume-run-tag` may still force it for a while; a day later it is swept
    os.utime(s.checkpoint_dir / f"checkpoint_{old_tag}.json", (1, 1))
    stale = s.db_path.with_name(s.db_path.name + ".restore-0123abcd.tmp")
    fresh = s.db_path.with_name(s.db_path.name + ".restore-4567cdef.tmp")
    for p in (stale, fresh):
        p.write_bytes(b"SQLite format 3\0")
    os.utime(stale, (1, 1))
    result = run_snapshot(s)
    assert result.exit_code == 0
    assert not old_temp.exists(), "a superseded temp DB stayed"
    assert not stale.exists() and fresh.exists()
    log = Path(str(result.log_path)).read_text()
    assert f"run {old_tag} was superseded" in log and "restore that did not finish" in log
