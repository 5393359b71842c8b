"""A full snapshot run, fresh or resumed: its steps in order, its outcome. Emits events.

Order (DESIGN.md "Finishing"; the steps are `phases.SNAPSHOT_STEPS`): the run context (lock,
close stale, run log, `running` record) → temp DB with the live DB's webform_history carried
over → every chain at once under one pacer, the web-form pass alongside, a checkpoint after
every N committed pages → manifest and run_info → finalize → shrink guard → backup →
`replace_file_with_retry` → history record, checkpoint marked done, retention.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from salesmap_tui.config import Settings
from salesmap_tui.engine import webform
from salesmap_tui.engine.backup import make_backup
from salesmap_tui.engine.checkpoint import Checkpoint, CheckpointManager, EndpointCheckpoint
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.endpoints import SNAPSHOT_ENDPOINTS
from salesmap_tui.engine.errors import (
    BadCheckpoint,
    RunCancelled,
    SalesmapTuiError,
    TokenRejected,
    merge_endpoint_errors,
)
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    EventSink,
    PhaseChanged,
    RequestRetried,
    RunResult,
    RunStarted,
    RunStatus,
    WebformResult,
)
from salesmap_tui.engine.files import (
    ensure_private_dir,
    fsync_file,
    park_fallback,
    replace_file_with_retry,
    swap_mode,
    with_sidecars,
)
from salesmap_tui.engine.outcome import ExitCode, Failure, exit_code_for, kind_of, stopped_by, where
from salesmap_tui.engine.runs import leftovers, resume
from salesmap_tui.engine.runs.context import RunContext, workspace_client
from salesmap_tui.engine.runs.crawl import Endpoint, crawl
from salesmap_tui.engine.runs.phases import SNAPSHOT_STEPS, ResumePlan, plan_for
from salesmap_tui.engine.runs.webform_pass import WebformPass, drop_state
from salesmap_tui.engine.runtag import utc_now_iso
from salesmap_tui.engine.shrink import shrink_reason, shrunk_tables, table_rows
from salesmap_tui.engine.snapshot_db import (
    ManifestRow,
    read_manifest_rows,
    run_tag_of,
    start_run_info,
    tables_of,
    write_manifest,
)
from salesmap_tui.engine.writer import (
    TableWriter,
    finalize_sqlite_connection,
    prepare_connection,
    prepare_for_dashboards,
)

# tests and benchmarks may hand the engine an in-process transport
TransportFactory = Callable[[], httpx.AsyncBaseTransport]


class CrawlFailed(SalesmapTuiError):
    """One or more endpoints failed after their retries: the run fails, nothing is swapped."""

    def __init__(self, errors: list[str], message: str | None = None) -> None:
        super().__init__(message or "; ".join(errors))
        self.errors = list(errors)


class _Stop(Exception):
    """A step ended the run early with this outcome (held back, recorded after a swap)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.message)
        self.result = result


class SnapshotRun:
    """One full snapshot run (fresh or resumed). Holds the lock for its whole life."""

    def __init__(
        self,
        settings: Settings,
        on_event: EventSink,
        cancel: threading.Event,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.ctx = RunContext(settings, "snapshot", on_event)
        self.settings = settings = self.ctx.settings
        self.cancel = cancel
        self.transport_factory = transport_factory
        self.checkpoints = CheckpointManager(settings.checkpoint_dir)
        self.errors: list[str] = []
        self.conn: sqlite3.Connection | None = None
        self.cp: Checkpoint | None = None
        self.plan: ResumePlan | None = None
        self.resumed = False
        self.endpoints: dict[str, Endpoint] = {}
        self.started_mono = time.monotonic()
        self.current_phase = "start"
        self.swap_method: str | None = None
        self.discarded = False  # a run that committed nothing removed its temp DB and checkpoint
        self.tables: dict[str, dict[str, int]] | None = None
        self.webform_result: WebformResult | None = None
        self.replaced = False
        self.fallback: str | None = None

    # --- events --------------------------------------------------------------------------------
    def emit(self, event: EngineEvent) -> None:
        if isinstance(event, RequestRetried):
            self._log(
                f"retry {event.endpoint} attempt {event.attempt}/{event.max_attempts}: "
                f"{event.status or '-'} {event.error}; wait {event.wait_s:.2f} s ({event.reason})"
            )
            ep = self.endpoints.get(event.endpoint)
            if ep is not None:
                self.ctx.emit(
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
        self.ctx.emit(event)

    def _log(self, message: str) -> None:
        self.ctx.write_log(message)

    def write_log(self, message: str) -> None:
        """A line in the run log (for the crawl, which reports through this run)."""
        self._log(message)

    def warn(self, message: str) -> None:
        self.ctx.warn(message)

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
        with self.ctx:
            # warnings found before the run log exists go to it once it does
            self.ctx.pending_warnings += leftovers.sweep(self.settings, self.checkpoints)
            choice = resume.choose(self.settings, self.checkpoints)
            self.ctx.pending_warnings += choice.warnings
            self.cp, self.resumed = choice.checkpoint, choice.resumed
            return self._run()

    def _start(self) -> None:
        """The run log and events file, the endpoints, and the run's first events."""
        s = self.settings
        cp = self.cp
        assert cp is not None
        self.ctx.start(cp.run_tag)
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
        self.ctx.flush_pending_warnings()

    def _run(self) -> RunResult:
        cp = self.cp
        assert cp is not None
        self._start()
        try:
            # inside the try: a history file that cannot be written fails the run cleanly
            self.ctx.record_running(
                cp.started_at, temp_db_path=cp.temp_db_path, backup_path=cp.backup_path
            )
            self.plan = plan_for(cp.phase, Path(cp.temp_db_path).exists())
            if self.plan.record_only:
                result = self._finish_after_swap()
            else:
                for step in SNAPSHOT_STEPS:
                    getattr(self, f"step_{step}")()
                result = self._swapped_result()
        except _Stop as stop:
            result = stop.result
        except RunCancelled as exc:
            result = self._stopped(exc)
        except (SalesmapTuiError, OSError, sqlite3.Error) as exc:
            result = self._failed(exc)
        return self._finish(result)

    def _swapped_result(self) -> RunResult:
        """The outcome once every step ran: swapped, fell back, or swapped without web forms."""
        s = self.settings
        wf = self.webform_result
        assert wf is not None
        if not self.replaced:
            reason = self.errors[-1] if self.errors else "the swap failed"
            failure = Failure(
                "swap_fell_back",
                f"{s.db_path} could not be replaced",
                f"the new DB is at {self.fallback} and the live DB is as it was",
            )
            message = f"snapshot done but {failure.message}; {failure.kept}"
            return self._result("fallback", ExitCode.SWAP_FELL_BACK, message, reason, failure)
        if wf.status == "failed":
            failure = Failure(
                "webform",
                f"the web-form pass failed: {wf.error}",
                f"{s.db_path} replaced",
                "run --webform-only to retry it",
            )
            message = (
                f"snapshot done and {failure.kept}, but {failure.message}; {failure.next_step}"
            )
            reason = f"web-form pass failed: {wf.error}"
            return self._result("done", ExitCode.WEBFORM_FAILED, message, reason, failure)
        return self._result("done", ExitCode.DONE, f"snapshot done: {s.db_path} replaced")

    def _stopped(self, exc: RunCancelled) -> RunResult:
        cp = self.cp
        assert cp is not None
        code = exit_code_for(exc, self.cancel)
        self._close_conn()
        self._safe_checkpoint()
        failure = Failure(
            "cancelled",
            "stopped; checkpoint saved",
            "the live DB is untouched",
            f"resume with --resume-run-tag {cp.run_tag}",
        )
        failure = self._discard_if_empty(failure)
        if self.discarded:
            message = f"{failure.message} ({failure.next_step})"
        else:
            message = f"{failure.message} — {failure.next_step} ({failure.kept})"
        return self._result("interrupted", code, message, stopped_by(code), failure)

    def _failed(self, exc: SalesmapTuiError | OSError | sqlite3.Error) -> RunResult:
        cp = self.cp
        assert cp is not None
        if isinstance(exc, TokenRejected):
            text = str(exc)
            self.errors.append(text)
            self._close_conn()
            self._safe_checkpoint()
            failure = self._discard_if_empty(
                Failure(kind_of(exc), text, "the live DB is untouched")
            )
            message = f"{text}; {failure.kept}"
            if self.discarded:
                message += f" ({failure.next_step})"
            return self._result("failed", ExitCode.USAGE, message, text, failure)
        text = where(exc, f"phase {self.current_phase}", cp.temp_db_path)
        if isinstance(exc, CrawlFailed):
            # one error per failed endpoint, not one joined string
            self.errors.extend(e for e in exc.errors if e not in self.errors)
        elif text not in self.errors:
            self.errors.append(text)
        self.ctx.write_log_block("run failed:", traceback.format_exc())
        self._write_failed_manifest()
        self._close_conn()
        self._safe_checkpoint()
        kind = "crawl" if isinstance(exc, CrawlFailed) else kind_of(exc)
        failure = self._discard_if_empty(
            Failure(
                kind,
                text,
                "the live DB is untouched",
                f"resume with --resume-run-tag {cp.run_tag}",
            )
        )
        if self.discarded:
            message = f"run failed: {text}; {failure.kept} ({failure.next_step})"
        else:
            message = f"run failed: {text}; {failure.kept}; {failure.next_step}"
        return self._result("failed", ExitCode.FAILED, message, text, failure)

    # --- steps (phases.SNAPSHOT_STEPS, in order) -----------------------------------------------
    def step_prepare(self) -> None:
        assert self.plan is not None
        self._open_temp_db()
        if self.plan.crawling:
            self.save_checkpoint("crawl")

    def step_crawl(self) -> None:
        self.webform_result = wf = self._network()
        self._count_webform_errors(wf)

    def step_finalize(self) -> None:
        assert self.webform_result is not None
        self._finalize(self.webform_result)

    def step_shrink_guard(self) -> None:
        held = self._shrink_guard()
        if held is None:
            return
        fallback, reason = held
        s = self.settings
        failure = Failure(
            "held_back",
            reason,
            f"it is kept at {fallback} and {s.db_path} is as it was",
            "let it in from the TUI, or pass --max-shrink 1",
        )
        self.fallback = fallback
        message = f"snapshot done but {reason}; {failure.kept} ({failure.next_step})"
        raise _Stop(self._result("fallback", ExitCode.HELD_BACK, message, reason, failure))

    def step_backup(self) -> None:
        self._backup()

    def step_swap(self) -> None:
        self.replaced, self.fallback = self._swap()

    # --- the steps' work -----------------------------------------------------------------------
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
        dest = s.backup_path(run_tag_of(s.db_path) or cp.run_tag)
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
        start_run_info(conn, cp.run_tag, cp.started_at, self.settings.base_url, __version__)
        assert self.plan is not None
        if self.plan.carry_over_webform:
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
        cp = self.cp
        assert cp is not None and self.plan is not None
        client = workspace_client(self.settings, self.emit, self.cancel, self.transport_factory)
        async with client:
            assert self.conn is not None
            # the web-form pass runs alongside the crawl; a resumed run skips what is done
            forms = WebformPass(self.conn, cp.run_tag, self.emit, self._log)
            crawling = self.plan.crawling
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
                self.ctx.write_log_block("web-form pass failed:", traceback.format_exc())
                result = WebformResult(
                    status="failed", error=where(exc, "web-form pass", cp.temp_db_path)
                )
        self._log(f"web-form pass: {json.dumps(result.as_dict(), ensure_ascii=False)}")
        return result

    def _manifest_rows(self) -> list[ManifestRow]:
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
        info = write_manifest(conn, cp.run_tag, manifest, status, utc_now_iso())
        for name, rows, cols, pages, errors in manifest:
            self._log(f"manifest: {name} rows={rows} cols={cols} pages={pages} errors={errors}")
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
        return plan_for(cp.phase, True).crawling and not any(
            ep.state.pages for ep in self.endpoints.values()
        )

    def _discard_if_empty(self, failure: Failure) -> Failure:
        """A run that committed no page leaves nothing to resume: no temp DB, no checkpoint."""
        cp = self.cp
        assert cp is not None
        if not self._nothing_committed():
            return failure
        self._close_conn()
        temp = Path(cp.temp_db_path)
        try:
            for path in with_sidecars(temp):
                path.unlink(missing_ok=True)
            self.checkpoints.path_for(cp.run_tag).unlink(missing_ok=True)
        except OSError as exc:
            self._log(f"could not remove the empty run's files: {exc}")
            return failure
        self.discarded = True
        self._log("no page was committed: temp DB and checkpoint removed, nothing to resume")
        return Failure(
            failure.kind,
            failure.message,
            failure.kept,
            "no page was fetched: nothing to resume",
        )

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
        new = {name: t["rows"] for name, t in (self.tables or {}).items()}
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
        live_tag = run_tag_of(s.db_path)
        fb = s.fallback_db_path(cp.run_tag)
        failure: Failure | None = None
        if live_tag == cp.run_tag:
            status: RunStatus = "done"
            code, fallback, replaced = ExitCode.DONE, None, True
            message = f"the swap had completed before the interruption: {s.db_path} is current"
        elif fb.exists():
            status, code, fallback, replaced = "fallback", ExitCode.SWAP_FELL_BACK, str(fb), False
            message = f"the swap had fallen back before the interruption: new DB at {fb}"
            failure = Failure("swap_fell_back", message, f"the new DB is at {fb}")
            shrinks = shrunk_tables(table_rows(s.db_path), table_rows(fb), s.max_shrink)
            if shrinks:
                code = ExitCode.HELD_BACK
                message = f"{shrink_reason(shrinks, s.max_shrink)}; the new DB is kept at {fb}"
                failure = Failure(
                    "held_back",
                    shrink_reason(shrinks, s.max_shrink),
                    f"the new DB is kept at {fb}",
                    "let it in from the TUI, or pass --max-shrink 1",
                )
        else:
            raise BadCheckpoint(
                f"cannot resume {cp.run_tag}: its temp DB is gone and the live DB is not its "
                "snapshot; start a fresh run"
            )
        self.tables = tables_of(s.db_path if replaced else fb)
        self.replaced, self.fallback = replaced, fallback
        return self._result(status, code, message, message, failure)

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
        reason: str | None = None,
        failure: Failure | None = None,
    ) -> RunResult:
        s = self.settings
        cp = self.cp
        assert cp is not None
        tables = self.tables
        if tables is None:
            tables = {
                name: {"rows": ep.state.rows, "cols": ep.writer.column_count() if ep.writer else 0}
                for name, ep in self.endpoints.items()
            }
        return RunResult(
            run_tag=cp.run_tag,
            kind="snapshot",
            status=status,
            exit_code=int(exit_code),
            started_at=cp.started_at,
            finished_at=utc_now_iso(),
            duration_s=round(time.monotonic() - self.started_mono, 3),
            db_path=str(s.db_path),
            final_db_path=str(s.db_path),
            temp_db_path=cp.temp_db_path,
            backup_path=cp.backup_path,
            log_path=str(s.log_path(cp.run_tag)),
            replaced=self.replaced,
            fallback_path=self.fallback,
            tables=tables,
            errors=tuple(self.errors),
            webform=self.webform_result,
            message=message + self.ctx.log_trouble(),
            swap=self.swap_method,
            reason=reason,
            failure=failure,
        )

    def _finish(self, result: RunResult) -> RunResult:
        cp = self.cp
        assert cp is not None

        def mark_done(result: RunResult) -> None:
            crashpoint("finish")
            if result.status in ("done", "fallback"):
                cp.done = True
                cp.phase = "done"
                self._safe_checkpoint()

        return self.ctx.finish(result, after_record=mark_done)


def run_snapshot(
    settings: Settings,
    on_event: EventSink,
    cancel: threading.Event,
    transport_factory: TransportFactory | None = None,
) -> RunResult:
    """A full snapshot run, or (`settings.webform_only`) the web-form pass on the live DB."""
    if settings.webform_only:
        from salesmap_tui.engine.runs.webform_only import run_webform_only

        return run_webform_only(settings, on_event, cancel, transport_factory)
    return SnapshotRun(settings, on_event, cancel, transport_factory).execute()
