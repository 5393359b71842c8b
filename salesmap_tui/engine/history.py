"""run_history.jsonl: append one JSON object per line; read tolerantly."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.files import create_private_fd, ensure_private_dir
from salesmap_tui.engine.runtag import utc_now_iso


@dataclass(frozen=True)
class HistoryEntry:
    line_no: int
    record: dict[str, Any]


@dataclass(frozen=True)
class HistoryProblem:
    """A line that could not be parsed: shown as a warning row, never a crash."""

    line_no: int
    text: str  # the line, cut to 200 characters
    error: str


HistoryItem = HistoryEntry | HistoryProblem


def make_record(**fields: Any) -> dict[str, Any]:
    """A history record with every CONTRACT.md field (defaults for those not given).

    `error_count` follows `errors` unless given; `final_db_path` defaults to `db_path`.
    Unknown fields are kept after the contract ones.
    """
    errors = [str(e) for e in fields.get("errors") or []]
    record: dict[str, Any] = {
        "run_tag": "",
        "kind": "snapshot",
        "status": "running",
        "started_at": None,
        "finished_at": None,
        "duration_s": None,
        "db_path": None,
        "final_db_path": None,
        "temp_db_path": None,
        "backup_path": None,
        "log_path": None,
        "replaced": False,
        "fallback_path": None,
        "tables": {},
        "error_count": len(errors),
        "errors": errors,
        "webform": None,
        "exit_code": None,
        "reason": None,
    }
    for key, value in fields.items():
        if key == "errors":
            continue
        record[key] = str(value) if isinstance(value, Path) else value
    if record["final_db_path"] is None:
        record["final_db_path"] = record["db_path"]
    return record


def append_history(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, whole or not at all.

    The line goes out in one `write`; a short or failed write (a full disk) is cut back to the
    size the file had, so a reader never finds a fragment, and the OSError names the file. A
    torn last line left by a killed process is healed (a newline first). The file is opened
    without following a symlink planted in its place.
    """
    ensure_private_dir(path.parent)
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    try:
        fd, _created = create_private_fd(path, os.O_RDWR | os.O_APPEND)
    except OSError as exc:
        raise _history_error(path, "open", exc) from None
    try:
        size = os.fstat(fd).st_size
        prefix = b""
        if size > 0 and _last_byte(path, size) != b"\n":
            prefix = b"\n"
        data = prefix + line.encode("utf-8")
        crashpoint("history_append")
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError as exc:
            _cut_back(fd, size)
            raise _history_error(path, "append", exc) from None
    finally:
        os.close(fd)


def _last_byte(path: Path, size: int) -> bytes:
    """The file's last byte (os.pread is POSIX-only: a second handle, which works anywhere)."""
    with open(path, "rb") as reader:
        reader.seek(size - 1)
        return reader.read(1)


def _cut_back(fd: int, size: int) -> None:
    """Remove what a failed append wrote (truncating frees blocks, so it works on a full disk)."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass


def _history_error(path: Path, what: str, exc: OSError) -> OSError:
    detail = exc.strerror or str(exc)
    message = f"cannot {what} the run history {path}: {detail}"
    if what == "append":
        message += " (the record was not written; the file is as it was)"
    return OSError(exc.errno, message)


def read_history(path: Path) -> list[HistoryItem]:
    """Every line, oldest first; a line that is not a JSON object becomes a `HistoryProblem`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [HistoryProblem(line_no=0, text="", error=f"cannot read {path}: {exc}")]
    out: list[HistoryEntry | HistoryProblem] = []
    for line_no, raw_line in enumerate(raw.split(b"\n"), start=1):
        text = raw_line.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            out.append(HistoryProblem(line_no=line_no, text=text[:200], error=f"not JSON: {exc}"))
            continue
        if not isinstance(value, dict):
            out.append(
                HistoryProblem(
                    line_no=line_no,
                    text=text[:200],
                    error=f"not a JSON object (a {type(value).__name__})",
                )
            )
            continue
        out.append(HistoryEntry(line_no=line_no, record=value))
    return out


def latest_per_tag(items: list[HistoryItem]) -> list[HistoryItem]:
    """The last line of each run tag (its state; a run writes `running`, then its outcome),
    plus every line without a run tag and every unparseable one, in file order.

    The one spelling of "latest record per run tag" for lists of runs: the TUI's history, the
    `history` command, the dashboard's newest run (`last_records` keys them by tag).
    """
    last: dict[str, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, HistoryEntry):
            tag = item.record.get("run_tag")
            if isinstance(tag, str):
                last[tag] = index
    out: list[HistoryItem] = []
    for index, item in enumerate(items):
        if isinstance(item, HistoryEntry):
            tag = item.record.get("run_tag")
            if isinstance(tag, str) and last[tag] != index:
                continue
        out.append(item)
    return out


def last_records(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each run tag (its current state), in order of first appearance."""
    out: dict[str, dict[str, Any]] = {}
    for item in read_history(path):
        if isinstance(item, HistoryEntry):
            tag = item.record.get("run_tag")
            if isinstance(tag, str) and tag:
                out[tag] = item.record
    return out


def close_stale_running(
    path: Path, db_path: str, finished_runs: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """Append `interrupted` for each run of `db_path` whose last record is still `running`.

    `finished_runs` maps a run tag to what is known to have happened to it after all (a run
    whose snapshot is the live DB swapped, although its last history line was never written):
    those fields are recorded instead. Call it only while holding the run lock: then no live
    process owns those runs.
    """
    closed: list[str] = []
    for tag, record in last_records(path).items():
        if record.get("status") != "running" or not _same_path(record.get("db_path"), db_path):
            continue
        finished = utc_now_iso()
        updated = dict(record)
        updated["status"] = "interrupted"
        updated["finished_at"] = finished
        updated["reason"] = "its process ended without recording an outcome (killed?)"
        updated.update((finished_runs or {}).get(tag, {}))
        finished = str(updated.get("finished_at") or finished)
        updated["duration_s"] = _duration(record.get("started_at"), finished)
        append_history(path, make_record(**updated))
        closed.append(tag)
    return closed


def _same_path(recorded: object, db_path: str) -> bool:
    """A record's db_path names `db_path`, however either was spelled (relative, symlinks)."""
    if not isinstance(recorded, str) or not recorded:
        return False
    return recorded == db_path or os.path.realpath(recorded) == os.path.realpath(db_path)


def _duration(started_at: object, finished_at: str) -> float | None:
    if not isinstance(started_at, str):
        return None
    try:
        start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((end - start).total_seconds(), 3)
