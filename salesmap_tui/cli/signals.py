"""SIGINT, SIGTERM and (Windows) SIGBREAK ask a headless run to stop: a checkpoint, then the
exit code of the signal (CONTRACT.md "Exit codes")."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, TextIO


def cancel_signals() -> list[signal.Signals]:
    """The signals that ask a run to stop: SIGINT (Ctrl+C), SIGTERM, and on Windows SIGBREAK.

    Windows delivers Ctrl+Break as SIGBREAK (and has no real SIGTERM from outside); POSIX has
    no SIGBREAK. Only the signals this platform has are returned.
    """
    out = [signal.SIGINT]
    for name in ("SIGTERM", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            out.append(sig)
    return out


class SignalCancel:
    """SIGINT/SIGTERM (SIGBREAK on Windows) set a cancel event; the engine checkpoints and stops."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        from salesmap_tui.engine.errors import CancelEvent

        self.event = CancelEvent()
        self.signum: int | None = None
        self._out = out
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalCancel:
        for sig in cancel_signals():
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:  # a second Ctrl+C: the user means it
            os._exit(exit_code_for_signal(signum))
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"salesmap-tui: {name} received: saving a checkpoint and stopping "
            "(press again to quit at once)",
            file=self._out,
            flush=True,
        )
        self.event.cancel(128 + signum)

    @property
    def exit_code(self) -> int:
        return exit_code_for_signal(self.signum or signal.SIGINT)


def exit_code_for_signal(signum: int) -> int:
    """130 for SIGINT and Ctrl+Break (both a person at the keyboard), 143 for SIGTERM."""
    if signum == getattr(signal, "SIGBREAK", None):
        return 128 + signal.SIGINT
    return 128 + signum
