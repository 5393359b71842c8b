"""The per-run text log: one timestamped line per event, never the token."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType
from typing import TextIO

from salesmap_tui.engine.files import create_private_fd
from salesmap_tui.engine.runtag import utc_now_iso

# every character that could end a line or drive a terminal: C0 (with \n, \r, \t), DEL, C1
# (with U+0085 NEL), and the Unicode line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_line(text: str) -> str:
    """`text` as one safe log line: newlines, `\r`, U+2028/2029 and controls shown escaped.

    CRM values (field names, form names, reasons) reach log lines; escaped, none of them can
    start a line of its own that reads like the engine's ("finished: done (exit 0) ...").
    """
    return _UNSAFE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class RunLog:
    """Appends to `snapshot_<run_tag>.log` (a resumed run continues its log).

    Every line starts with a timestamp and is written by the engine: a message is one line
    (anything that could break it is escaped); `write_block` adds indented continuation lines
    (a traceback) that never start with a timestamp.
    """

    def __init__(self, path: Path, secret: str | None) -> None:
        self.path = path
        self._secret = secret or None
        self._file: TextIO | None = None
        self.failed: str | None = None  # a log that cannot be written never stops the run
        try:
            fd, _created = create_private_fd(path, os.O_WRONLY | os.O_APPEND)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            self.failed = f"cannot write the run log {path}: {exc.strerror or exc}"

    def _clean(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return escape_line(text)

    def write(self, message: str) -> None:
        """One log line (newlines in `message` are escaped, never a new line)."""
        self._emit(f"{utc_now_iso()} {self._clean(message)}\n")

    def write_block(self, title: str, body: str) -> None:
        """A line, then `body` (a traceback) as continuation lines indented under it."""
        lines = [f"{utc_now_iso()} {self._clean(title)}\n"]
        lines += [f"    | {self._clean(line)}\n" for line in body.rstrip("\n").split("\n")]
        self._emit("".join(lines))

    def _emit(self, text: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(text)
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
