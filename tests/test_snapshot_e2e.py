"""The snapshot engine end to end against the loopback sandbox (issue 3's acceptance)."""

from __future__ import annotations

import functools
import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from salesmap_tui.engine import files
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    RequestRetried,
    RunFinished,
    RunStarted,
)
from salesmap_tui.engine.history import HistoryEntry, read_history
from salesmap_tui.engine.runs import snapshot
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import (
    SNAPSHOT_TABLES,
    dataset_of,
    expected_records,
    make_settings,
    run,
    snapshot_of,
    table_records,
    webform_rows,
)


def history_records(path: Path) -> list[dict]:
    return [e.record for e in read_history(path) if isinstance(e, HistoryEntry)]


def test_full_run_matches_sandbox_value_for_value(settings, sandbox_config):
    result, rec = run(settings)
    assert result.exit_code == 0, result.message
    assert result.status == "done" and result.replaced
    db = settings.db_path
    data = dataset_of(sandbox_config)
    for table in SNAPSHOT_TABLES:
        got = table_records(db, table)
        want = expected_records(data, table)
        assert got.keys() == want.keys(), table
        for rid, record in want.items():
            assert got[rid] == record, (table, rid)
    # no temp DB, no -wal/-shm left next to the live DB
    leftovers = sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name + "."))
    assert leftovers == [db.name + ".lock"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    manifest = {r[0]: r[1:] for r in conn.execute("SELECT * FROM manifest")}
    run_info = conn.execute("SELECT run_tag, status, tool_version FROM run_info").fetchall()
    memo_payload = conn.execute("SELECT payload FROM memo LIMIT 1").fetchone()[0]
    conn.close()
    assert set(manifest) == set(SNAPSHOT_TABLES)
    assert manifest["deal"][0] == data.count("deal")
    assert json.loads(manifest["deal"][3]) == []
    assert run_info == [(result.run_tag, "done", "0.1.0")]
    assert "id" in json.loads(memo_payload)
    # events: started, progress per endpoint, finished
    assert len(rec.of(RunStarted)) == 1
    done = {e.endpoint for e in rec.of(EndpointProgress) if e.state == "done"}
    assert done == set(SNAPSHOT_TABLES)
    assert rec.of(RunFinished)[-1].result == result
    # history: a running line, then the done line with every contract field
    records = history_records(settings.history_path)
    assert [r["status"] for r in records] == ["running", "done"]
    last = records[-1]
    for key in [
        "run_tag",
        "kind",
        "status",
        "started_at",
        "finished_at",
        "duration_s",
        "db_path",
        "final_db_path",
        "temp_db_path",
        "backup_path",
        "log_path",
        "replaced",
        "fallback_path",
        "tables",
        "error_count",
        "errors",
        "webform",
    ]:
        assert key in last, key
    assert last["tables"]["lead"]["rows"] == data.count("lead")
    assert last["webform"]["status"] == "done"
    assert last["final_db_path"] == str(db)


def test_webform_history_is_incremental_and_filtered(tmp_path, sandbox, sandbox_config):
    settings = make_settings(tmp_path, sandbox)
    first, _ = run(settings)
    assert first.exit_code == 0
    rows1 = webform_rows(settings.db_path)
    assert rows1, "the sandbox has submissions from people with deals"
    data = dataset_of(sandbox_config)
    allowed = {str(d["peopleId"]) for d in data.iter_records("deal") if d.get("peopleId")}
    assert {r[1] for r in rows1} <= allowed
    assert first.webform is not None and first.webform.new_rows == len(rows1)
    # same day again: nothing new, rows carried over from the live DB
    second, _ = run(settings)
    assert webform_rows(settings.db_path) == rows1
    assert second.webform is not None and second.webform.new_rows == 0
    # next day: only the new submissions are added
    sandbox.set_day(2)
    third, _ = run(settings)
    rows3 = webform_rows(settings.db_path)
    assert set(rows1) < set(rows3)
    assert third.webform is not None and third.webform.new_rows == len(rows3) - len(rows1)


def test_second_run_backup_equals_first_snapshot_and_retention(settings):
    first, _ = run(settings)
    before = snapshot_of(settings.db_path)
    second, rec = run(settings)
    assert second.exit_code == 0
    assert second.backup_path is not None
    backup = Path(second.backup_path)
    # named by the run tag of the data it holds (CONTRACT.md, Files)
    assert backup.name == f"salesmap_latest_{first.run_tag}.db.gz"
    assert [e.path for e in rec.of(BackupMade)] == [str(backup)]
    restored = settings.db_path.with_name("restored.db")
    with gzip.open(backup, "rb") as src, restored.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    assert snapshot_of(restored) == before
    run(settings.replace(keep_backups=2))
    run(settings.replace(keep_backups=2))
    left = sorted(settings.backup_dir.glob("*.db.gz"))
    assert len(left) == 2


def test_max_retries_exceeded_fails_run_and_keeps_live_db(tmp_path, sandbox):
    settings = make_settings(tmp_path, sandbox)
    run(settings)
    live_before = settings.db_path.read_bytes()
    sandbox.reset_stats()
    sandbox.set_faults("503:1:burst=99:path=deal")
    result, rec = run(settings)
    sandbox.set_faults("")
    assert result.exit_code == 1 and result.status == "failed"
    assert any("max_retries_exceeded" in e for e in result.errors)
    assert settings.db_path.read_bytes() == live_before
    retries = [e for e in rec.of(RequestRetried) if e.endpoint == "deal"]
    assert [e.attempt for e in retries] == [1, 2, 3]
    # the error is in the temp DB's manifest, the log and the history record
    temp = Path(result.temp_db_path or "")
    conn = sqlite3.connect(temp)
    errors = json.loads(
        conn.execute("SELECT errors FROM manifest WHERE table_name='deal'").fetchone()[0]
    )
    conn.close()
    assert any("max_retries_exceeded" in e for e in errors)
    assert "max_retries_exceeded" in Path(result.log_path or "").read_text()
    last = history_records(settings.history_path)[-1]
    assert last["status"] == "failed" and last["error_count"] >= 1
    assert any("max_retries_exceeded" in e for e in last["errors"])
    # and the failed run can be resumed to completion once the API recovers
    resumed, _ = run(settings.replace(resume=True))
    assert resumed.exit_code == 0 and resumed.run_tag == result.run_tag


def test_forced_replace_failure_falls_back(settings, monkeypatch):
    run(settings)
    live_before = settings.db_path.read_bytes()

    def refuse(src: Path, dst: Path) -> None:
        raise PermissionError(13, "Permission denied (injected)", str(dst))

    failing = functools.partial(files.replace_file_with_retry, replace=refuse, sleep=lambda s: None)
    monkeypatch.setattr(snapshot, "replace_file_with_retry", failing)
    # --swap rename: with auto a refused rename is followed by the in-place copy
    result, _ = run(settings.replace(swap="rename"))
    assert result.exit_code == 3 and result.status == "fallback"
    assert not result.replaced
    fallback = settings.db_path.with_name(f"salesmap_latest_{result.run_tag}.db")
    assert result.fallback_path == str(fallback)
    assert fallback.is_file()
    assert settings.db_path.read_bytes() == live_before
    last = history_records(settings.history_path)[-1]
    assert last["fallback_path"] == str(fallback) and last["replaced"] is False
    assert last["final_db_path"] == str(settings.db_path)


def test_webform_only_touches_nothing_else(settings, sandbox):
    run(settings)
    before = snapshot_of(settings.db_path)
    rows_before = webform_rows(settings.db_path)
    sandbox.set_day(2)
    result, _ = run(settings.replace(webform_only=True))
    assert result.exit_code == 0 and result.kind == "webform"
    assert snapshot_of(settings.db_path) == before
    assert set(rows_before) < set(webform_rows(settings.db_path))
    conn = sqlite3.connect(settings.db_path)
    run_info = conn.execute("SELECT run_tag FROM run_info").fetchall()
    conn.close()
    assert result.run_tag not in {r[0] for r in run_info}
    last = history_records(settings.history_path)[-1]
    assert last["kind"] == "webform" and last["webform"]["new_rows"] > 0
    assert last["backup_path"] is None


def test_cancel_saves_checkpoint_and_resume_completes(tmp_path, sandbox_config):
    import threading

    cfg = SandboxConfig(
        seed=sandbox_config.seed, scale=400, forms=3, latency_ms=5, rate_limit=100_000
    )
    with SandboxServer(cfg) as server:
        settings = make_settings(tmp_path, server, checkpoint_interval=2, concurrency=2)
        cancel = threading.Event()
        seen = {"pages": 0}

        from .conftest import Recorder

        rec = Recorder()

        def sink(event):
            rec(event)
            if isinstance(event, EndpointProgress) and event.state == "fetching" and event.pages:
                seen["pages"] += 1
                if seen["pages"] == 12:
                    cancel.set()

        from salesmap_tui.engine.api import run_snapshot

        result = run_snapshot(settings, sink, cancel)
        assert result.status == "interrupted" and result.exit_code == 130
        assert not settings.db_path.exists()
        assert rec.of(CheckpointSaved)
        resumed, _ = run(settings.replace(resume_run_tag=result.run_tag))
        assert resumed.exit_code == 0 and resumed.run_tag == result.run_tag
        data = dataset_of(cfg)
        for table in SNAPSHOT_TABLES:
            assert table_records(settings.db_path, table) == expected_records(data, table)
        statuses = [r["status"] for r in history_records(settings.history_path)]
        assert statuses == ["running", "interrupted", "running", "done"]


def test_concurrent_and_sequential_snapshots_are_equal(tmp_path, sandbox):
    a = make_settings(tmp_path / "a", sandbox, concurrency=1)
    b = make_settings(tmp_path / "b", sandbox, concurrency=6)
    for s in (a, b):
        s.db_path.parent.mkdir()
        assert run(s)[0].exit_code == 0
    assert snapshot_of(a.db_path) == snapshot_of(b.db_path)
    assert webform_rows(a.db_path) == webform_rows(b.db_path)


@pytest.mark.parametrize("fault", ["500:1:burst=2", "429:1:burst=2", "truncate:1:burst=1"])
def test_transient_faults_are_retried_to_an_identical_snapshot(tmp_path, sandbox, fault):
    clean = make_settings(tmp_path / "clean", sandbox)
    clean.db_path.parent.mkdir()
    run(clean)
    faulty = make_settings(tmp_path / "faulty", sandbox)
    faulty.db_path.parent.mkdir()
    sandbox.set_faults(fault + ":path=lead")
    result, rec = run(faulty)
    sandbox.set_faults("")
    assert result.exit_code == 0, result.message
    assert rec.of(RequestRetried)
    assert snapshot_of(faulty.db_path) == snapshot_of(clean.db_path)


def _interrupted_run(settings):
    """A run cancelled after its first committed pages: an unfinished checkpoint remains."""
    import threading

    cancel = threading.Event()

    def sink(event):
        # after a committed page: a request in flight is abandoned at once on cancel, and a
        # run that committed nothing leaves nothing to resume
        if isinstance(event, CheckpointSaved) and any(e["pages"] for e in event.endpoints.values()):
            cancel.set()

    from salesmap_tui.engine.api import run_snapshot

    result = run_snapshot(settings.replace(checkpoint_interval=1), sink, cancel)
    assert result.status == "interrupted"
    return result


def test_resume_skips_a_checkpoint_whose_temp_db_is_gone(settings):
    from salesmap_tui.engine.events import EngineWarning

    killed = _interrupted_run(settings)
    Path(killed.temp_db_path or "").unlink()
    result, rec = run(settings.replace(resume=True))
    assert result.exit_code == 0 and result.run_tag != killed.run_tag
    warnings = " ".join(e.message for e in rec.of(EngineWarning))
    assert killed.run_tag in warnings and "gone" in warnings
    # asked for by tag, the same checkpoint is a clear usage error
    from salesmap_tui.engine.errors import BadCheckpoint

    with pytest.raises(BadCheckpoint, match="gone"):
        run(settings.replace(resume_run_tag=killed.run_tag))


def test_resume_does_not_pick_a_run_older_than_the_live_snapshot(settings):
    from salesmap_tui.engine.events import EngineWarning

    stale = _interrupted_run(settings)
    fresh, _ = run(settings)
    assert fresh.exit_code == 0
    result, rec = run(settings.replace(resume=True))
    assert result.exit_code == 0 and result.run_tag not in (stale.run_tag, fresh.run_tag)
    assert any("newer snapshot" in e.message for e in rec.of(EngineWarning))
    # still reachable on purpose
    forced, _ = run(settings.replace(resume_run_tag=stale.run_tag))
    assert forced.exit_code == 0 and forced.run_tag == stale.run_tag


def test_leftovers_of_killed_runs_are_swept_but_checkpointed_work_is_kept(settings):
    from salesmap_tui.engine.events import EngineWarning

    run(settings)
    kept = _interrupted_run(settings)  # has a checkpoint: must survive the sweep
    db = settings.db_path
    orphan = db.with_name(f"{db.name}.20260101T000000Z-0bad.tmp")
    orphan.write_bytes(b"SQLite format 3\x00 half a DB")
    orphan.with_name(orphan.name + "-wal").write_bytes(b"wal")
    settings.backup_dir.mkdir(exist_ok=True)  # no backup yet: the killed run did not swap
    partial_backup = (
        settings.backup_dir / "salesmap_latest_20260101T000000Z-0bad.db.gz.1a2b3c4d.tmp"
    )
    partial_backup.write_bytes(b"\x1f\x8b half a gzip")
    other_db_tmp = db.with_name("other.db.20260101T000000Z-0bad.tmp")  # another DB's: not ours
    other_db_tmp.write_bytes(b"x")
    manual = settings.checkpoint_dir / "checkpoint_20260101T000000Z-beef.json.tmp"
    manual.write_text("{}")  # the seed's manual recovery source: never removed
    result, rec = run(settings)
    assert result.exit_code == 0
    assert not orphan.exists() and not orphan.with_name(orphan.name + "-wal").exists()
    assert not partial_backup.exists()
    assert other_db_tmp.exists() and manual.exists()
    assert Path(kept.temp_db_path or "").exists()
    warnings = " ".join(e.message for e in rec.of(EngineWarning))
    assert orphan.name in warnings and partial_backup.name in warnings


def test_a_run_log_that_stops_being_written_is_reported(settings, monkeypatch):
    import errno

    from salesmap_tui.engine import runlog

    class FullDisk:
        """A file whose writes fail after a few lines, like a disk filling up."""

        def __init__(self, real):
            self.real, self.lines = real, 0

        def write(self, text):
            self.lines += 1
            if self.lines > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.real.write(text)

        def __getattr__(self, name):
            return getattr(self.real, name)

    real_init = runlog.RunLog.__init__

    def init(self, path, secret):
        real_init(self, path, secret)
        if self._file is not None:
            self._file = FullDisk(self._file)

    monkeypatch.setattr(runlog.RunLog, "__init__", init)
    result, _ = run(settings)
    assert result.exit_code == 0  # a log never stops the snapshot...
    assert "No space left on device" in result.message  # ...but the user is told
    assert "log is incomplete" in result.message


def test_a_swapped_run_whose_last_history_line_was_lost_is_closed_as_done(settings):
    from salesmap_tui.engine.history import append_history

    first, _ = run(settings)
    records = history_records(settings.history_path)
    # the process died after the swap, before its final line: its last line says "running"
    settings.history_path.write_text("")
    append_history(settings.history_path, records[0])
    assert history_records(settings.history_path)[-1]["status"] == "running"
    # an earlier run that really was interrupted stays interrupted
    ghost = dict(records[0], run_tag="20200101T000000Z-dead")
    append_history(settings.history_path, ghost)
    second, _ = run(settings)
    last = {}
    for rec in history_records(settings.history_path):
        last[rec["run_tag"]] = rec
    assert last[first.run_tag]["status"] == "done"
    assert last[first.run_tag]["replaced"] is True
    assert last[first.run_tag]["tables"]["deal"]["rows"] == first.tables["deal"]["rows"]
    assert last["20200101T000000Z-dead"]["status"] == "interrupted"
    assert last[second.run_tag]["status"] == "done"
