"""Named crash points, for the kill-anywhere reliability tests only.

The engine calls `crashpoint("swap")`, `crashpoint("page:deal")`, ... at the moments a process
could die. With `SALESMAP_TUI_KILL_AT` unset (always, outside tests) a call is one environment
lookup. Set to `NAME:N`, the process SIGKILLs itself the Nth time it reaches `NAME`; `any:N`
kills at the Nth crash point of any name (how the harness picks "random" instants replayably).
Several specs may be given, comma-separated. With `SALESMAP_TUI_CRASH_TRACE=path` every point
reached is appended to that file (the harness uses it to list the points a run passes).
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "SALESMAP_TUI_KILL_AT"
TRACE_ENV = "SALESMAP_TUI_CRASH_TRACE"

_counts: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if the test environment asks for it; else do nothing."""
    spec = os.environ.get(KILL_ENV)
    trace = os.environ.get(TRACE_ENV)
    if spec or trace:
        _reached(name, spec or "", trace)


def _reached(name: str, spec: str, trace: str | None) -> None:
    count = _counts[name] = _counts.get(name, 0) + 1
    total = _counts["any"] = _counts.get("any", 0) + 1
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{name}\n")
    for item in spec.split(","):
        target, _, nth = item.strip().rpartition(":")
        if not target or not nth.isdigit():
            continue
        if (target == name and count == int(nth)) or (target == "any" and total == int(nth)):
            sigkill = getattr(signal, "SIGKILL", None)  # POSIX only
            if sigkill is None:
                os._exit(137)  # Windows: as abrupt as it gets there (no cleanup, no flush)
            os.kill(os.getpid(), sigkill)
