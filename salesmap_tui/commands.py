"""The headless commands: snapshot, restore, history, checkpoints. Never imports Textual."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from salesmap_tui.cli import SignalCancel
from salesmap_tui.config import ConfigError, Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.errors import SalesmapTuiError, printable
from salesmap_tui.engine.events import (
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    EngineWarning,
    PhaseChanged,
    RequestRetried,
    RunFinished,
    RunResult,
    RunStarted,
    WebformProgress,
)


def _err(message: str) -> None:
    print(f"salesmap-tui: error: {message}", file=sys.stderr, flush=True)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventPrinter:
    """One readable line per event, made for cron logs; `quiet` keeps errors only."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet

    def __call__(self, event: EngineEvent) -> None:
        line = self.format(event)
        if line is not None:
            print(f"{_stamp()} {line}", file=self.out or sys.stdout, flush=True)

    def format(self, event: EngineEvent) -> str | None:
        if isinstance(event, RunFinished):
            if self.quiet and event.result.exit_code == 0:
                return None
            return self._finished(event.result)
        if self.quiet:
            if isinstance(event, EndpointProgress) and event.state == "failed":
                return f"{event.endpoint}: failed after {event.pages} pages"
            return None
        if isinstance(event, RunStarted):
            verb = "resuming" if event.resumed else "starting"
            return (
                f"{verb} {event.kind} run {event.run_tag} against {event.base_url} "
                f"(db {event.db_path}, log {event.log_path})"
            )
        if isinstance(event, PhaseChanged):
            return f"phase: {event.phase}" + (f" ({event.detail})" if event.detail else "")
        if isinstance(event, EndpointProgress):
            if event.state in ("done", "failed"):
                return f"{event.endpoint}: {event.state}, {event.pages} pages, {event.rows} rows"
            if event.state == "fetching" and event.pages and event.pages % 50 == 0:
                expected = f" of ~{event.expected_rows}" if event.expected_rows else ""
                return f"{event.endpoint}: {event.pages} pages, {event.rows}{expected} rows"
            return None
        if isinstance(event, RequestRetried):
            status = event.status if event.status is not None else "-"
            return (
                f"retry {event.endpoint}: attempt {event.attempt}/{event.max_attempts} failed "
                f"({status}: {event.error}); waiting {event.wait_s:.1f} s ({event.reason})"
            )
        if isinstance(event, CheckpointSaved):
            done = sum(1 for e in event.endpoints.values() if e.get("done"))
            return f"checkpoint saved: {event.path} ({done}/{len(event.endpoints)} endpoints done)"
        if isinstance(event, BackupMade):
            return f"backup: {event.path} ({event.size_bytes} bytes)"
        if isinstance(event, EngineWarning):
            return f"warning: {event.message}"
        if isinstance(event, WebformProgress):
            if event.forms_done == event.forms_total:
                return (
                    f"web forms: {event.forms_done}/{event.forms_total} forms, "
                    f"{event.new_rows} new rows, {event.dropped} dropped, "
                    f"{event.skipped_forms} unknown forms skipped"
                )
            return None
        return None  # RequestStats and the rest: too frequent for a cron log

    def _finished(self, r: RunResult) -> str:
        rows = ", ".join(f"{name} {t['rows']}" for name, t in r.tables.items())
        parts = [
            f"{r.kind} run {r.run_tag} {r.status} in {r.duration_s:.1f} s (exit {r.exit_code})"
        ]
        if rows:
            parts.append(f"rows: {rows}")
        if r.backup_path:
            parts.append(f"backup: {r.backup_path}")
        if r.fallback_path:
            parts.append(f"fallback DB: {r.fallback_path}")
        for e in r.errors:
            parts.append(f"error: {e}")
        parts.append(r.message)
        return "\n  ".join(parts)


def dispatch(command: str, args: argparse.Namespace, settings: Settings) -> int:
    try:
        if command == "snapshot":
            return cmd_snapshot(settings)
        if command == "restore":
            return cmd_restore(settings, args)
        if command == "history":
            return cmd_history(settings, as_json=args.json)
        if command == "checkpoints":
            return cmd_checkpoints(settings)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    except SalesmapTuiError as exc:
        _err(str(exc))
        return exc.exit_code
    except OSError as exc:
        _err(f"{exc.strerror or exc} ({exc.filename or 'file'}); nothing was replaced")
        return 1
    except Exception as exc:  # a bug, not bad input: still one line, no traceback by default
        if os.environ.get("SALESMAP_TUI_DEBUG"):
            raise
        _err(
            f"unexpected {type(exc).__name__}: {exc} (set SALESMAP_TUI_DEBUG=1 for the "
            "traceback); the live DB is untouched unless the run log says it was replaced"
        )
        return 1
    raise ValueError(command)


def cmd_snapshot(settings: Settings) -> int:
    printer = EventPrinter(quiet=settings.quiet)
    with SignalCancel() as signals:
        result = api.run_snapshot(settings, printer, signals.event)
    if result.status == "interrupted":
        return signals.exit_code if signals.signum else 130
    return result.exit_code


def _progress_line(stage: str, fraction: float) -> None:
    print(f"\r  {stage}: {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    settings = settings.replace(keep_backups=args.keep_backups)
    if not args.yes and not sys.stdin.isatty():
        _err("restore replaces the live DB: pass --yes to confirm when not at a terminal")
        return 2
    print(f"verifying {args.backup} ...", file=sys.stderr, flush=True)
    try:
        verified = api.verify_backup(settings, args.backup, _progress_line)
    finally:
        # end the progress line, so an error that follows is a line of its own
        print(file=sys.stderr, flush=True)
    tables = ", ".join(f"{name} {rows}" for name, rows in verified.tables.items())
    print(f"backup is sound: {tables or 'no tables'}", file=sys.stderr, flush=True)
    if not args.yes:
        answer = input(
            f"Replace {settings.db_path} with {args.backup}? The current DB is backed up to "
            f"{settings.backup_dir}/ first. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            api.discard_verified(verified)
            print("nothing restored", file=sys.stderr)
            return 0
    result = api.restore_backup(settings, verified)
    saved = result.previous_backup_path or "(there was no live DB)"
    print(f"restored {result.db_path} from {result.restored_from}; previous DB saved as {saved}")
    return 0


def _ago(seconds: float) -> str:
    import humanize

    return humanize.naturaltime(timedelta(seconds=max(0.0, seconds)))


def cmd_history(settings: Settings, *, as_json: bool) -> int:
    entries = api.read_history(settings)
    records: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, api.HistoryProblem):
            print(
                f"warning: {settings.history_path} line {entry.line_no} is not a history record "
                f"({entry.error}); skipped",
                file=sys.stderr,
            )
        else:
            records.append(entry.record)
    if as_json:
        json.dump(records, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print(f"no runs recorded in {settings.history_path}")
        return 0
    # a run may have several lines (running, then its outcome): the last one is its state
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:
        latest.pop(str(rec.get("run_tag")), None)
        latest[str(rec.get("run_tag"))] = rec
    print(
        f"{'run tag':<22} {'kind':<8} {'status':<11} {'started':<20} {'dur s':>7} {'rows':>9} err"
    )
    for rec in latest.values():
        tables = rec.get("tables") or {}
        rows = sum(int(t.get("rows") or 0) for t in tables.values() if isinstance(t, dict))
        print(
            f"{rec.get('run_tag', '?')!s:<22} {rec.get('kind', '?')!s:<8} "
            f"{rec.get('status', '?')!s:<11} {str(rec.get('started_at', ''))[:19]:<20} "
            f"{float(rec.get('duration_s') or 0):>7.1f} {rows:>9} {rec.get('error_count', 0)}"
        )
    return 0


def cmd_checkpoints(settings: Settings) -> int:
    infos = api.list_checkpoints(settings)
    if not infos:
        print(f"no checkpoints in {settings.checkpoint_dir}")
        return 0
    now = time.time()
    for info in infos:
        state = info.problem or f"resumable: salesmap-tui snapshot --resume-run-tag {info.run_tag}"
        print(f"{info.run_tag or info.path.name}  saved {_ago(now - info.mtime)}  {state}")
        cp = info.checkpoint
        if cp is None:
            continue
        if not cp.done:
            size = f"{info.temp_db_size} bytes" if info.temp_db_size is not None else "missing"
            print(f"  temp DB {cp.temp_db_path} ({size}), phase {cp.phase}")
        for name, ep in cp.endpoints.items():
            mark = "done" if ep.done else f"cursor {printable(ep.cursor or '-')}"
            print(f"  {name:<13} {ep.pages:>6} pages {ep.rows:>9} rows  {mark}")
        print()
    return 0
