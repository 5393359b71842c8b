"""Outcomes as values: the exit codes of CONTRACT.md, what failed, what was kept, what next,
and the result of a run (`RunResult`, also what its history record holds).

Every front end (the CLI's summary, the TUI's error modal and dashboard) reads a run's outcome
from these values, never from the wording of a message: `exit_code_for()` maps an exception to
its code, and a failed run's `RunResult.failure` is a `Failure` whose `kind` picks the title.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from salesmap_tui.engine import errors

RunKind = Literal["snapshot", "webform", "restore"]
RunStatus = Literal["running", "done", "failed", "interrupted", "fallback"]


class ExitCode(IntEnum):
    """CONTRACT.md "Exit codes"."""

    DONE = 0
    FAILED = 1  # API or network errors after retries, an I/O failure: the live DB is untouched
    USAGE = 2  # usage, configuration or bad input; token missing or rejected; lock held
    SWAP_FELL_BACK = 3  # snapshot done, the swap fell back (new DB beside the live one)
    WEBFORM_FAILED = 4  # snapshot done and swapped, the web-form pass failed
    HELD_BACK = 5  # snapshot done, held back by the shrink guard
    SIGINT = 130  # interrupted by SIGINT (Ctrl+C, Ctrl+Break on Windows): checkpoint saved
    SIGTERM = 143  # interrupted by SIGTERM: checkpoint saved


FailureKind = Literal[
    "usage",  # a bad option, path, config or input
    "token_missing",
    "token_rejected",  # the API answered 401
    "lock_held",  # another run holds the DB's lock
    "bad_checkpoint",  # a checkpoint that cannot be resumed
    "bad_backup",  # a backup that cannot be restored
    "api",  # an API answer that is not retried (400/403/404, a cursor loop, a bad answer)
    "retries",  # a request failed after every retry
    "crawl",  # one or more lists could not be fetched (each endpoint's error is in `errors`)
    "local_io",  # the disk, the file system or SQLite failed
    "cancelled",  # SIGINT, SIGTERM or the TUI's Cancel
    "swap_fell_back",  # the new snapshot could not replace the live DB
    "held_back",  # the shrink guard held the new snapshot back
    "webform",  # the web-form pass failed
    "failed",  # any other failure of ours
]

# what the CLI's summary and the TUI's error modal call each kind of failure
FAILURE_TITLES: dict[FailureKind, str] = {
    "usage": "Cannot start",
    "token_missing": "No API token",
    "token_rejected": "Token rejected",
    "lock_held": "Another run holds the lock",
    "bad_checkpoint": "Checkpoint cannot be used",
    "bad_backup": "Backup refused",
    "api": "API error",
    "retries": "Too many retries",
    "crawl": "Lists could not be fetched",
    "local_io": "Disk or file error",
    "cancelled": "Stopped",
    "swap_fell_back": "Live DB not replaced",
    "held_back": "Snapshot held back",
    "webform": "Web-form pass failed",
    "failed": "Run failed",
}

# the most specific class first: `kind_of` walks an exception's MRO
_KIND_OF_ERROR: dict[type[BaseException], FailureKind] = {
    errors.MissingToken: "token_missing",
    errors.TokenRejected: "token_rejected",
    errors.LockHeld: "lock_held",
    errors.BadCheckpoint: "bad_checkpoint",
    errors.BadBackup: "bad_backup",
    errors.UsageError: "usage",
    errors.ApiError: "api",
    errors.MaxRetriesExceeded: "retries",
    errors.RunCancelled: "cancelled",
    OSError: "local_io",
    sqlite3.Error: "local_io",
}


@dataclass(frozen=True)
class Failure:
    """Why a run did not end `done`: what failed, what was kept, what to do next.

    `message` says what failed (one line, as shown to the user); `kept` what is safe (the live
    DB untouched, a checkpoint, the new DB's path); `next_step` what the user can do ("" when
    there is nothing to do).
    """

    kind: FailureKind
    message: str
    kept: str = ""
    next_step: str = ""

    @property
    def title(self) -> str:
        return FAILURE_TITLES.get(self.kind, FAILURE_TITLES["failed"])


@dataclass(frozen=True)
class WebformResult:
    status: Literal["done", "failed", "skipped"]
    forms: int = 0
    new_rows: int = 0
    dropped: int = 0
    skipped_forms: int = 0
    error: str | None = None  # a summary: how many forms failed, and the first reasons
    errors: tuple[str, ...] = ()  # every failure, one per form

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "forms": self.forms,
            "new_rows": self.new_rows,
            "dropped": self.dropped,
            "skipped_forms": self.skipped_forms,
            "error": self.error,
            "failed_forms": len(self.errors),
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class RunResult:
    """The outcome of a snapshot or web-form-only run (also what the history record holds)."""

    run_tag: str
    kind: RunKind
    status: RunStatus
    exit_code: int
    started_at: str
    finished_at: str
    duration_s: float
    db_path: str
    final_db_path: str
    temp_db_path: str | None
    backup_path: str | None
    log_path: str | None
    replaced: bool
    fallback_path: str | None
    tables: dict[str, dict[str, int]]  # name -> {"rows": n, "cols": n}
    errors: tuple[str, ...]
    webform: WebformResult | None
    message: str  # one human sentence: what happened, what was kept, what to do next
    swap: str | None = None  # how the new DB went live: "rename" | "in-place" (None: it did not)
    reason: str | None = None  # why the run fell back, was held back, failed or stopped
    failure: Failure | None = None  # what failed, what was kept, what next (None: done)


def kind_of(exc: BaseException) -> FailureKind:
    """The failure kind of an exception (`failed` for one this module does not know)."""
    for cls in type(exc).__mro__:
        kind = _KIND_OF_ERROR.get(cls)
        if kind is not None:
            return kind
    return "failed"


def exit_code_for(exc: BaseException, cancel: threading.Event | None = None) -> ExitCode:
    """The exit code a failure with `exc` ends in (CONTRACT.md "Exit codes").

    A cancelled run exits with its cause's code (130 SIGINT, 143 SIGTERM) when `cancel` is the
    `CancelEvent` that stopped it. Local I/O and anything unexpected exit 1.
    """
    if isinstance(exc, errors.RunCancelled):
        code = errors.cancel_exit_code(cancel) if cancel is not None else exc.exit_code
        return ExitCode(code) if code in _CODES else ExitCode.SIGINT
    if isinstance(exc, errors.SalesmapTuiError):
        return ExitCode(exc.exit_code) if exc.exit_code in _CODES else ExitCode.FAILED
    return ExitCode.FAILED


_CODES = frozenset(int(code) for code in ExitCode)


def stopped_by(code: int) -> str:
    """How a run interrupted with `code` was stopped, in words."""
    if code == ExitCode.SIGTERM:
        return "stopped by SIGTERM"
    if code == ExitCode.SIGINT:
        return "stopped (SIGINT or cancel)"
    return "stopped"


def describe(exc: BaseException) -> str:
    """An exception in one line: an OSError with its file, anything else by its message."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return str(exc) or type(exc).__name__


def where(exc: BaseException, phase: str, db: object = None) -> str:
    """A local I/O failure with the phase it struck in and the file it was writing.

    SQLite's errors ("database or disk is full") name no file: `db` is the one being written.
    An OSError names its own file (the engine's writers put it in their messages). Other
    errors (the API's) are described as they are.
    """
    text = describe(exc)
    if isinstance(exc, sqlite3.Error) and db is not None:
        return f"{phase}: writing {db} failed: {text}"
    if isinstance(exc, OSError):
        return f"{phase}: {text}"
    return text
