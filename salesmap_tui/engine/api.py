"""The engine's public entry points: plain functions the CLI and the TUI's thread worker call.

The write side (a snapshot, the web-form pass, verify, restore, let a held-back snapshot in)
is defined here; the read side (`queries`) is re-exported. A UI never imports the engine's
other modules except `events`, `errors`, `outcome` and the data types re-exported below.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine import backup
from salesmap_tui.engine.backup import BackupInfo, RestoreResult, VerifiedBackup
from salesmap_tui.engine.checkpoint import Checkpoint, CheckpointInfo
from salesmap_tui.engine.events import EventSink, RunResult, ignore_event
from salesmap_tui.engine.history import HistoryEntry, HistoryProblem
from salesmap_tui.engine.queries import (
    held_back_snapshots,
    list_backups,
    list_checkpoints,
    live_db_info,
    read_history,
    webform_status,
)
from salesmap_tui.engine.runs import promote, restore, snapshot, webform_only
from salesmap_tui.engine.webform import FormCount, WebformStatus

__all__ = [
    "BackupInfo",
    "Checkpoint",
    "CheckpointInfo",
    "FormCount",
    "HistoryEntry",
    "HistoryProblem",
    "RestoreResult",
    "VerifiedBackup",
    "VerifyProgress",
    "WebformStatus",
    "held_back_snapshots",
    "list_backups",
    "list_checkpoints",
    "live_db_info",
    "promote_snapshot",
    "read_history",
    "restore_backup",
    "run_snapshot",
    "run_webform_only",
    "verify_backup",
    "webform_status",
]

# (stage, fraction done 0..1): stage is "gunzip" or "integrity"
VerifyProgress = Callable[[str, float], None]


def run_snapshot(
    settings: Settings,
    on_event: EventSink = ignore_event,
    cancel: threading.Event | None = None,
) -> RunResult:
    """A full snapshot run (fresh, `--resume`, or `--resume-run-tag`); `webform_only` delegates.

    Raises a `UsageError` subclass for problems found before the run starts (no token, lock held,
    unusable checkpoint, bad path); anything after that is reported in the returned `RunResult`.
    """
    return snapshot.run_snapshot(settings, on_event, cancel or threading.Event())


def run_webform_only(
    settings: Settings,
    on_event: EventSink = ignore_event,
    cancel: threading.Event | None = None,
) -> RunResult:
    """The web-form pass alone, in place on the live DB, in one transaction."""
    return webform_only.run_webform_only(settings, on_event, cancel or threading.Event())


def verify_backup(
    settings: Settings,
    backup_path: Path,
    on_progress: VerifyProgress | None = None,
    cancel: threading.Event | None = None,
) -> VerifiedBackup:
    """Decompress next to the live DB and run an integrity check; raises `BadBackup`."""
    return backup.verify_backup(settings, backup_path, on_progress, cancel or threading.Event())


def restore_backup(
    settings: Settings,
    verified: VerifiedBackup,
    on_event: EventSink = ignore_event,
) -> RestoreResult:
    """Back up the current live DB, then swap the verified copy in; appends a `restore` record."""
    return restore.restore_backup(settings, verified, on_event)


def discard_verified(verified: VerifiedBackup) -> None:
    """Remove a verified temp copy the user decided not to restore."""
    verified.temp_path.unlink(missing_ok=True)


def promote_snapshot(
    settings: Settings, snapshot_path: Path, on_event: EventSink = ignore_event
) -> RunResult:
    """Let a held-back snapshot in: back up the live DB, swap it in as a run would, record it
    as done. Raises `LockHeld` while a run holds the lock, `UsageError` for an unusable file."""
    return promote.promote_snapshot(settings, snapshot_path, on_event)
