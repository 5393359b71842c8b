"""The lifecycle every run of a DB shares: a snapshot, the web-form pass alone, a restore.

In order: preflight (settings, token, paths) → the run lock → a hot journal rolled back → runs
a dead process left `running` closed → the run tag → the run log and events file → the
`running` history record → events → finish (the history record, retention, `RunFinished`).
Each kind of run writes only what is its own between `start` and `finish`, so none of them can
forget a step (the web-form pass and restore once skipped close-stale and the run log).
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from salesmap_tui.config import ConfigError, Settings
from salesmap_tui.engine.backup import SQLITE_HEADER, apply_retention
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.errors import MissingToken, SalesmapTuiError, UsageError
from salesmap_tui.engine.events import (
    EngineEvent,
    EngineWarning,
    EventsFile,
    EventSink,
    RunFinished,
    RunKind,
    RunResult,
    WorkspacePaused,
    events_path_for,
)
from salesmap_tui.engine.files import ensure_private_dir, recover_db, resolve_db_path
from salesmap_tui.engine.history import append_history, close_stale_running, make_record
from salesmap_tui.engine.lock import RunLock
from salesmap_tui.engine.outcome import describe
from salesmap_tui.engine.pacer import shared_pacer
from salesmap_tui.engine.retention import prune_runs
from salesmap_tui.engine.runlog import RunLog
from salesmap_tui.engine.snapshot_db import run_info_of, tables_of


def check_paths(settings: Settings) -> None:
    """Refuse paths no run could use, before anything is created."""
    db = settings.db_path
    if db.is_dir():
        raise UsageError(f"--db-path {db} is a directory; give the path of the SQLite file")
    if not _is_sqlite_or_empty(db):
        # a run would replace it: never overwrite a file that is not one of our snapshots
        raise UsageError(
            f"--db-path {db} is not a SQLite database; refusing to replace it "
            "(give the path of the snapshot DB, or move that file away)"
        )
    parent = db.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"the directory of --db-path does not exist: {parent}")
    for option, path in (
        ("--log-dir", settings.log_dir),
        ("--checkpoint-dir", settings.checkpoint_dir),
        ("--backup-dir", settings.backup_dir),
    ):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{option} {path} exists and is not a directory")


def _is_sqlite_or_empty(path: Path) -> bool:
    """False only for an existing, readable, non-empty file without the SQLite header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError:
        return True  # missing or unreadable: the run reports that on its own terms
    return not head or head == SQLITE_HEADER


def preflight(settings: Settings, *, needs_token: bool = True, check_db: bool = True) -> None:
    """What must hold before a run takes the lock: valid settings, a token, usable paths, and
    the private log and checkpoint folders. Raises `UsageError` (exit 2)."""
    try:
        settings.validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if needs_token and not settings.token:
        raise MissingToken(
            "no API token: set the environment variable SALESMAP_TOKEN "
            "(Salesmap → settings → API) and run again"
        )
    if check_db:
        check_paths(settings)
    try:
        for path in (settings.log_dir, settings.checkpoint_dir):
            ensure_private_dir(path)
    except OSError as exc:
        raise UsageError(f"cannot create {exc.filename}: {exc.strerror}") from None


def close_stale(settings: Settings) -> list[str]:
    """Close runs a dead process left `running`. One whose snapshot is the live DB did swap
    (it died before its last history line): it is closed as done, not interrupted."""
    live = run_info_of(settings.db_path)
    known: dict[str, dict[str, Any]] = {}
    if live.get("run_tag") and live.get("status") == "done":
        known[str(live["run_tag"])] = {
            "status": "done",
            "replaced": True,
            "finished_at": live.get("finished_at"),
            "tables": tables_of(settings.db_path),
        }
    return close_stale_running(settings.history_path, str(settings.db_path), known)


def apply_run_retention(settings: Settings, log: Callable[[str], None]) -> None:
    """Backups beyond --keep-backups, and run logs, events files and finished checkpoints
    beyond --keep-runs: after every run, failed ones too, and after a restore."""
    try:
        if settings.keep_backups:
            for removed in apply_retention(
                settings.backup_dir, settings.db_path, settings.keep_backups
            ):
                log(f"retention: removed {removed}")
        for removed in prune_runs(settings):
            log(f"retention: removed {removed}")
    except OSError as exc:
        log(f"retention failed: {exc}")


def workspace_client(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
) -> SalesmapClient:
    """A client on the workspace's shared pacer (per workspace, not per run: a resume right
    after a cancel keeps the rules across both). Use it as `async with`."""
    pacer = shared_pacer(
        settings.base_url,
        settings.token,
        settings.min_interval,
        settings.rate_limit_requests,
        settings.rate_limit_window,
        on_stats=on_event,
        concurrency=settings.concurrency,
    )
    transport = transport_factory() if transport_factory else None
    return SalesmapClient(settings, pacer, on_event, cancel, transport=transport)


def result_record(result: RunResult) -> dict[str, Any]:
    """The run history record (CONTRACT.md) for a finished run."""
    return make_record(
        run_tag=result.run_tag,
        kind=result.kind,
        status=result.status,
        started_at=result.started_at,
        finished_at=result.finished_at,
        duration_s=result.duration_s,
        db_path=result.db_path,
        final_db_path=result.final_db_path,
        temp_db_path=result.temp_db_path,
        backup_path=result.backup_path,
        log_path=result.log_path,
        replaced=result.replaced,
        fallback_path=result.fallback_path,
        tables=result.tables,
        error_count=len(result.errors),
        errors=list(result.errors),
        webform=result.webform.as_dict() if result.webform else None,
        swap=result.swap,
        exit_code=result.exit_code,
        reason=result.reason,
    )


class RunContext:
    """One run of one DB, from preflight to its last history record. A context manager: it
    holds the run lock from `__enter__` to `__exit__`.

    `start()` opens the run log and the events file (every event from then on is also written
    there, for a TUI attached to this run); `emit()` hands events to the caller's sink (a
    broken sink never breaks the run); `finish()` records the outcome and runs retention.
    """

    def __init__(
        self,
        settings: Settings,
        kind: RunKind,
        on_event: EventSink,
        *,
        needs_token: bool = True,
        check_db: bool = True,
    ) -> None:
        self.settings = resolve_db_path(settings)
        self.kind = kind
        self._sink = on_event
        self._needs_token = needs_token
        self._check_db = check_db
        self.lock = RunLock(self.settings.lock_path)
        self.log: RunLog | None = None
        self.events_file: EventsFile | None = None
        self.run_tag: str | None = None
        self.warnings: list[str] = []
        self.pending_warnings: list[str] = []  # found before the run log exists

    # --- the lock ------------------------------------------------------------------------------
    def __enter__(self) -> RunContext:
        preflight(self.settings, needs_token=self._needs_token, check_db=self._check_db)
        self.lock.acquire()
        try:
            # a kill mid in-place swap leaves a hot journal: SQLite rolls it back before
            # anything reads the live DB read-only (which it could not do with the journal)
            recover_db(self.settings.db_path)
            try:
                close_stale(self.settings)
            except OSError as exc:
                raise SalesmapTuiError(
                    f"cannot write the run history {self.settings.history_path}: "
                    f"{describe(exc)}; nothing was started and the live DB is untouched"
                ) from None
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.events_file is not None:
                self.events_file.close()
            if self.log is not None:
                self.log.close()
        finally:
            self.lock.release()

    # --- the run's files -----------------------------------------------------------------------
    def start(self, run_tag: str, *, require_log: bool = True) -> None:
        """The run log and the events file of `run_tag` (a resumed run appends to both)."""
        self.run_tag = run_tag
        log_path = self.settings.log_path(run_tag)
        self.log = RunLog(log_path, self.settings.token)
        if self.log.failed and require_log:
            raise UsageError(self.log.failed)
        self.events_file = EventsFile(events_path_for(log_path), self.settings.token)
        self._sink = self.events_file.tee(self._sink)

    @property
    def log_path(self) -> Path:
        assert self.run_tag is not None
        return self.settings.log_path(self.run_tag)

    def write_log(self, message: str) -> None:
        if self.log is not None:
            self.log.write(message)

    def write_log_block(self, title: str, body: str) -> None:
        if self.log is not None:
            self.log.write_block(title, body)

    def log_trouble(self) -> str:
        """A run log that stopped being written never stops the run, but the user hears of it."""
        if self.log is not None and self.log.failed:
            return f" (warning: {self.log.failed}; the log is incomplete)"
        return ""

    # --- events --------------------------------------------------------------------------------
    def emit(self, event: EngineEvent) -> None:
        if isinstance(event, WorkspacePaused):
            self.write_log(
                f"workspace paused {event.wait_s:.1f} s ({event.status} on {event.endpoint})"
            )
        elif isinstance(event, EngineWarning):
            self.warnings.append(event.message)
            self.write_log(f"warning: {event.message}")
        try:
            self._sink(event)
        except Exception:  # a broken UI callback must not break the run
            self.write_log_block("event sink failed:", traceback.format_exc())

    def warn(self, message: str) -> None:
        self.emit(EngineWarning(message))

    def flush_pending_warnings(self) -> None:
        for message in self.pending_warnings:
            self.warn(message)
        self.pending_warnings.clear()

    # --- history -------------------------------------------------------------------------------
    def record_running(self, started_at: str, **fields: Any) -> None:
        """The run's `running` history record (closed by the next run if this process dies)."""
        assert self.run_tag is not None
        s = self.settings
        append_history(
            s.history_path,
            make_record(
                run_tag=self.run_tag,
                kind=self.kind,
                status="running",
                started_at=started_at,
                db_path=str(s.db_path),
                final_db_path=str(s.db_path),
                log_path=str(self.log_path),
                **fields,
            ),
        )

    def record_final(self, record: dict[str, Any]) -> str | None:
        """Append the run's last history record; None, or why it could not be written."""
        try:
            append_history(self.settings.history_path, record)
        except OSError as exc:
            self.write_log(f"could not append the history record: {describe(exc)}")
            return describe(exc)
        return None

    def finish(
        self, result: RunResult, after_record: Callable[[RunResult], None] | None = None
    ) -> RunResult:
        """Record `result`, call `after_record(result)`, run retention, emit `RunFinished`."""
        self.write_log(f"finished: {result.status} (exit {result.exit_code}): {result.message}")
        trouble = self.record_final(result_record(result))
        if trouble:
            note = f" (warning: {trouble}; `history` does not show this outcome)"
            result = dataclasses.replace(result, message=result.message + note)
        if after_record is not None:
            after_record(result)
        apply_run_retention(self.settings, self.write_log)
        self.emit(RunFinished(result))
        if self.log is not None:
            self.log.close()
        return result
