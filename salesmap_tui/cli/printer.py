"""How a headless run reports: one line per event on stdout (or JSON lines with `--json`),
the summary of a run that did not exit 0 on stderr; a closed stdout never stops a run."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

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
    WorkspacePaused,
    event_to_json,
)
from salesmap_tui.engine.runlog import escape_line


def err(message: str) -> None:
    print(f"salesmap-tui: error: {message}", file=sys.stderr, flush=True)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head -1`): stop printing, quietly."""


def quiet_closed_stdout() -> None:
    """Point stdout at the null device, so later prints and the final flush do not raise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _write_line(line: str, stream: TextIO) -> bool:
    """Print one line; False once the reader is gone (the run itself carries on)."""
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout or stream is sys.__stdout__:
            quiet_closed_stdout()
        return False
    return True


class EventPrinter:
    """One readable line per event, made for cron logs; `quiet` keeps errors only.

    The summary of a run that did not exit 0 goes to `err` (stderr by default), the rest to
    `out` (stdout); with only `out` given, both go there.
    """

    def __init__(
        self, out: TextIO | None = None, *, err: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.out = out
        self.err = err if err is not None else out
        self.quiet = quiet
        self._out_open = True

    def __call__(self, event: EngineEvent) -> None:
        line = self.format(event)
        if line is None:
            return
        # one event, one line: CRM text in it (a field name with a newline) cannot forge more;
        # a run's summary is several lines, each part escaped on its own (`_finished`)
        if isinstance(event, RunFinished):
            text = f"{_stamp()} {line}"
        else:
            text = f"{_stamp()} {escape_line(line)}"
        if self.is_error(event):
            _write_line(text, self.err or sys.stderr)
        elif self._out_open:
            self._out_open = _write_line(text, self.out or sys.stdout)

    @staticmethod
    def is_error(event: EngineEvent) -> bool:
        return isinstance(event, RunFinished) and event.result.exit_code != 0

    def format(self, event: EngineEvent) -> str | None:
        if isinstance(event, RunFinished):
            if self.quiet and event.result.exit_code == 0:
                return None
            return self._finished(event.result)
        if self.quiet:
            return None  # the run's summary names every failed endpoint, once per cause
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
        if isinstance(event, WorkspacePaused):
            return f"workspace paused {event.wait_s:.1f} s ({event.status} on {event.endpoint})"
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
        title = f": {r.failure.title}" if r.failure is not None else ""
        parts = [
            f"{r.kind} run {r.run_tag} {r.status} in {r.duration_s:.1f} s "
            f"(exit {r.exit_code}){title}"
        ]
        if rows:
            parts.append(f"rows: {rows}")
        if r.backup_path:
            parts.append(f"backup: {r.backup_path}")
        if r.fallback_path:
            parts.append(f"fallback DB: {r.fallback_path}")
        for e in r.errors:
            if e not in r.message:  # the message often quotes the error: say it once
                parts.append(f"error: {e}")
        parts.append(r.message)
        return "\n  ".join(escape_line(part) for part in parts)


class JsonPrinter:
    """`snapshot --json`: every event as one JSON line on stdout (as in the events file).

    A run that does not exit 0 also gets its error summary on stderr, for whoever reads that.
    """

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, secret: str | None = None
    ) -> None:
        self.out = out
        self.err = err
        self._secret = secret or None
        self._text = EventPrinter(quiet=True)
        self._out_open = True

    def __call__(self, event: EngineEvent) -> None:
        if self._out_open:
            line = json.dumps(event_to_json(event), ensure_ascii=False, default=str)
            if self._secret:  # as the events file does: the token never leaves in clear
                line = line.replace(self._secret, "***")
            self._out_open = _write_line(line, self.out or sys.stdout)
        if EventPrinter.is_error(event) and isinstance(event, RunFinished):
            text = self._text.format(event)
            if text is not None:
                _write_line(f"{_stamp()} {text}", self.err or sys.stderr)
