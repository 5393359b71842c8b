"""Locked and missing files: the swap target refused (with a real holder), the temp DB or the
checkpoint dir removed mid-run, the backup dir not writable.

On Linux an open file never blocks a rename, so the refusal is injected at `os.replace` for the
live path only; the holder is a real process with the live DB open, which psutil must name.
CI runs as root (file modes are ignored), so an unwritable backup dir is injected as EACCES.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine import backup, files
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.events import CheckpointSaved, EngineEvent, PhaseChanged, RunResult
from salesmap_tui.engine.runs import snapshot
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import make_settings
from .conftest import SECRET
from .killharness import TERMINAL, dump_db, integrity


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=9, scale=40, forms=2, rate_limit=0, token=SECRET)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settings_for(root: Path, server: SandboxServer, **changes: Any) -> Settings:
    return make_settings(
        root, server, checkpoint_interval=1, concurrency=1, token=server.token, **changes
    )


def run(settings: Settings, on_event: Any = None) -> RunResult:
    return run_snapshot(settings, on_event or (lambda event: None))


class Workspace:
    def __init__(self, root: Path, server: SandboxServer) -> None:
        self.root = root
        self.server = server
        self.db = root / "salesmap_latest.db"
        for _ in range(2):  # a live DB and a backup
            assert run(self.settings()).status == "done"
        server.set_day(2)
        ref = root.parent / "reference"
        ref.mkdir()
        shutil.copy2(self.db, ref / self.db.name)
        assert run(settings_for(ref, server, no_backup=True)).status == "done"
        self.reference = dump_db(ref / self.db.name)
        self.before = {p: sha(p) for p in [self.db, *(root / "backups").glob("*.db.gz")]}

    def settings(self, **changes: Any) -> Settings:
        return settings_for(self.root, self.server, **changes)

    def assert_untouched(self) -> None:
        for path, digest in self.before.items():
            assert path.is_file() and sha(path) == digest, f"{path.name} changed"

    def assert_next_run_works(self) -> None:
        result = run(self.settings(resume=True))
        assert (result.status, result.exit_code) == ("done", 0), result.message
        assert integrity(self.db) == "ok"
        assert dump_db(self.db) == self.reference
        for path, digest in self.before.items():
            if path != self.db:
                assert sha(path) == digest, f"backup {path.name} changed"
        last: dict[str, str] = {}
        for line in (self.root / "logs" / "run_history.jsonl").read_text().splitlines():
            rec = json.loads(line)
            last[rec["run_tag"]] = rec["status"]
        assert set(last.values()) <= TERMINAL, last


@pytest.fixture
def ws(tmp_path: Path, sandbox: SandboxServer) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    root.mkdir()
    yield Workspace(root, sandbox)


def _refuse_live(live: Path, code: int = errno.EBUSY) -> Any:
    def replace(src: Path, dst: Path) -> None:
        if Path(dst).absolute() == live.absolute():
            raise OSError(code, f"{os.strerror(code)} (injected)", str(dst))
        os.replace(src, dst)

    return replace


def test_swap_refused_falls_back_and_names_the_holder(ws: Workspace, monkeypatch) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; f = open(sys.argv[1], 'rb'); print('ok', flush=True); "
            "time.sleep(60)",
            str(ws.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        failing = functools.partial(
            files.replace_file_with_retry, replace=_refuse_live(ws.db), sleep=lambda s: None
        )
        monkeypatch.setattr(snapshot, "replace_file_with_retry", failing)
        # --swap rename: auto would copy in place (the holder has the file open)
        result = run(ws.settings(swap="rename"))
    finally:
        holder.kill()
        holder.wait()
    assert (result.status, result.exit_code, result.replaced) == ("fallback", 3, False)
    ws.assert_untouched()
    fallback = ws.db.with_name(f"salesmap_latest_{result.run_tag}.db")
    assert result.fallback_path == str(fallback)
    assert integrity(fallback) == "ok" and dump_db(fallback) == ws.reference
    assert any(f"PID {holder.pid}" in e for e in result.errors), result.errors
    last = (ws.root / "logs" / "run_history.jsonl").read_text().splitlines()[-1]
    record = json.loads(last)
    assert record["status"] == "fallback" and record["fallback_path"] == str(fallback)
    log = Path(result.log_path).read_text()
    assert f"PID {holder.pid}" in log and str(fallback) in log
    monkeypatch.undo()
    ws.assert_next_run_works()


def test_swap_and_fallback_both_refused_keep_the_temp_db(ws: Workspace, monkeypatch) -> None:
    def refuse(src: Path, dst: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system (injected)", str(dst))

    failing = functools.partial(
        files.replace_file_with_retry, replace=refuse, copy=refuse, sleep=lambda s: None
    )
    monkeypatch.setattr(snapshot, "replace_file_with_retry", failing)
    result = run(ws.settings(swap="rename"))
    ws.assert_untouched()
    assert not result.replaced and result.exit_code != 0
    # the new snapshot must still exist somewhere the result names
    where = result.fallback_path or result.temp_db_path
    assert where and Path(where).is_file(), result
    assert Path(where).as_posix() in result.message, result.message
    assert dump_db(Path(where)) == ws.reference
    monkeypatch.undo()
    ws.assert_next_run_works()


def _unlink_db(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        p.unlink(missing_ok=True)


@pytest.mark.parametrize("when", ["crawl", "swap"])
def test_temp_db_removed_mid_run(ws: Workspace, when: str) -> None:
    removed: list[str] = []

    def sink(event: EngineEvent) -> None:
        if removed:
            return
        hit = (
            when == "crawl"
            and isinstance(event, CheckpointSaved)
            and event.phase == "crawl"
            and any(s["pages"] for s in event.endpoints.values())
        ) or (when == "swap" and isinstance(event, PhaseChanged) and event.phase == "swap")
        if hit:
            temp = next(ws.root.glob("salesmap_latest.db.*.tmp"))
            _unlink_db(temp)
            removed.append(str(temp))

    result = run(ws.settings(), sink)
    assert removed, "the temp DB was never removed"
    assert (result.status, result.exit_code) == ("failed", 1), result.message
    assert not result.replaced and result.fallback_path is None
    ws.assert_untouched()
    assert result.errors
    ws.assert_next_run_works()


def test_checkpoint_dir_removed_mid_run(ws: Workspace) -> None:
    removed: list[bool] = []

    def sink(event: EngineEvent) -> None:
        if not removed and isinstance(event, CheckpointSaved) and event.phase == "crawl":
            shutil.rmtree(ws.root / "logs" / "checkpoints")
            removed.append(True)

    result = run(ws.settings(), sink)
    assert removed
    # the next save recreates the directory: the run is not harmed
    assert (result.status, result.exit_code) == ("done", 0), result.message
    assert dump_db(ws.db) == ws.reference
    cp = json.loads(
        (ws.root / "logs" / "checkpoints" / f"checkpoint_{result.run_tag}.json").read_text()
    )
    assert cp["done"] is True


def test_unwritable_backup_dir_fails_cleanly(ws: Workspace, monkeypatch) -> None:
    real = backup.open_private
    backup_dir = (ws.root / "backups").absolute()

    def refuse(path: Path, *a: Any, **k: Any) -> Any:
        if Path(path).absolute().parent == backup_dir:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(backup, "open_private", refuse)
    result = run(ws.settings())
    assert (result.status, result.exit_code) == ("failed", 1), result.message
    assert "Permission denied" in result.message and "backups" in result.message
    ws.assert_untouched()
    assert not list((ws.root / "backups").glob("*.tmp"))
    # --no-backup gets past it; the refusal stays in place for that run
    result = run(ws.settings(no_backup=True))
    assert (result.status, result.exit_code) == ("done", 0), result.message
    assert dump_db(ws.db) == ws.reference
    monkeypatch.undo()
