"""Letting a held-back snapshot in (CONTRACT "Shrink guard"); `queries.held_back_snapshots`
lists those waiting.

"Let it in" runs under the run context like any run: the lock, close stale, the held-back
run's own log and events file, a backup of the live DB, the same swap as a run's, and the run
recorded as done. No `running` record: until the swap is done the history must keep saying
the snapshot is held back (a failed attempt leaves it there to try again).
"""

from __future__ import annotations

import time
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine.backup import make_backup
from salesmap_tui.engine.errors import SalesmapTuiError, UsageError
from salesmap_tui.engine.events import BackupMade, EventSink, RunResult, ignore_event
from salesmap_tui.engine.files import ensure_private_dir, replace_file_with_retry, swap_mode
from salesmap_tui.engine.history import last_records
from salesmap_tui.engine.outcome import ExitCode
from salesmap_tui.engine.runs.context import RunContext
from salesmap_tui.engine.runtag import is_run_tag, new_run_tag, utc_now_iso
from salesmap_tui.engine.snapshot_db import integrity_problem, run_info_of, run_tag_of, tables_of


def promote_snapshot(
    settings: Settings, snapshot_path: Path, on_event: EventSink | None = None
) -> RunResult:
    """Let a held-back snapshot in (the TUI's "let it in" after a look): under the run lock,
    check it, back up the live DB, swap it in the same way as a run, record it as done."""
    snapshot_path = Path(snapshot_path)
    t0 = time.monotonic()
    with RunContext(settings, "snapshot", on_event or ignore_event, needs_token=False) as ctx:
        s = ctx.settings
        info = run_info_of(snapshot_path)
        tag = str(info.get("run_tag") or "")
        if not is_run_tag(tag) or info.get("status") != "done":
            raise UsageError(f"{snapshot_path} is not a finished snapshot (no done run_info)")
        problem = integrity_problem(snapshot_path)
        if problem is not None:
            raise UsageError(problem)
        previous = last_records(s.history_path).get(tag, {})
        started_at = str(previous.get("started_at") or info.get("started_at") or "")
        ctx.start(tag, require_log=False)
        ctx.write_log(f"letting in the held-back snapshot {snapshot_path}")
        backup_path: str | None = None
        if not s.no_backup and s.db_path.is_file():
            ensure_private_dir(s.backup_dir)
            dest = s.backup_path(run_tag_of(s.db_path) or new_run_tag())
            if not dest.is_file():
                size = make_backup(s.db_path, dest)
                ctx.emit(BackupMade(str(dest), size))
            backup_path = str(dest)
        tables = tables_of(snapshot_path)
        outcome = replace_file_with_retry(
            snapshot_path, s.db_path, None, mode=swap_mode(s.swap), log=ctx.write_log
        )
        if not outcome.replaced:
            raise SalesmapTuiError(
                f"could not swap {snapshot_path} in: {outcome.error}; the live DB is as it was"
            )
        result = RunResult(
            run_tag=tag,
            kind="snapshot",
            status="done",
            exit_code=int(ExitCode.DONE),
            started_at=started_at,
            finished_at=utc_now_iso(),
            duration_s=round(time.monotonic() - t0, 3),
            db_path=str(s.db_path),
            final_db_path=str(s.db_path),
            temp_db_path=None,
            backup_path=backup_path,
            log_path=previous.get("log_path") or str(ctx.log_path),
            replaced=True,
            fallback_path=None,
            tables=tables,
            errors=(),
            webform=None,
            message=f"{snapshot_path} let in: {s.db_path} replaced",
            swap=outcome.method,
            reason=f"let in after the shrink guard held it back ({snapshot_path})",
        )
        return ctx.finish(result)
