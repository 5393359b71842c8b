"""`restore`: a verified backup becomes the live DB, under the run context's lifecycle (lock,
close stale, run log, history record, retention).

No `running` record: a restore is one short step whose only record is its outcome, and on a
full disk the record that matters is the failure's (a `running` line would take its room)."""

from __future__ import annotations

import time
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine.backup import (
    RestoreFailed,
    RestoreResult,
    VerifiedBackup,
    held_run_tag,
    make_backup,
    restore_record,
    table_shapes,
)
from salesmap_tui.engine.checkpoint import CheckpointManager
from salesmap_tui.engine.errors import BadBackup
from salesmap_tui.engine.events import BackupMade, EngineWarning, EventSink
from salesmap_tui.engine.files import (
    fsync_file,
    remove_quietly,
    replace_file_with_retry,
    swap_mode,
    with_sidecars,
)
from salesmap_tui.engine.outcome import exit_code_for
from salesmap_tui.engine.runs.context import RunContext, apply_run_retention
from salesmap_tui.engine.runtag import new_run_tag, utc_now_iso


def supersede_checkpoints(settings: Settings, restored_from: Path) -> list[str]:
    """Mark the live DB's open checkpoints superseded by a restore: their data is older than
    the restored DB's, even though its run_info `started_at` is older than theirs."""
    return CheckpointManager(settings.checkpoint_dir).mark_superseded(
        settings.db_path, f"the live DB was restored from {restored_from.name} at {utc_now_iso()}"
    )


def restore_backup(
    settings: Settings, verified: VerifiedBackup, on_event: EventSink
) -> RestoreResult:
    """Under the run lock: back up the live DB, swap the verified copy in, record `restore`.

    `LockHeld` propagates. On failure the live DB is as it was and the temp copy is removed.
    """
    # the live DB may be damaged beyond SQLite's header: a restore replaces it all the same
    ctx = RunContext(settings, "restore", on_event, needs_token=False, check_db=False)
    try:
        with ctx:
            return _restore(ctx, verified)
    except BaseException:
        # a refused lock or preflight leaves no verified copy behind either
        remove_quietly(*with_sidecars(verified.temp_path))
        raise


def _restore(ctx: RunContext, verified: VerifiedBackup) -> RestoreResult:
    settings = ctx.settings
    db_path = settings.db_path
    temp = verified.temp_path
    run_tag = new_run_tag()
    started_at = utc_now_iso()
    t0 = time.monotonic()
    safety: Path | None = None
    phase = "starting"
    ctx.start(run_tag, require_log=False)
    ctx.write_log(f"starting restore {run_tag}: {verified.backup_path} -> {db_path}")
    try:
        if not temp.is_file():
            raise BadBackup(f"the verified copy {temp} is gone; verify the backup again")
        if db_path.exists():
            # named by the run tag of the data it holds; already backed up: not again
            safety = settings.backup_path(held_run_tag(db_path) or run_tag)
            phase = f"backing up the live DB to {safety}"
            if not safety.is_file():
                size = make_backup(db_path, safety)
                ctx.emit(BackupMade(path=str(safety), size_bytes=size))
                ctx.write_log(f"backup: {safety} ({size} bytes)")
        phase = f"moving the verified copy {temp} over {db_path}"
        fsync_file(temp)
        # before the swap: a kill right after it must not leave a checkpoint that a nightly
        # --resume would revive over the restored data
        superseded = supersede_checkpoints(settings, verified.backup_path)
        # the same swap as a snapshot's: readers with the DB open see the restored data, and
        # no -wal/-journal of the replaced DB is ever left beside it
        try:
            outcome = replace_file_with_retry(
                temp, db_path, None, mode=swap_mode(settings.swap), log=ctx.write_log
            )
            if not outcome.replaced:
                holders = f" (held by {', '.join(outcome.holders)})" if outcome.holders else ""
                raise OSError(f"could not swap the restored DB in: {outcome.error}{holders}")
        except BaseException:
            CheckpointManager(settings.checkpoint_dir).clear_superseded(superseded)
            raise
    except BaseException as exc:
        remove_quietly(*with_sidecars(temp))
        if isinstance(exc, OSError):
            exc = RestoreFailed(
                f"restore failed while {phase}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
                + f"; the live DB {db_path} is as it was"
            )
        ctx.write_log(f"finished: failed: {exc}")
        note = ctx.record_final(
            restore_record(
                settings,
                run_tag,
                started_at,
                t0,
                "failed",
                temp,
                safety,
                verified.backup_path,
                log_path=str(ctx.log_path),
                errors=[str(exc) or type(exc).__name__],
                exit_code=int(exit_code_for(exc)),
            )
        )
        note = f" (and this failure is not in the history: {note})" if note else ""
        if isinstance(exc, RestoreFailed):
            raise RestoreFailed(str(exc) + note) from None
        raise
    ctx.write_log(f"finished: done: {db_path} restored from {verified.backup_path}")
    note = ctx.record_final(
        restore_record(
            settings,
            run_tag,
            started_at,
            t0,
            "done",
            temp,
            safety,
            verified.backup_path,
            log_path=str(ctx.log_path),
            replaced=True,
            tables=table_shapes(db_path, verified.tables),
            exit_code=0,
        )
    )
    if note:
        # the swap is done and cannot be undone sensibly; say the record is missing
        ctx.emit(EngineWarning(f"restored, but could not write the history record: {note}"))
    apply_run_retention(settings, ctx.write_log)
    return RestoreResult(
        run_tag=run_tag,
        restored_from=verified.backup_path,
        db_path=db_path,
        previous_backup_path=safety,
        tables=dict(verified.tables),
    )
