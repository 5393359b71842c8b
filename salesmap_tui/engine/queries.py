"""The engine's read side for UIs: checkpoints, backups, history, web-form status, held-back
snapshots, the live DB. Nothing here takes the run lock or changes a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salesmap_tui.config import Settings
from salesmap_tui.engine import backup, history, webform
from salesmap_tui.engine.backup import BackupInfo
from salesmap_tui.engine.checkpoint import CheckpointInfo, CheckpointManager
from salesmap_tui.engine.history import HistoryEntry, HistoryProblem, last_records
from salesmap_tui.engine.outcome import ExitCode
from salesmap_tui.engine.retention import same_file
from salesmap_tui.engine.snapshot_db import run_tag_of
from salesmap_tui.engine.webform import WebformStatus


def list_checkpoints(settings: Settings) -> list[CheckpointInfo]:
    """Every checkpoint in the checkpoint dir, newest first, each with `problem` if unusable."""
    return CheckpointManager(settings.checkpoint_dir).list()


def list_backups(settings: Settings) -> list[BackupInfo]:
    """The gzip backups of this DB, newest first."""
    return backup.list_backups(settings.backup_dir, settings.db_path)


def read_history(settings: Settings) -> list[HistoryEntry | HistoryProblem]:
    """Every line of run_history.jsonl, oldest first; unparseable lines as `HistoryProblem`."""
    return history.read_history(settings.history_path)


def webform_status(settings: Settings) -> WebformStatus:
    """What the live DB's webform_history holds now, and the last pass's outcome."""
    return webform.webform_status(settings)


def held_back_snapshots(settings: Settings) -> list[dict[str, Any]]:
    """Snapshots the shrink guard held back (exit 5) that are still beside the live DB, newest
    first, as their history records: `fallback_path`, `reason` (which tables shrank), `tables`."""
    out = []
    for record in last_records(settings.history_path).values():
        if record.get("exit_code") != ExitCode.HELD_BACK or record.get("status") != "fallback":
            continue
        if not same_file(record.get("db_path"), settings.db_path):
            continue
        path = record.get("fallback_path")
        if isinstance(path, str) and Path(path).is_file():
            out.append(record)
    out.sort(
        key=lambda r: (str(r.get("run_tag"))[:16], str(r.get("started_at") or "")), reverse=True
    )
    return out


def live_db_info(settings: Settings) -> dict[str, Any]:
    """`{path, run_tag, bytes}` of the live DB (the run tag from its run_info; None when the
    file is missing, unreadable or not one of ours). Read-only: a monitoring check never
    creates a journal or a file beside the DB."""
    path = settings.db_path
    info: dict[str, Any] = {"path": str(path), "run_tag": None, "bytes": None}
    try:
        info["bytes"] = path.stat().st_size
    except OSError:
        return info
    info["run_tag"] = run_tag_of(path)
    return info
