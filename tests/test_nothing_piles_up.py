"""Nothing piles up (issue 9, item 7): failed runs leave nothing behind, backups are named by
the data they hold and never duplicated, retention runs after every run and after a restore,
and --keep-runs bounds run logs, events files and finished checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.retention import prune_runs
from salesmap_tui.sandbox import SandboxServer

from .conftest import make_settings
from .test_shrink_guard import tag_of


def backups(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.backup_dir.glob("*"))


def temp_dbs(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.db_path.parent.glob(settings.db_path.name + ".*.tmp*"))


def test_rejected_token_runs_leave_nothing(tmp_path: Path, sandbox: SandboxServer) -> None:
    settings = make_settings(tmp_path, sandbox, keep_backups=2)
    for _ in range(2):
        assert api.run_snapshot(settings).exit_code == 0
    kept = backups(settings)
    assert len(kept) == 1
    bad = settings.replace(token="not-the-token")
    for _ in range(4):
        result = api.run_snapshot(bad)
        assert (result.exit_code, result.status) == (2, "failed")
        assert "nothing to resume" in result.message
    assert backups(settings) == kept  # no backup of an unchanged live DB, four times
    assert temp_dbs(settings) == []
    assert [
        i for i in api.list_checkpoints(settings) if not i.checkpoint or not i.checkpoint.done
    ] == []
    # --resume finds nothing of theirs: it starts a fresh run that works
    assert api.run_snapshot(settings.replace(resume=True)).exit_code == 0


def test_backups_are_named_by_the_data_they_hold(tmp_path: Path, sandbox: SandboxServer) -> None:
    settings = make_settings(tmp_path, sandbox)
    a = api.run_snapshot(settings)
    assert a.backup_path is None  # there was no live DB to back up
    b = api.run_snapshot(settings)
    stem = settings.db_path.stem
    assert b.backup_path == str(settings.backup_dir / f"{stem}_{a.run_tag}.db.gz")
    assert api.run_snapshot(settings.replace(webform_only=True)).exit_code == 0
    c = api.run_snapshot(settings)
    assert c.backup_path == str(settings.backup_dir / f"{stem}_{b.run_tag}.db.gz")
    assert backups(settings) == sorted([f"{stem}_{a.run_tag}.db.gz", f"{stem}_{b.run_tag}.db.gz"])
    # a restore of b's backup, then a run: b's data is already backed up (the file restored
    # from), c's data gets its own backup
    verified = api.verify_backup(settings, Path(c.backup_path or ""))
    restored = api.restore_backup(settings, verified)
    assert restored.previous_backup_path == settings.backup_dir / f"{stem}_{c.run_tag}.db.gz"
    assert tag_of(settings.db_path) == b.run_tag
    d = api.run_snapshot(settings)
    assert d.backup_path == c.backup_path
    assert len(backups(settings)) == 3


def test_retention_after_a_failed_run_and_after_a_restore(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = make_settings(tmp_path, sandbox, keep_backups=0)
    for _ in range(4):
        assert api.run_snapshot(settings).exit_code == 0
    assert len(backups(settings)) == 3
    failed = api.run_snapshot(settings.replace(keep_backups=2, token="wrong"))
    assert failed.exit_code == 2
    names = backups(settings)
    assert len(names) == 2
    verified = api.verify_backup(settings, settings.backup_dir / names[0])
    api.restore_backup(settings.replace(keep_backups=1), verified)
    # the safety backup of the replaced DB is the newest: it is the one kept
    assert len(backups(settings)) == 1


def test_keep_runs_prunes_logs_events_and_finished_checkpoints(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = make_settings(tmp_path, sandbox, keep_runs=2)
    tags = [api.run_snapshot(settings).run_tag for _ in range(4)]
    logs = {p.name for p in settings.log_dir.glob("snapshot_*.log")}
    assert logs == {f"snapshot_{t}.log" for t in tags[-2:]}
    events = {p.name for p in settings.log_dir.glob("snapshot_*.events.jsonl")}
    assert events == {f"snapshot_{t}.events.jsonl" for t in tags[-2:]}
    cps = {p.name for p in settings.checkpoint_dir.glob("checkpoint_*.json")}
    assert cps == {f"checkpoint_{t}.json" for t in tags[-2:]}
    # the history keeps every run
    lines = settings.history_path.read_text().splitlines()
    assert {json.loads(x)["run_tag"] for x in lines} >= set(tags)
    # another DB's runs in the same log folder are not this DB's to prune
    other = settings.replace(db_path=tmp_path / "other.db", keep_runs=1)
    other_tag = api.run_snapshot(other).run_tag
    assert (settings.log_dir / f"snapshot_{other_tag}.log").is_file()
    assert all((settings.log_dir / f"snapshot_{t}.log").is_file() for t in tags[-2:])


def test_keep_runs_orders_runs_of_one_second_by_when_they_started(tmp_path: Path) -> None:
    """Run tags of one second differ by a random suffix: the newest run is the one that started
    last, not the one whose suffix sorts last (CI lost the newest run's log this way)."""
    settings = Settings(token="t", db_path=tmp_path / "live.db", keep_runs=1)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    older, newer = "20261202T001523Z-ffff", "20261202T001523Z-0000"
    lines = [
        {
            "run_tag": older,
            "status": "ok",
            "db_path": str(settings.db_path),
            "started_at": "2026-12-02T00:15:23.100Z",
        },
        {
            "run_tag": newer,
            "status": "ok",
            "db_path": str(settings.db_path),
            "started_at": "2026-12-02T00:15:23.900Z",
        },
    ]
    settings.history_path.parent.mkdir(parents=True, exist_ok=True)
    settings.history_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    for tag in (older, newer):
        settings.log_path(tag).write_text("log\n")
    removed = prune_runs(settings)
    assert removed == [settings.log_path(older)]
    assert settings.log_path(newer).is_file()
