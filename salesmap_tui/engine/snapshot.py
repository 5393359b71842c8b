"""Orchestration: a full run, a resumed run, or the web-form pass alone. Emits events.

Order of a full run (DESIGN.md "Finishing"): lock → backup (fresh runs only) → temp DB with the
live DB's webform_history carried over → concurrent crawl under one pacer, a checkpoint after
every N committed pages → web-form pass on the temp DB → manifest and run_info → finalize →
`replace_file_with_retry` → history record, checkpoint marked done, backup retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from salesmap_tui import __version__
from salesmap_tui.config import ConfigError, Settings
from salesmap_tui.engine import webform
from salesmap_tui.engine.backup import SQLITE_HEADER, apply_retention, make_backup
from salesmap_tui.engine.backup_owner import owner_tag
from salesmap_tui.engine.checkpoint import (
    Checkpoint,
    CheckpointManager,
    EndpointCheckpoint,
    age_hours,
    check_own_paths,
    workspace_of,
    workspace_problem,
)
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.endpoints import SNAPSHOT_ENDPOINTS
from salesmap_tui.engine.errors import (
    BadCheckpoint,
    MissingToken,
    RunCancelled,
    SalesmapTuiError,
    TokenRejected,
    UsageError,
    cancel_exit_code,
    merge_endpoint_errors,
)
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    EngineWarning,
    EventsFile,
    EventSink,
    PhaseChanged,
    RequestRetried,
    RunFinished,
    RunResult,
    RunStarted,
    RunStatus,
    WebformResult,
    WorkspacePaused,
    events_path_for,
)
from salesmap_tui.engine.files import (
    SIDECAR_SUFFIXES,
    ensure_private_dir,
    fsync_file,
    park_fallback,
    recover_db,
    remove_planted_links,
    replace_file_with_retry,
    resolve_db_path,
    swap_mode,
)
from salesmap_tui.engine.history import (
    append_history,
    close_stale_running,
    last_records,
    make_record,
)
from salesmap_tui.engine.lock import RunLock
from salesmap_tui.engine.pacer import shared_pacer
from salesmap_tui.engine.retention import prune_runs, same_file
from salesmap_tui.engine.runlog import RunLog
from salesmap_tui.engine.runs.crawl import Endpoint, crawl
from salesmap_tui.engine.runs.webform_pass import WebformPass, drop_state
from salesmap_tui.engine.runtag import is_run_tag, new_run_tag, utc_now_iso
from salesmap_tui.engine.shrink import shrink_reason, shrunk_tables, table_rows
from salesmap_tui.engine.writer import (
    TableWriter,
    finalize_sqlite_connection,
    prepare_connection,
    prepare_for_dashboards,
)

# tests and benchmarks may hand the engine an in-process transport
TransportFactory = Callable[[], httpx.AsyncBaseTransport]

SIDECARS = ("-wal", "-shm", "-journal")
RESTORE_LEFTOVER_AGE_S = 3600.0
SUPERSEDED_KEEP_S = 12 * 3600.0  # as long as --resume-max-age's default
MANIFEST_SQL = (
    "CREATE TABLE IF NOT EXISTS manifest "
    "(table_name TEXT PRIMARY KEY, rows INTEGER, cols INTEGER, pages INTEGER, errors TEXT)"
)
RUN_INFO_SQL = (
    "CREATE TABLE IF NOT EXISTS run_info (run_tag TEXT PRIMARY KEY, started_at TEXT, "
    "finished_at TEXT, status TEXT, base_url TEXT, tool_version TEXT)"
)


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


def _prepare_common(settings: Settings) -> None:
    try:
        settings.validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not settings.token:
        raise MissingToken(
            "no API token: set the environment variable SALESMAP_TOKEN "
            "(Salesmap → settings → API) and run again"
        )
    check_paths(settings)
    try:
        for path in (settings.log_dir, settings.checkpoint_dir):
            ensure_private_dir(path)
    except OSError as exc:
        raise UsageError(f"cannot create {exc.filename}: {exc.strerror}") from None


def read_manifest_rows(db_path: Path) -> dict[str, int]:
    """Rows per table from the live DB's manifest (the previous run's), for progress and ETA."""
    if not db_path.is_file():
        return {}
    try:
        conn = webform.open_readonly(db_path)
        try:
            if not webform.table_exists(conn, "manifest"):
                return {}
            return {
                str(t): int(r or 0)
                for t, r in conn.execute("SELECT table_name, rows FROM manifest")
            }
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def _run_info_of(db_path: Path) -> dict[str, Any]:
    """The run_info row of a snapshot DB ({} when there is none or the file is unreadable)."""
    if not db_path.is_file():
        return {}
    try:
        conn = webform.open_readonly(db_path)
        try:
            if not webform.table_exists(conn, "run_info"):
                return {}
            cur = conn.execute("SELECT * FROM run_info LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return {}
            return {d[0]: v for d, v in zip(cur.description, row, strict=True)}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def close_stale(settings: Settings) -> list[str]:
    """Close runs a dead process left `running`. One whose snapshot is the live DB did swap
    (it died before its last history line): it is closed as done, not interrupted."""
    live = _run_info_of(settings.db_path)
    known: dict[str, dict[str, Any]] = {}
    if live.get("run_tag") and live.get("status") == "done":
        known[str(live["run_tag"])] = {
            "status": "done",
            "replaced": True,
            "finished_at": live.get("finished_at"),
            "tables": _tables_of(settings.db_path),
        }
    return close_stale_running(settings.history_path, str(settings.db_path), known)


def _run_tag_of(db_path: Path) -> str | None:
    tag = _run_info_of(db_path).get("run_tag")
    return None if tag is None else str(tag)


class SnapshotRun:
    """One full snapshot run (fresh or resumed). Holds the lock for its whole life."""

    def __init__(
        self,
        settings: Settings,
        on_event: EventSink,
        cancel: threading.Event,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.settings = settings = resolve_db_path(settings)
        self._sink = on_event
        self.cancel = cancel
        self.transport_factory = transport_factory
        self.checkpoints = CheckpointManager(settings.checkpoint_dir)
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.log: RunLog | None = None
        self.events_file: EventsFile | None = None
        self.conn: sqlite3.Connection | None = None
        self.cp: Checkpoint | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.started_mono = time.monotonic()
        self.current_phase = "start"
        self._pending_warnings: list[str] = []  # found before the run log exists
        self.swap_method: str | None = None
        self.discarded = False  # a run that committed nothing removed its temp DB and checkpoint

    # --- events --------------------------------------------------------------------------------
    def emit(self, event: EngineEvent) -> None:
        if isinstance(event, RequestRetried):
            self._log(
                f"retry {event.endpoint} attempt {event.attempt}/{event.max_attempts}: "
                f"{event.status or '-'} {event.error}; wait {event.wait_s:.2f} s ({event.reason})"
            )
            ep = self.endpoints.get(event.endpoint)
            if ep is not None:
                self._sink(
                    EndpointProgress(
                        ep.spec.name,
                        "backoff",
                        ep.state.pages,
                        ep.state.rows,
                        ep.expected,
                        ep.state.cursor,
                        event.wait_s,
                    )
                )
        elif isinstance(event, WorkspacePaused):
            self._log(f"workspace paused {event.wait_s:.1f} s ({event.status} on {event.endpoint})")
        elif isinstance(event, EngineWarning):
            self.warnings.append(event.message)
            self._log(f"warning: {event.message}")
        try:
            self._sink(event)
        except Exception:  # a broken UI callback must not break the snapshot
            self._log_block("event sink failed:", traceback.format_exc())

    def _log(self, message: str) -> None:
        if self.log is not None:
            self.log.write(message)

    def write_log(self, message: str) -> None:
        """A line in the run log (for the crawl, which reports through this run)."""
        self._log(message)

    def _log_block(self, title: str, body: str) -> None:
        if self.log is not None:
            self.log.write_block(title, body)

    def warn(self, message: str) -> None:
        self.emit(EngineWarning(message))

    def phase(self, phase: Any, detail: str = "") -> None:
        self.current_phase = str(phase)
        self._log(f"phase: {phase}" + (f" ({detail})" if detail else ""))
        self.emit(PhaseChanged(phase, detail))

    def progress(self, ep: Endpoint, state: Any) -> None:
        self.emit(
            EndpointProgress(
                ep.spec.name, state, ep.state.pages, ep.state.rows, ep.expected, ep.state.cursor
            )
        )

    # --- checkpoint --------------------------------------------------------------------------
    def save_checkpoint(self, phase: str | None = None) -> None:
        cp = self.cp
        if cp is None:
            return
        if phase is not None:
            cp.phase = phase
        self._count_rows()
        cp.endpoints = {name: ep.state for name, ep in self.endpoints.items()}
        path = self.checkpoints.save(cp)
        self._log(f"checkpoint saved: {path} (phase {cp.phase})")
        self.emit(
            CheckpointSaved(
                str(path),
                cp.run_tag,
                cp.saved_at,
                cp.phase,
                {
                    name: {
                        "pages": s.pages,
                        "rows": s.rows,
                        "cursor": s.cursor,
                        "done": s.done,
                    }
                    for name, s in cp.endpoints.items()
                },
            )
        )

    def _count_rows(self) -> None:
        """The checkpoint's row counts are the tables' own (an id seen on two pages is one row),
        so a resume compares like with like."""
        if self.conn is None:
            return
        for ep in self.endpoints.values():
            if ep.writer is not None and ep.state.pages:
                with contextlib.suppress(sqlite3.Error):
                    ep.state.rows = ep.writer.row_count()

    # --- main ----------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        settings = self.settings
        _prepare_common(settings)
        lock = RunLock(settings.lock_path)
        lock.acquire()
        try:
            # a kill mid in-place swap leaves a hot journal: SQLite rolls it back before anything
            # reads the live DB read-only (which it could not do with the journal there)
            recover_db(settings.db_path)
            try:
                close_stale(settings)
            except OSError as exc:
                raise SalesmapTuiError(
                    f"cannot write the run history {settings.history_path}: {_describe(exc)}; "
                    "nothing was started and the live DB is untouched"
                ) from None
            self._sweep_orphans()
            self.cp = self._load_or_create_checkpoint()
            return self._run()
        finally:
            if self.events_file is not None:
                self.events_file.close()
            lock.release()

    def _sweep_orphans(self) -> None:
        """Remove what killed runs left that nothing can use, so disk use does not grow.

        Only with the lock held (no other run is writing), and only files no checkpoint names:
        a temp DB of a run killed before its first checkpoint, and partial backup files. A
        checkpoint's `.json.tmp` is kept: copying it to `.json` is the seed's manual recovery.
        """
        s = self.settings
        named = {
            str(Path(info.checkpoint.temp_db_path).absolute())
            for info in self.checkpoints.list()
            if info.checkpoint is not None
        }
        tags_with_files = {
            p.name[len("checkpoint_") :].split(".json")[0]
            for p in s.checkpoint_dir.glob("checkpoint_*.json*")
        }
        orphans: list[Path] = []
        prefix = s.db_path.name + "."
        for temp in s.db_path.absolute().parent.glob(glob.escape(prefix) + "*.tmp"):
            tag = temp.name[len(prefix) : -len(".tmp")]
            if not is_run_tag(tag) or str(temp) in named or tag in tags_with_files:
                continue
            orphans += [
                temp,
                *(temp.with_name(temp.name + x) for x in ("-wal", "-shm", "-journal")),
            ]
        if s.backup_dir.is_dir():
            # only this DB's partial backups: another DB sharing the folder may be writing its own
            stem = glob.escape(f"{s.db_path.stem}_")
            orphans += list(s.backup_dir.glob(f"{stem}*.db.gz.{owner_tag(s.db_path)}*.tmp*"))
            # partial backups of older versions (8 hex digits, no owner tag)
            orphans += list(s.backup_dir.glob(f"{stem}*.db.gz.{'[0-9a-f]' * 8}.*tmp"))
        why = {p: "left by an interrupted run, nothing could resume it" for p in orphans}
        why.update(self._superseded_temp_dbs())
        why.update(self._restore_leftovers())
        for path, reason in why.items():
            try:
                if path.is_file() and not path.is_symlink():
                    path.unlink()
                    self._pending_warnings.append(f"removed {path}: {reason}")
            except OSError as exc:
                self._pending_warnings.append(f"could not remove leftover {path}: {exc}")

    def _superseded_temp_dbs(self) -> dict[Path, str]:
        """Temp DBs of unfinished runs older than the live snapshot: `--resume` never takes them
        (it would put older data live), so they would stay forever. `--resume-run-tag` can
        still force one for SUPERSEDED_KEEP_S after its last checkpoint; then it goes. Only a
        checkpoint's own temp name is touched, and never the run being resumed."""
        s = self.settings
        live_started = _run_info_of(s.db_path).get("started_at")
        if not live_started:
            return {}
        out: dict[Path, str] = {}
        now = time.time()
        for info in self.checkpoints.list():
            cp = info.checkpoint
            if cp is None or cp.done or cp.run_tag == s.resume_run_tag:
                continue
            if now - info.mtime < SUPERSEDED_KEEP_S:
                continue
            try:
                check_own_paths(cp, s.db_path)
            except BadCheckpoint:
                continue
            if cp.started_at < str(live_started):
                temp = Path(cp.temp_db_path)
                reason = f"run {cp.run_tag} was superseded by the live snapshot ({live_started})"
                for path in (temp, *(temp.with_name(temp.name + x) for x in SIDECARS)):
                    out[path] = reason
        return out

    def _restore_leftovers(self) -> dict[Path, str]:
        """Decompressed copies a killed restore left (`<db>.restore-*.tmp`), an hour old or more
        (a restore waiting for its confirmation keeps its fresh copy)."""
        s = self.settings
        pattern = glob.escape(f"{s.db_path.name}.restore-") + "*.tmp*"
        out: dict[Path, str] = {}
        now = time.time()
        for path in s.db_path.absolute().parent.glob(pattern):
            try:
                old = now - path.lstat().st_mtime > RESTORE_LEFTOVER_AGE_S
            except OSError:
                continue
            if old:
                out[path] = "left by a restore that did not finish"
        return out

    def _load_or_create_checkpoint(self) -> Checkpoint:
        s = self.settings
        cp: Checkpoint | None = None
        if s.resume_run_tag:
            cp = self.checkpoints.load(s.resume_run_tag)
            if cp.done:
                raise BadCheckpoint(
                    f"run {cp.run_tag} already finished; nothing to resume (start a fresh run)"
                )
        elif s.resume:
            cp = self._newest_resumable()
            if cp is None:
                self._pending_warnings.append(
                    "nothing to resume: no unfinished checkpoint; starting a fresh run"
                )
        if cp is not None:
            self._check_resumable(cp)
            self.resumed = True
            return cp
        self.resumed = False
        tag = new_run_tag()
        return Checkpoint(
            run_tag=tag,
            temp_db_path=str(s.temp_db_path(tag).absolute()),
            db_path=str(s.db_path.absolute()),
            settings=s.public_dict(),
            backup_path=None,
            phase="start",
            started_at=utc_now_iso(),
            workspace=workspace_of(s.base_url, s.token or ""),
        )

    def _newest_resumable(self) -> Checkpoint | None:
        """`--resume` (cron passes it every night): the newest unfinished run of this DB that
        can continue. Unusable or stale checkpoints are skipped with a warning, never deleted,
        so one broken checkpoint cannot fail every later run; `--resume-run-tag` still reaches
        them."""
        live_started = _run_info_of(self.settings.db_path).get("started_at")
        for info in self.checkpoints.list():
            cp = info.checkpoint
            if cp is None or cp.done:
                continue
            if Path(cp.db_path).absolute() != self.settings.db_path.absolute():
                continue
            if live_started and cp.started_at < str(live_started):
                self._pending_warnings.append(
                    f"not resuming {cp.run_tag}: the live DB holds a newer snapshot "
                    f"(started {live_started}); use --resume-run-tag {cp.run_tag} to force it"
                )
                continue
            try:
                self._check_resumable(cp)
            except BadCheckpoint as exc:
                self._pending_warnings.append(f"skipping checkpoint {cp.run_tag}: {exc}")
                continue
            return cp
        return None

    def _check_resumable(self, cp: Checkpoint) -> None:
        """Raise BadCheckpoint when `cp` must not be continued by this run: another DB, another
        workspace, superseded by a restore, older than --resume-max-age, or its temp DB gone."""
        s = self.settings
        if Path(cp.db_path).absolute() != s.db_path.absolute():
            raise BadCheckpoint(f"checkpoint {cp.run_tag} belongs to {cp.db_path}, not {s.db_path}")
        other = workspace_problem(cp, s.base_url, s.token)
        if other is not None:
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: {other}; a resume never mixes two workspaces in "
                "one DB — start a fresh run"
            )
        if cp.superseded:
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: superseded ({cp.superseded}); its data is older "
                "than the live DB's — start a fresh run"
            )
        age = age_hours(cp)
        if age is None or age > s.resume_max_age:
            shown = "an unreadable time" if age is None else f"{age:.1f} h ago"
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: it started {cp.started_at} ({shown}), longer ago "
                f"than --resume-max-age {s.resume_max_age:g} h; its tables would mix days — "
                "start a fresh run"
            )
        temp = Path(cp.temp_db_path)
        if cp.phase == "swap" and not temp.exists():
            return  # killed after the swap: finishing only records it
        if not temp.is_file():
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: its temp DB {temp} is gone; start a fresh run"
            )
        check_own_paths(cp, s.db_path)  # an existing file that is not ours: refused
        try:
            remove_planted_links(temp)  # before SQLite opens it, even to read its run tag
        except OSError as exc:
            raise BadCheckpoint(f"cannot resume {cp.run_tag}: {exc.strerror or exc}") from None
        tag = _run_tag_of(temp)
        if tag != cp.run_tag:
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: temp DB {temp} belongs to run {tag or 'unknown'}"
            )

    def _history(self, status: RunStatus, result: RunResult | None = None) -> None:
        cp = self.cp
        assert cp is not None
        if result is None:
            record = make_record(
                run_tag=cp.run_tag,
                kind="snapshot",
                status=status,
                started_at=cp.started_at,
                db_path=str(self.settings.db_path),
                final_db_path=str(self.settings.db_path),
                temp_db_path=cp.temp_db_path,
                backup_path=cp.backup_path,
                log_path=str(self.settings.log_path(cp.run_tag)),
            )
        else:
            record = result_record(result)
        append_history(self.settings.history_path, record)

    def _run(self) -> RunResult:
        s = self.settings
        cp = self.cp
        assert cp is not None
        self.log = RunLog(s.log_path(cp.run_tag), s.token)
        if self.log.failed:
            raise UsageError(self.log.failed)
        # every event from here on also goes to the events file (a TUI attached to this run)
        self.events_file = EventsFile(events_path_for(s.log_path(cp.run_tag)), s.token)
        self._sink = self.events_file.tee(self._sink)
        expected = read_manifest_rows(s.db_path)
        for spec in SNAPSHOT_ENDPOINTS:
            state = cp.endpoints.get(spec.name) or EndpointCheckpoint()
            self.endpoints[spec.name] = Endpoint(spec, state, expected.get(spec.name))
        self._log(
            f"{'resuming' if self.resumed else 'starting'} snapshot run {cp.run_tag}: "
            f"db {s.db_path}, temp {cp.temp_db_path}, base URL {s.base_url}, "
            f"settings {json.dumps(s.public_dict(), ensure_ascii=False)}"
        )
        self.emit(
            RunStarted(
                cp.run_tag,
                "snapshot",
                self.resumed,
                str(s.db_path),
                cp.temp_db_path,
                str(s.log_path(cp.run_tag)),
                s.base_url,
                tuple(self.endpoints),
                expected,
                cp.started_at,
            )
        )
        for message in self._pending_warnings:
            self.warn(message)
        status: RunStatus = "failed"
        exit_code = 1
        message = ""
        webform_result: WebformResult | None = None
        replaced = False
        fallback: str | None = None
        reason: str | None = None
        try:
            # inside the try: a history file that cannot be written fails the run cleanly
            self._history("running")
            if cp.phase == "swap" and not Path(cp.temp_db_path).exists():
                return self._finish_after_swap()
            self._open_temp_db()
            if cp.phase in ("start", "crawl"):
                self.save_checkpoint("crawl")
            webform_result = self._network()
            self._count_webform_errors(webform_result)
            self._finalize(webform_result)
            held = self._shrink_guard()
            if held is not None:
                fallback, reason = held
                status, exit_code = "fallback", 5
                message = (
                    f"snapshot done but {reason}; it is kept at {fallback} and {s.db_path} is "
                    "as it was (let it in from the TUI, or pass --max-shrink 1)"
                )
            else:
                # only now: a run that fails or is held back makes no backup
                self._backup()
                replaced, fallback = self._swap()
                status = "done" if replaced else "fallback"
                if not replaced:
                    exit_code = 3
                    reason = self.errors[-1] if self.errors else "the swap failed"
                    message = (
                        f"snapshot done but {s.db_path} could not be replaced; the new DB is at "
                        f"{fallback} and the live DB is as it was"
                    )
                elif webform_result.status == "failed":
                    exit_code = 4
                    reason = f"web-form pass failed: {webform_result.error}"
                    message = (
                        f"snapshot done and {s.db_path} replaced, but the web-form pass failed: "
                        f"{webform_result.error}; run --webform-only to retry it"
                    )
                else:
                    exit_code = 0
                    message = f"snapshot done: {s.db_path} replaced"
        except RunCancelled:
            status, exit_code = "interrupted", cancel_exit_code(self.cancel)
            reason = _stopped_by(exit_code)
            self._close_conn()
            self._safe_checkpoint()
            message = (
                f"stopped; checkpoint saved — resume with --resume-run-tag {cp.run_tag} "
                "(the live DB is untouched)"
            )
        except TokenRejected as exc:
            status, exit_code = "failed", 2
            reason = str(exc)
            self.errors.append(str(exc))
            self._close_conn()
            self._safe_checkpoint()
            message = f"{exc}; the live DB is untouched"
        except (SalesmapTuiError, OSError, sqlite3.Error) as exc:
            status, exit_code = "failed", 1
            text = _where(exc, f"phase {self.current_phase}", cp.temp_db_path)
            reason = text
            if isinstance(exc, CrawlFailed):
                # one error per failed endpoint, not one joined string
                self.errors.extend(e for e in exc.errors if e not in self.errors)
            elif text not in self.errors:
                self.errors.append(text)
            self._log_block("run failed:", traceback.format_exc())
            self._write_failed_manifest()
            self._close_conn()
            self._safe_checkpoint()
            message = (
                f"run failed: {text}; the live DB is untouched; resume with "
                f"--resume-run-tag {cp.run_tag}"
            )
        if status in ("failed", "interrupted") and self._nothing_committed():
            message = self._discard_empty_run(message)
        result = self._result(
            status, exit_code, message, webform_result, replaced, fallback, reason
        )
        return self._finish(result)

    # --- phases --------------------------------------------------------------------------------
    def _backup(self) -> None:
        """Back up the live DB before it is replaced, named by the run tag of the data it holds;
        a live DB already backed up is not backed up again."""
        s = self.settings
        cp = self.cp
        assert cp is not None
        if s.no_backup or not s.db_path.is_file() or cp.backup_path:
            return
        self.phase("backup")
        ensure_private_dir(s.backup_dir)
        dest = s.backup_path(_run_tag_of(s.db_path) or cp.run_tag)
        if dest.is_file():
            cp.backup_path = str(dest)
            self._log(f"backup: the live DB is already backed up in {dest}")
            return
        crashpoint("backup")
        size = make_backup(s.db_path, dest)
        crashpoint("backup_made")
        cp.backup_path = str(dest)
        self._log(f"backup: {dest} ({size} bytes)")
        self.emit(BackupMade(str(dest), size))
        self.save_checkpoint()

    def _open_temp_db(self) -> None:
        cp = self.cp
        assert cp is not None
        self.phase("prepare")
        conn = prepare_connection(Path(cp.temp_db_path))
        self.conn = conn
        conn.execute(RUN_INFO_SQL)
        conn.execute(
            "INSERT OR IGNORE INTO run_info VALUES (?, ?, NULL, 'running', ?, ?)",
            (cp.run_tag, cp.started_at, self.settings.base_url, __version__),
        )
        conn.commit()
        if cp.phase in ("start",):
            copied = webform.carry_over(self.settings.db_path, conn)
            self._log(f"webform_history: {copied} rows carried over from the live DB")
        else:
            webform.ensure_table(conn)
            conn.commit()
        for ep in self.endpoints.values():
            ep.writer = TableWriter(
                conn,
                ep.spec.name,
                keep_payload=ep.spec.name == "memo",
                source=f"GET {ep.spec.path}",
            )
            if ep.state.pages:
                self._reconcile_rows(ep, ep.writer.row_count())
        crashpoint("prepare")

    def _reconcile_rows(self, ep: Endpoint, actual: int) -> None:
        """A resumed endpoint against what its table really holds.

        Fewer rows than the checkpoint says means pages it covers were lost (a power cut ahead
        of an older version's fsync, a hand-edited file): continuing from its cursor would skip
        them for good, so the endpoint starts over (upserts keep what is there). More rows is
        harmless: a page fetched again after the checkpoint was taken.
        """
        if actual < ep.state.rows:
            self.warn(
                f"{ep.spec.name}: checkpoint says {ep.state.rows} rows, the temp DB has {actual}; "
                "fetching this endpoint again from its first page so no row is lost"
            )
            ep.state = EndpointCheckpoint()
            return
        if actual > ep.state.rows:
            self.warn(
                f"{ep.spec.name}: checkpoint says {ep.state.rows} rows, the temp DB has {actual}; "
                "continuing (pages are upserted by id)"
            )
        ep.state.rows = actual

    def _network(self) -> WebformResult:
        return asyncio.run(self._network_async())

    async def _network_async(self) -> WebformResult:
        s = self.settings
        cp = self.cp
        assert cp is not None
        # per workspace, not per run: a resume right after a cancel keeps the rules across both
        pacer = shared_pacer(
            s.base_url,
            s.token,
            s.min_interval,
            s.rate_limit_requests,
            s.rate_limit_window,
            on_stats=self.emit,
            concurrency=s.concurrency,
        )
        transport = self.transport_factory() if self.transport_factory else None
        async with SalesmapClient(s, pacer, self.emit, self.cancel, transport=transport) as client:
            assert self.conn is not None
            # the web-form pass runs alongside the crawl; a resumed run skips what is done
            forms = WebformPass(self.conn, cp.run_tag, self.emit, self._log)
            crawling = cp.phase in ("start", "crawl")
            if crawling:
                self.phase("crawl")
            await crawl(self, client, forms)
            failed = [ep for ep in self.endpoints.values() if ep.error]
            if failed:
                causes = [
                    (ep.spec.name, (ep.error or "").removeprefix(f"{ep.spec.name}: "))
                    for ep in failed
                ]
                # the message groups endpoints by cause; the errors stay one per endpoint
                raise CrawlFailed(
                    [ep.error or ep.spec.name for ep in failed],
                    "; ".join(merge_endpoint_errors(causes)),
                )
            if crawling:
                self.save_checkpoint("webform")
            self.phase("webform")
            crashpoint("webform")
            try:
                result = await forms.finish(client)
            except RunCancelled:
                raise
            except Exception as exc:  # a failed pass never blocks the swap
                self._log_block("web-form pass failed:", traceback.format_exc())
                result = WebformResult(
                    status="failed", error=_where(exc, "web-form pass", cp.temp_db_path)
                )
        self._log(f"web-form pass: {json.dumps(result.as_dict(), ensure_ascii=False)}")
        return result

    def _manifest_rows(self) -> list[tuple[str, int, int, int, str]]:
        rows = []
        for ep in self.endpoints.values():
            w = ep.writer
            count = w.row_count() if w else ep.state.rows
            cols = w.column_count() if w else 0
            errors = [ep.error] if ep.error else []
            rows.append((ep.spec.name, count, cols, ep.state.pages, json.dumps(errors)))
        return rows

    def _write_manifest(self, status: str) -> None:
        conn = self.conn
        cp = self.cp
        assert conn is not None and cp is not None
        manifest = self._manifest_rows()
        conn.execute(MANIFEST_SQL)
        conn.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?, ?, ?, ?)", manifest)
        conn.execute(
            "UPDATE run_info SET finished_at = ?, status = ? WHERE run_tag = ?",
            (utc_now_iso(), status, cp.run_tag),
        )
        conn.commit()
        for name, rows, cols, pages, errors in manifest:
            self._log(f"manifest: {name} rows={rows} cols={cols} pages={pages} errors={errors}")
        info = conn.execute("SELECT * FROM run_info").fetchone()
        self._log(f"run_info: {info}")

    def _write_failed_manifest(self) -> None:
        if self.conn is None:
            return
        try:
            self._write_manifest("failed")
        except sqlite3.Error as exc:
            self._log(f"could not write the manifest: {exc}")

    def _finalize(self, wf: WebformResult) -> None:
        cp = self.cp
        assert cp is not None and self.conn is not None
        self.phase("finalize")
        self.save_checkpoint("finalize")
        drop_state(self.conn)  # the web-form pass's bookkeeping is no table of the snapshot
        self._merge_live_webform_rows()
        self._write_manifest("done")
        crashpoint("finalize")
        # indexes on relation columns and _fields (JSON types per column), for dashboards
        prepare_for_dashboards(
            self.conn,
            [*self.endpoints, webform.TABLE],
            json_columns={webform.TABLE: ("contents", "payload")},
        )
        self.tables = self._tables()
        finalize_sqlite_connection(self.conn)
        self.conn = None
        fsync_file(Path(cp.temp_db_path))
        crashpoint("finalized")

    def _merge_live_webform_rows(self) -> None:
        """A resumed run: the live DB may have gained web-form rows while the run was stopped
        (a `--webform-only` pass); they are merged before the snapshot goes live, never lost."""
        if not self.resumed or self.conn is None:
            return
        merged = webform.carry_over(self.settings.db_path, self.conn)
        if merged:
            self._log(
                f"webform_history: {merged} rows the live DB gained while this run was "
                "interrupted are kept"
            )

    def _tables(self) -> dict[str, dict[str, int]]:
        tables: dict[str, dict[str, int]] = {}
        for ep in self.endpoints.values():
            w = ep.writer
            if w is not None:
                tables[ep.spec.name] = {"rows": w.row_count(), "cols": w.column_count()}
        if self.conn is not None and webform.table_exists(self.conn, webform.TABLE):
            n = self.conn.execute(f"SELECT COUNT(*) FROM {webform.TABLE}").fetchone()[0]
            tables[webform.TABLE] = {"rows": int(n), "cols": len(webform.COLUMNS)}
        return tables

    def _nothing_committed(self) -> bool:
        cp = self.cp
        assert cp is not None
        return cp.phase in ("start", "crawl") and not any(
            ep.state.pages for ep in self.endpoints.values()
        )

    def _discard_empty_run(self, message: str) -> str:
        """A run that committed no page leaves nothing to resume: no temp DB, no checkpoint."""
        cp = self.cp
        assert cp is not None
        self._close_conn()
        temp = Path(cp.temp_db_path)
        try:
            for path in (temp, *(temp.with_name(temp.name + x) for x in SIDECAR_SUFFIXES)):
                path.unlink(missing_ok=True)
            self.checkpoints.path_for(cp.run_tag).unlink(missing_ok=True)
        except OSError as exc:
            self._log(f"could not remove the empty run's files: {exc}")
            return message
        self.discarded = True
        self._log("no page was committed: temp DB and checkpoint removed, nothing to resume")
        cut = message.find("; resume with")
        message = message[:cut] if cut >= 0 else message.split(" — resume with")[0]
        return message + " (no page was fetched: nothing to resume)"

    def _count_webform_errors(self, wf: WebformResult) -> None:
        """A failed web-form pass is an error of the run (exit 4 is never `error_count 0`)."""
        if wf.status != "failed":
            return
        for error in wf.errors or (f"web-form pass failed: {wf.error}",):
            self.errors.append(error)

    def _shrink_guard(self) -> tuple[str, str] | None:
        """Hold the finished snapshot back when a list table shrank too much against the live
        DB: (where it is kept, why), or None to swap it in."""
        s = self.settings
        cp = self.cp
        assert cp is not None
        if s.max_shrink >= 1 or not s.db_path.is_file():
            return None
        new = {name: t["rows"] for name, t in (getattr(self, "tables", None) or {}).items()}
        shrinks = shrunk_tables(table_rows(s.db_path), new, s.max_shrink)
        if not shrinks:
            return None
        reason = shrink_reason(shrinks, s.max_shrink)
        self.phase("swap", "held back")
        self.save_checkpoint("swap")
        dest = s.fallback_db_path(cp.run_tag)
        park_fallback(Path(cp.temp_db_path), dest)
        self.warn(f"{reason}; the new snapshot is kept at {dest}")
        return str(dest), reason

    def _swap(self) -> tuple[bool, str | None]:
        s = self.settings
        cp = self.cp
        assert cp is not None
        self.phase("swap")
        self.save_checkpoint("swap")
        crashpoint("swap")
        outcome = replace_file_with_retry(
            Path(cp.temp_db_path),
            s.db_path,
            s.fallback_db_path(cp.run_tag),
            mode=swap_mode(s.swap),
            log=self._log,
        )
        if outcome.replaced:
            self.swap_method = outcome.method
            self._log(f"swap ({outcome.method}): {cp.temp_db_path} -> {s.db_path}")
            return True, None
        why = outcome.error or "replace failed"
        holders = f" (held by {', '.join(outcome.holders)})" if outcome.holders else ""
        self.errors.append(f"swap failed: {why}{holders}")
        fb = str(outcome.fallback_path) if outcome.fallback_path else None
        if fb is None:
            if not Path(cp.temp_db_path).is_file():
                # no snapshot anywhere: a failed run, not a fallback; and the checkpoint must
                # not read as "killed after the swap" to the next --resume
                cp.phase = "finalize"
                raise SalesmapTuiError(f"the new DB {cp.temp_db_path} is gone: {why}")
            fb = cp.temp_db_path  # rename and copy both failed: it is where it was built
        self._log(f"swap fell back: new DB at {fb}; live DB left as it was: {why}{holders}")
        return False, fb

    def _finish_after_swap(self) -> RunResult:
        """Resumed after a kill between the swap and the history record: record it."""
        s = self.settings
        cp = self.cp
        assert cp is not None
        live_tag = _run_tag_of(s.db_path)
        fb = s.fallback_db_path(cp.run_tag)
        if live_tag == cp.run_tag:
            status: RunStatus = "done"
            code, fallback, replaced = 0, None, True
            message = f"the swap had completed before the interruption: {s.db_path} is current"
        elif fb.exists():
            status, code, fallback, replaced = "fallback", 3, str(fb), False
            message = f"the swap had fallen back before the interruption: new DB at {fb}"
            shrinks = shrunk_tables(table_rows(s.db_path), table_rows(fb), s.max_shrink)
            if shrinks:
                code = 5
                message = f"{shrink_reason(shrinks, s.max_shrink)}; the new DB is kept at {fb}"
        else:
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: its temp DB is gone and the live DB is not its "
                "snapshot; start a fresh run"
            )
        self.tables = _tables_of(s.db_path if replaced else fb)
        result = self._result(status, code, message, None, replaced, fallback, message)
        return self._finish(result)

    def _retention(self) -> None:
        apply_run_retention(self.settings, self._log)

    def _close_conn(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    def _safe_checkpoint(self) -> None:
        try:
            self.save_checkpoint()
        except OSError as exc:
            self.errors.append(f"could not save the checkpoint: {exc}")
            self._log(f"could not save the checkpoint: {exc}")

    def _result(
        self,
        status: RunStatus,
        exit_code: int,
        message: str,
        wf: WebformResult | None,
        replaced: bool,
        fallback: str | None,
        reason: str | None = None,
    ) -> RunResult:
        s = self.settings
        cp = self.cp
        assert cp is not None
        tables = getattr(self, "tables", None)
        if tables is None:
            tables = {
                name: {"rows": ep.state.rows, "cols": ep.writer.column_count() if ep.writer else 0}
                for name, ep in self.endpoints.items()
            }
        finished = utc_now_iso()
        return RunResult(
            run_tag=cp.run_tag,
            kind="snapshot",
            status=status,
            exit_code=exit_code,
            started_at=cp.started_at,
            finished_at=finished,
            duration_s=round(time.monotonic() - self.started_mono, 3),
            db_path=str(s.db_path),
            final_db_path=str(s.db_path),
            temp_db_path=cp.temp_db_path,
            backup_path=cp.backup_path,
            log_path=str(s.log_path(cp.run_tag)),
            replaced=replaced,
            fallback_path=fallback,
            tables=tables,
            errors=tuple(self.errors),
            webform=wf,
            message=message + self._log_trouble(),
            swap=self.swap_method,
            reason=reason,
        )

    def _log_trouble(self) -> str:
        """A run log that stopped being written never stops the run, but the user hears of it."""
        if self.log is not None and self.log.failed:
            return f" (warning: {self.log.failed}; the log is incomplete)"
        return ""

    def _finish(self, result: RunResult) -> RunResult:
        cp = self.cp
        assert cp is not None
        self._log(f"finished: {result.status} (exit {result.exit_code}): {result.message}")
        try:
            self._history(result.status, result)
        except OSError as exc:
            result = _history_missing(result, exc)
            self._log(f"could not append the history record: {_describe(exc)}")
        crashpoint("finish")
        if result.status in ("done", "fallback"):
            cp.done = True
            cp.phase = "done"
            self._safe_checkpoint()
        self._retention()
        self.emit(RunFinished(result))
        if self.log is not None:
            self.log.close()
        return result


def _where(exc: BaseException, phase: str, db: Path | str | None) -> str:
    """A local I/O failure with the phase it struck in and the file it was writing.

    SQLite's errors ("database or disk is full") name no file: `db` is the one being written.
    An OSError names its own file (the engine's writers put it in their messages). Other
    errors (the API's) are described as they are.
    """
    text = _describe(exc)
    if isinstance(exc, sqlite3.Error) and db is not None:
        return f"{phase}: writing {db} failed: {text}"
    if isinstance(exc, OSError):
        return f"{phase}: {text}"
    return text


def _history_missing(result: RunResult, exc: OSError) -> RunResult:
    """The run's message, told that its final history record could not be written."""
    note = f" (warning: {_describe(exc)}; `history` does not show this outcome)"
    return dataclasses.replace(result, message=result.message + note)


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


class CrawlFailed(SalesmapTuiError):
    """One or more endpoints failed after their retries: the run fails, nothing is swapped."""

    def __init__(self, errors: list[str], message: str | None = None) -> None:
        super().__init__(message or "; ".join(errors))
        self.errors = list(errors)


def _stopped_by(exit_code: int) -> str:
    if exit_code == 143:
        return "stopped by SIGTERM"
    if exit_code == 130:
        return "stopped (SIGINT or cancel)"
    return "stopped"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return str(exc) or type(exc).__name__


def _tables_of(db: Path) -> dict[str, dict[str, int]]:
    tables: dict[str, dict[str, int]] = {}
    try:
        conn = webform.open_readonly(db)
        try:
            if webform.table_exists(conn, "manifest"):
                for name, rows, cols in conn.execute("SELECT table_name, rows, cols FROM manifest"):
                    tables[str(name)] = {"rows": int(rows or 0), "cols": int(cols or 0)}
        finally:
            conn.close()
    except sqlite3.Error:
        pass
    return tables


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


def held_back_snapshots(settings: Settings) -> list[dict[str, Any]]:
    """Runs of this DB the shrink guard held back whose snapshot is still beside it, newest
    first: their last history record (`fallback_path`, `reason`, `tables`)."""
    out = []
    for record in last_records(settings.history_path).values():
        if record.get("exit_code") != 5 or record.get("status") != "fallback":
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


def promote_snapshot(
    settings: Settings, snapshot_path: Path, on_event: EventSink | None = None
) -> RunResult:
    """Let a held-back snapshot in (the TUI's "let it in" after a look): under the run lock,
    check it, back up the live DB, swap it in the same way as a run, record it as done."""
    sink: EventSink = on_event or (lambda event: None)
    settings = resolve_db_path(settings)
    snapshot_path = Path(snapshot_path)
    t0 = time.monotonic()
    lock = RunLock(settings.lock_path)
    lock.acquire()
    try:
        recover_db(settings.db_path)
        info = _run_info_of(snapshot_path)
        tag = str(info.get("run_tag") or "")
        if not is_run_tag(tag) or info.get("status") != "done":
            raise UsageError(f"{snapshot_path} is not a finished snapshot (no done run_info)")
        _check_integrity(snapshot_path)
        backup_path: str | None = None
        if not settings.no_backup and settings.db_path.is_file():
            ensure_private_dir(settings.backup_dir)
            dest = settings.backup_path(_run_tag_of(settings.db_path) or new_run_tag())
            if not dest.is_file():
                size = make_backup(settings.db_path, dest)
                sink(BackupMade(str(dest), size))
            backup_path = str(dest)
        previous = {
            str(r.get("run_tag")): r for r in last_records(settings.history_path).values()
        }.get(tag, {})
        tables = _tables_of(snapshot_path)
        outcome = replace_file_with_retry(
            snapshot_path, settings.db_path, None, mode=swap_mode(settings.swap)
        )
        if not outcome.replaced:
            raise SalesmapTuiError(
                f"could not swap {snapshot_path} in: {outcome.error}; the live DB is as it was"
            )
        result = RunResult(
            run_tag=tag,
            kind="snapshot",
            status="done",
            exit_code=0,
            started_at=str(previous.get("started_at") or info.get("started_at") or ""),
            finished_at=utc_now_iso(),
            duration_s=round(time.monotonic() - t0, 3),
            db_path=str(settings.db_path),
            final_db_path=str(settings.db_path),
            temp_db_path=None,
            backup_path=backup_path,
            log_path=previous.get("log_path"),
            replaced=True,
            fallback_path=None,
            tables=tables,
            errors=(),
            webform=None,
            message=f"{snapshot_path} let in: {settings.db_path} replaced",
            swap=outcome.method,
            reason=f"let in after the shrink guard held it back ({snapshot_path})",
        )
        append_history(settings.history_path, result_record(result))
        apply_run_retention(settings, lambda message: None)
        sink(RunFinished(result))
        return result
    finally:
        lock.release()


def _check_integrity(db: Path) -> None:
    try:
        conn = webform.open_readonly(db)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UsageError(f"{db} cannot be read as SQLite: {exc}") from None
    if [tuple(r) for r in rows] != [("ok",)]:
        raise UsageError(f"{db} fails the integrity check: {rows[0][0]}")


def run_snapshot(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    transport_factory: TransportFactory | None = None,
) -> RunResult:
    if settings.webform_only:
        return run_webform_only(settings, on_event, cancel, transport_factory)
    return SnapshotRun(settings, on_event, cancel, transport_factory).execute()


def run_webform_only(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    transport_factory: TransportFactory | None = None,
) -> RunResult:
    """The web-form pass on the live DB, in place, in one transaction; its own history record."""
    settings = resolve_db_path(settings)
    _prepare_common(settings)
    db = settings.db_path
    if not db.is_file():
        raise UsageError(f"no live DB at {db}: run a full snapshot first")
    lock = RunLock(settings.lock_path)
    lock.acquire()
    try:
        recover_db(db)
        close_stale(settings)
        tag = new_run_tag()
        started = utc_now_iso()
        t0 = time.monotonic()
        log_path = settings.log_path(tag)
        base = make_record(
            run_tag=tag,
            kind="webform",
            status="running",
            started_at=started,
            db_path=str(db),
            final_db_path=str(db),
            log_path=str(log_path),
        )
        events_file = EventsFile(events_path_for(log_path), settings.token)
        on_event = events_file.tee(on_event)
        with RunLog(log_path, settings.token) as log, contextlib.closing(events_file):
            log.write(f"starting webform-only run {tag} on {db} against {settings.base_url}")
            on_event(
                RunStarted(
                    tag, "webform", False, str(db), None, str(log_path), settings.base_url, ()
                )
            )
            append_history(settings.history_path, base)
            on_event(PhaseChanged("webform"))
            errors: list[str] = []
            exit_code = 0
            status: RunStatus = "done"
            result_wf: WebformResult
            try:
                result_wf = asyncio.run(
                    _webform_only_async(
                        settings, on_event, cancel, tag, log.write, transport_factory
                    )
                )
                if result_wf.status == "failed":
                    status, exit_code = "failed", 1
                    errors.extend(result_wf.errors or (result_wf.error or "web-form pass failed",))
            except RunCancelled:
                status, exit_code = "interrupted", cancel_exit_code(cancel)
                result_wf = WebformResult(status="failed", error=_stopped_by(exit_code))
            except (SalesmapTuiError, OSError, sqlite3.Error) as exc:
                status = "failed"
                exit_code = exc.exit_code if isinstance(exc, SalesmapTuiError) else 1
                errors.append(_where(exc, "web-form pass", db))
                log.write_block("web-form pass failed:", traceback.format_exc())
                result_wf = WebformResult(status="failed", error=errors[-1])
            table = {}
            try:
                conn = webform.open_readonly(db)
                try:
                    n = conn.execute(f"SELECT COUNT(*) FROM {webform.TABLE}").fetchone()[0]
                    table = {webform.TABLE: {"rows": int(n), "cols": len(webform.COLUMNS)}}
                finally:
                    conn.close()
            except sqlite3.Error:
                pass
            if status == "done":
                message = (
                    f"web forms refreshed: {result_wf.new_rows} new rows, {result_wf.dropped} "
                    f"dropped, {result_wf.skipped_forms} unknown forms skipped"
                )
            else:
                message = f"web-form pass {status}: {'; '.join(errors) or result_wf.error}; " + (
                    "webform_history is as it was"
                )
            result = RunResult(
                run_tag=tag,
                kind="webform",
                status=status,
                exit_code=exit_code,
                started_at=started,
                finished_at=utc_now_iso(),
                duration_s=round(time.monotonic() - t0, 3),
                db_path=str(db),
                final_db_path=str(db),
                temp_db_path=None,
                backup_path=None,
                log_path=str(log_path),
                replaced=False,
                fallback_path=None,
                tables=table,
                errors=tuple(errors),
                webform=result_wf,
                message=message,
                reason=None if status == "done" else (result_wf.error or "; ".join(errors)),
            )
            log.write(f"finished: {status}: {message}")
            try:
                append_history(settings.history_path, result_record(result))
            except OSError as exc:
                result = _history_missing(result, exc)
                log.write(f"could not append the history record: {_describe(exc)}")
            apply_run_retention(settings, log.write)
            on_event(RunFinished(result))
            return result
    finally:
        lock.release()


async def _webform_only_async(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    tag: str,
    log: Callable[[str], None],
    transport_factory: TransportFactory | None,
) -> WebformResult:
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
    conn = sqlite3.connect(settings.db_path, isolation_level="DEFERRED")
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        async with SalesmapClient(settings, pacer, on_event, cancel, transport=transport) as client:
            return await webform.update_webform_history(
                conn, client, tag, on_event, cancel, settings.concurrency, log
            )
    finally:
        _close_leaving_no_frames(conn, log)


def _close_leaving_no_frames(conn: sqlite3.Connection, log: Callable[[str], None]) -> None:
    """Close a connection to the live DB so no WAL frames stay behind (a rename swap would
    otherwise leave them beside a new file); the journal mode stays the one found."""
    try:
        if conn.in_transaction:
            conn.rollback()
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            busy, frames, moved = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log(f"WAL checkpoint of the live DB incomplete: {moved} of {frames} frames")
    except sqlite3.Error as exc:
        log(f"WAL checkpoint of the live DB failed: {exc}")
    finally:
        conn.close()
