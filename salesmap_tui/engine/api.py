"""The engine's public entry points: plain functions the CLI and the TUI's thread worker call.

Everything a UI needs is here; a UI never imports the engine's other modules except `events`,
`errors` and the data types re-exported below.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesmap_tui.config import Settings
from salesmap_tui.engine.backup import BackupInfo, RestoreResult, VerifiedBackup
from salesmap_tui.engine.checkpoint import Checkpoint, CheckpointInfo
from salesmap_tui.engine.events import EventSink, RunResult, ignore_event
from salesmap_tui.engine.history import HistoryEntry, HistoryProblem

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


@dataclass(frozen=True)
class FormCount:
    """One form's rows in webform_history (names are Korean in real workspaces)."""

    form_id: str
    name: str
    rows: int
    newest: str | None


@dataclass(frozen=True)
class WebformStatus:
    db_exists: bool
    rows: int
    newest_created_at: str | None
    forms: int  # distinct webFormId in webform_history
    allowed_people: int  # distinct deal.peopleId in the live DB
    last_pass: dict[str, Any] | None  # newest history record with a `webform` outcome
    form_rows: tuple[FormCount, ...] = ()  # per form, most rows first


def run_snapshot(
    settings: Settings,
    on_event: EventSink = ignore_event,
    cancel: threading.Event | None = None,
) -> RunResult:
    """A full snapshot run (fresh, `--resume`, or `--resume-run-tag`); `webform_only` delegates.

    Raises a `UsageError` subclass for problems found before the run starts (no token, lock held,
    unusable checkpoint, bad path); anything after that is reported in the returned `RunResult`.
    """
    from salesmap_tui.engine.snapshot import run_snapshot as _run

    return _run(settings, on_event, cancel or threading.Event())


def run_webform_only(
    settings: Settings,
    on_event: EventSink = ignore_event,
    cancel: threading.Event | None = None,
) -> RunResult:
    """The web-form pass alone, in place on the live DB, in one transaction."""
    from salesmap_tui.engine.snapshot import run_webform_only as _run

    return _run(settings, on_event, cancel or threading.Event())


def list_checkpoints(settings: Settings) -> list[CheckpointInfo]:
    """Every checkpoint in the checkpoint dir, newest first, each with `problem` if unusable."""
    from salesmap_tui.engine.checkpoint import CheckpointManager

    return CheckpointManager(settings.checkpoint_dir).list()


def list_backups(settings: Settings) -> list[BackupInfo]:
    """The gzip backups of this DB, newest first."""
    from salesmap_tui.engine.backup import list_backups as _list

    return _list(settings.backup_dir, settings.db_path)


def verify_backup(
    settings: Settings,
    backup_path: Path,
    on_progress: VerifyProgress | None = None,
    cancel: threading.Event | None = None,
) -> VerifiedBackup:
    """Decompress next to the live DB and run an integrity check; raises `BadBackup`."""
    from salesmap_tui.engine.backup import verify_backup as _verify

    return _verify(settings, backup_path, on_progress, cancel or threading.Event())


def restore_backup(
    settings: Settings,
    verified: VerifiedBackup,
    on_event: EventSink = ignore_event,
) -> RestoreResult:
    """Back up the current live DB, then swap the verified copy in; appends a `restore` record."""
    from salesmap_tui.engine.backup import restore_backup as _restore

    return _restore(settings, verified, on_event)


def discard_verified(verified: VerifiedBackup) -> None:
    """Remove a verified temp copy the user decided not to restore."""
    verified.temp_path.unlink(missing_ok=True)


def read_history(settings: Settings) -> list[HistoryEntry | HistoryProblem]:
    """Every line of run_history.jsonl, oldest first; unparseable lines as `HistoryProblem`."""
    from salesmap_tui.engine.history import read_history as _read

    return _read(settings.history_path)


def webform_status(settings: Settings) -> WebformStatus:
    """What the live DB's webform_history holds now, and the last pass's outcome."""
    from salesmap_tui.engine.webform import webform_status as _status

    return _status(settings)


def held_back_snapshots(settings: Settings) -> list[dict[str, Any]]:
    """Snapshots the shrink guard held back (exit 5) that are still beside the live DB, newest
    first, as their history records: `fallback_path`, `reason` (which tables shrank), `tables`."""
    from salesmap_tui.engine.snapshot import held_back_snapshots as _held

    return _held(settings)


def promote_snapshot(
    settings: Settings, snapshot_path: Path, on_event: EventSink = ignore_event
) -> RunResult:
    """Let a held-back snapshot in: back up the live DB, swap it in as a run would, record it
    as done. Raises `LockHeld` while a run holds the lock, `UsageError` for an unusable file."""
    from salesmap_tui.engine.snapshot import promote_snapshot as _promote

    return _promote(settings, snapshot_path, on_event)
