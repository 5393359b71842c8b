"""Errors a user can read: what failed, and the exit code it maps to (CONTRACT.md)."""

from __future__ import annotations

import re
import threading

# C0 controls, DEL and C1 controls: ESC/CSI/OSC sequences would drive the user's terminal
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character shown as a literal `\\xNN` escape.

    For text from the server or the CRM (reasons, content types, ids, cursors, form names) that
    ends up on a terminal: an escape sequence in it is displayed, never interpreted.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SalesmapTuiError(Exception):
    """Base class. `exit_code` follows CONTRACT.md; the message is shown as is, one line."""

    exit_code = 1


class UsageError(SalesmapTuiError):
    """Usage, configuration or bad input: exit 2."""

    exit_code = 2


class MissingToken(UsageError):
    pass


class TokenRejected(UsageError):
    """The API answered 401: never retried."""


class LockHeld(UsageError):
    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class BadCheckpoint(UsageError):
    pass


class BadBackup(UsageError):
    pass


class ApiError(SalesmapTuiError):
    """An API answer that is not retried (400/403/404, or a cursor loop): exit 1."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class MaxRetriesExceeded(SalesmapTuiError):
    """A request failed `max_retries + 1` times; the message starts with `max_retries_exceeded`."""

    def __init__(self, message: str, attempts: int, last_status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status


class RunCancelled(SalesmapTuiError):
    """The cancel event was set (Ctrl+C, SIGTERM, the TUI's Cancel)."""

    exit_code = 130


_GET_PATH = re.compile(r": GET /\S+ after ")


def merge_endpoint_errors(errors: list[tuple[str, str]]) -> list[str]:
    """One line per distinct cause: `[(endpoint, error)]` -> `["a, b: error", ...]`.

    The request path is left out when comparing, so seven endpoints refused by one host make
    one line, not seven.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for endpoint, error in errors:
        groups.setdefault(_GET_PATH.sub(" after ", error), []).append((endpoint, error))
    out: list[str] = []
    for cause, members in groups.items():
        if len(members) == 1:  # alone, it keeps its own words (the request path included)
            out.append(f"{members[0][0]}: {members[0][1]}")
        else:
            out.append(f"{', '.join(name for name, _ in members)}: {cause}")
    return out


class CancelEvent(threading.Event):
    """A cancel event that knows the exit code its cause maps to (130 SIGINT, 143 SIGTERM).

    Any `threading.Event` works as the engine's cancel; this one also lets the run record and
    report the code the process will exit with.
    """

    def __init__(self) -> None:
        super().__init__()
        self.exit_code = RunCancelled.exit_code

    def cancel(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.set()


def cancel_exit_code(cancel: threading.Event) -> int:
    """The exit code of a run stopped through `cancel` (130 unless a `CancelEvent` says so)."""
    return int(getattr(cancel, "exit_code", RunCancelled.exit_code))
