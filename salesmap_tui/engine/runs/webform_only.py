"""`snapshot --webform-only`: the web-form pass on the live DB, in place, in one transaction,
with its own run tag, run log, events and history record (the run context's lifecycle)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx

from salesmap_tui.config import Settings
from salesmap_tui.engine import webform
from salesmap_tui.engine.errors import RunCancelled, SalesmapTuiError, UsageError
from salesmap_tui.engine.events import (
    EventSink,
    PhaseChanged,
    RunResult,
    RunStarted,
    RunStatus,
    WebformResult,
)
from salesmap_tui.engine.outcome import (
    ExitCode,
    Failure,
    exit_code_for,
    kind_of,
    stopped_by,
    where,
)
from salesmap_tui.engine.runs.context import RunContext, workspace_client
from salesmap_tui.engine.runtag import new_run_tag, utc_now_iso
from salesmap_tui.engine.sqlite_util import open_readonly


def run_webform_only(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
) -> RunResult:
    """The web-form pass on the live DB, in place, in one transaction; its own history record."""
    ctx = RunContext(settings, "webform", on_event)
    db = ctx.settings.db_path
    with ctx:
        if not db.is_file():
            raise UsageError(f"no live DB at {db}: run a full snapshot first")
        settings = ctx.settings
        tag = new_run_tag()
        started = utc_now_iso()
        t0 = time.monotonic()
        ctx.start(tag, require_log=False)
        ctx.write_log(f"starting webform-only run {tag} on {db} against {settings.base_url}")
        ctx.emit(
            RunStarted(
                tag, "webform", False, str(db), None, str(ctx.log_path), settings.base_url, ()
            )
        )
        ctx.record_running(started)
        ctx.emit(PhaseChanged("webform"))
        errors: list[str] = []
        exit_code: int = ExitCode.DONE
        status: RunStatus = "done"
        failure: Failure | None = None
        result_wf: WebformResult
        try:
            result_wf = asyncio.run(_webform_only_async(ctx, cancel, tag, transport_factory))
            if result_wf.status == "failed":
                status, exit_code = "failed", ExitCode.FAILED
                errors.extend(result_wf.errors or (result_wf.error or "web-form pass failed",))
                failure = Failure("webform", "; ".join(errors), "webform_history is as it was")
        except RunCancelled as exc:
            status, exit_code = "interrupted", exit_code_for(exc, cancel)
            result_wf = WebformResult(status="failed", error=stopped_by(exit_code))
            failure = Failure("cancelled", stopped_by(exit_code), "webform_history is as it was")
        except (SalesmapTuiError, OSError, sqlite3.Error) as exc:
            status = "failed"
            exit_code = exit_code_for(exc)
            errors.append(where(exc, "web-form pass", db))
            ctx.write_log_block("web-form pass failed:", traceback.format_exc())
            result_wf = WebformResult(status="failed", error=errors[-1])
            failure = Failure(kind_of(exc), errors[-1], "webform_history is as it was")
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
            exit_code=int(exit_code),
            started_at=started,
            finished_at=utc_now_iso(),
            duration_s=round(time.monotonic() - t0, 3),
            db_path=str(db),
            final_db_path=str(db),
            temp_db_path=None,
            backup_path=None,
            log_path=str(ctx.log_path),
            replaced=False,
            fallback_path=None,
            tables=_webform_table(db),
            errors=tuple(errors),
            webform=result_wf,
            message=message,
            reason=None if status == "done" else (result_wf.error or "; ".join(errors)),
            failure=failure,
        )
        return ctx.finish(result)


def _webform_table(db: Path) -> dict[str, dict[str, int]]:
    try:
        conn = open_readonly(db)
        try:
            n = conn.execute(f"SELECT COUNT(*) FROM {webform.TABLE}").fetchone()[0]
            return {webform.TABLE: {"rows": int(n), "cols": len(webform.COLUMNS)}}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


async def _webform_only_async(
    ctx: RunContext,
    cancel: threading.Event,
    tag: str,
    transport_factory: Callable[[], httpx.AsyncBaseTransport] | None,
) -> WebformResult:
    settings = ctx.settings
    conn = sqlite3.connect(settings.db_path, isolation_level="DEFERRED")
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        async with workspace_client(settings, ctx.emit, cancel, transport_factory) as client:
            return await webform.update_webform_history(
                conn, client, tag, ctx.emit, cancel, settings.concurrency, ctx.write_log
            )
    finally:
        _close_leaving_no_frames(conn, ctx.write_log)


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
