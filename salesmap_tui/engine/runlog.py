"""The per-run text log: one timestamped line per event, never the token."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TextIO

from salesmap_tui.config import FILE_MODE
from salesmap_tui.engine.runtag import utc_now_iso


class RunLog:
    """Appends to `snapshot_<run_tag>.log` (a resumed run continues its log)."""

    def __init__(self, path: Path, secret: str | None) -> None:
        self.path = path
        self._secret = secret or None
        self._file: TextIO | None = None
        self.failed: str | None = None  # a log that cannot be written never stops the run
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            self.failed = f"cannot write the run log {path}: {exc.strerror or exc}"

    def write(self, message: str) -> None:
        if self._file is None:
            return
        if self._secret:
            message = message.replace(self._secret, "***")
        try:
            for line in message.splitlines() or [""]:
                self._file.write(f"{utc_now_iso()} {line}\n")
            self._file.flush()
        except OSError as exc:
            self.failed = f"cannot write the run log {self.path}: {exc.strerror or exc}"
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError:
                pass
            self._file = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
