"""The typed events the engine emits: the only contract between the engine and any UI.

Every event is a frozen dataclass. The engine calls `on_event(event)` from its own thread; a UI
must not block in that callback (the TUI posts a message, the CLI prints a line).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TextIO, cast

from salesmap_tui.engine.files import create_private_fd

# the outcome types travel in events (RunFinished.result); a UI imports them from here
from salesmap_tui.engine.outcome import Failure as Failure
from salesmap_tui.engine.outcome import RunKind as RunKind
from salesmap_tui.engine.outcome import RunResult as RunResult
from salesmap_tui.engine.outcome import RunStatus as RunStatus
from salesmap_tui.engine.outcome import WebformResult as WebformResult
from salesmap_tui.engine.runtag import utc_now_iso

Phase = Literal["lock", "backup", "prepare", "crawl", "webform", "finalize", "swap", "done"]
EndpointState = Literal["waiting", "fetching", "backoff", "done", "failed"]


@dataclass(frozen=True)
class RunStarted:
    run_tag: str
    kind: RunKind
    resumed: bool
    db_path: str
    temp_db_path: str | None
    log_path: str
    base_url: str
    endpoints: tuple[str, ...]
    # rows per table from the previous run's manifest (for percentages / ETA); may be empty
    expected_rows: dict[str, int] = field(default_factory=dict)
    started_at: str = ""


@dataclass(frozen=True)
class PhaseChanged:
    phase: Phase
    detail: str = ""


@dataclass(frozen=True)
class EndpointProgress:
    endpoint: str
    state: EndpointState
    pages: int
    rows: int
    expected_rows: int | None = None
    cursor: str | None = None
    wait_s: float = 0.0  # when state == "backoff": how long this wait is


@dataclass(frozen=True)
class RequestRetried:
    endpoint: str
    attempt: int  # the attempt that failed (1 = first try)
    max_attempts: int
    status: int | None  # HTTP status, None for network errors / timeouts
    error: str  # short cause: "429 Too Many Requests", "timeout", "connection reset", ...
    wait_s: float
    reason: str  # where the wait came from: "Retry-After header", "body hint", "backoff"


@dataclass(frozen=True)
class RequestStats:
    """Emitted now and then by the pacer: how fast requests are going against the limit."""

    total_requests: int
    last_window_requests: int  # requests in the last `window_s` seconds
    window_s: float
    limit: int  # requests allowed per window
    elapsed_s: float
    in_flight: int = 0  # requests sent and not answered yet
    max_in_flight: int = 0  # the cap on them now (--concurrency, or auto); 0: no cap
    budget: int = 0  # requests per window this run allows itself (lowered after a 429); 0: off
    paused_s: float = 0.0  # seconds left of a workspace pause after a 429


@dataclass(frozen=True)
class WorkspacePaused:
    """A 429: every request of the workspace holds off for `wait_s` (once per pause).

    The request that got it is also reported as a `RequestRetried`; requests waiting at the
    pacer spend no attempt, and requests already in flight are not counted again.
    """

    endpoint: str  # the endpoint whose request got the 429
    wait_s: float
    reason: str  # where the wait came from: "Retry-After header", "body hint", "backoff"
    status: int = 429


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    run_tag: str
    saved_at: str
    phase: str
    # endpoint -> {"pages": int, "rows": int, "cursor": str | None, "done": bool}
    endpoints: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class BackupMade:
    path: str
    size_bytes: int


@dataclass(frozen=True)
class EngineWarning:
    message: str


@dataclass(frozen=True)
class WebformProgress:
    forms_done: int
    forms_total: int
    new_rows: int
    dropped: int
    skipped_forms: int


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


EngineEvent = (
    RunStarted
    | PhaseChanged
    | EndpointProgress
    | RequestRetried
    | RequestStats
    | WorkspacePaused
    | CheckpointSaved
    | BackupMade
    | EngineWarning
    | WebformProgress
    | RunFinished
)

EventSink = Callable[[EngineEvent], None]


def ignore_event(event: EngineEvent) -> None:
    """An event sink that drops everything (for callers that only want the result)."""


# --- JSON lines: the events file (CONTRACT "Files") and `snapshot --json` ----------------------
# `{"t": ISO-8601, "event": "<type>", ...fields}`: the type is the class name in snake case.
EVENT_TYPES: dict[str, type[Any]] = {
    "run_started": RunStarted,
    "phase_changed": PhaseChanged,
    "endpoint_progress": EndpointProgress,
    "request_retried": RequestRetried,
    "request_stats": RequestStats,
    "workspace_paused": WorkspacePaused,
    "checkpoint_saved": CheckpointSaved,
    "backup_made": BackupMade,
    "engine_warning": EngineWarning,
    "webform_progress": WebformProgress,
    "run_finished": RunFinished,
}
_TYPE_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}
EVENTS_SUFFIX = ".events.jsonl"


def events_path_for(log_path: str | Path) -> Path:
    """`<log-dir>/snapshot_<run_tag>.events.jsonl` beside the run's `snapshot_<run_tag>.log`."""
    path = Path(log_path)
    return path.with_name(path.stem + EVENTS_SUFFIX)


def event_type(event: EngineEvent) -> str:
    return _TYPE_NAMES[type(event)]


def event_to_json(event: EngineEvent, t: str | None = None) -> dict[str, Any]:
    """One event as a JSON-ready dict: `{"t": ..., "event": "<type>", ...fields}`."""
    return {"t": t or utc_now_iso(), "event": event_type(event), **asdict(event)}


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    known = {f.name: str(f.type) for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in known}  # a newer writer's extra field: ignored
    for name, value in kwargs.items():
        if isinstance(value, list) and known[name].startswith("tuple"):
            kwargs[name] = tuple(value)  # JSON has no tuples
    if cls is RunStarted:
        kwargs["endpoints"] = tuple(kwargs.get("endpoints") or ())
        kwargs["expected_rows"] = dict(kwargs.get("expected_rows") or {})
    elif cls is RunResult:
        kwargs["errors"] = tuple(kwargs.get("errors") or ())
        wf = kwargs.get("webform")
        kwargs["webform"] = _build(WebformResult, wf) if isinstance(wf, dict) else None
        failure = kwargs.get("failure")
        kwargs["failure"] = _build(Failure, failure) if isinstance(failure, dict) else None
    elif cls is RunFinished:
        kwargs["result"] = _build(RunResult, kwargs["result"])
    return cls(**kwargs)


def event_from_json(data: dict[str, Any]) -> EngineEvent | None:
    """The typed event back from `event_to_json`'s dict; None for a type not known here."""
    cls = EVENT_TYPES.get(str(data.get("event")))
    if cls is None:
        return None
    try:
        return cast(EngineEvent, _build(cls, data))
    except (TypeError, KeyError, ValueError):
        return None


class EventsFile:
    """Writes a run's events as JSON lines, flushed one by one, created 0600; never the token.

    Like the run log, a file that cannot be written never stops the run (`failed` says why).
    A resumed run appends to the file its first part started.
    """

    def __init__(self, path: Path, secret: str | None) -> None:
        self.path = path
        self._secret = secret or None
        self._file: TextIO | None = None
        self._lock = threading.Lock()  # the engine thread and the pacer's callbacks both emit
        self.failed: str | None = None
        try:
            # no symlink followed; a new file's folder fsynced
            fd, _created = create_private_fd(path, os.O_WRONLY | os.O_APPEND)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            self.failed = f"cannot write the events file {path}: {exc.strerror or exc}"

    def write(self, event: EngineEvent) -> None:
        if self._file is None:
            return
        line = json.dumps(event_to_json(event), ensure_ascii=False, default=str)
        if self._secret:
            line = line.replace(self._secret, "***")
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:
                self.failed = f"cannot write the events file {self.path}: {exc.strerror or exc}"
                self._file = None

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.flush()
                os.fsync(file.fileno())
                file.close()

    def tee(self, sink: EventSink) -> EventSink:
        """A sink that writes each event here, then hands it on to `sink`."""

        def both(event: EngineEvent) -> None:
            self.write(event)
            sink(event)

        return both


class EventsReader:
    """Follows an events file (written by another process) from where it was last read.

    `read_new()` returns the events of every complete line appended since the last call; a
    half-written last line waits for the next call. Lines that are not events are skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self, max_bytes: int = 4 << 20) -> list[EngineEvent]:
        return [event for _, event in self.read_new_timed(max_bytes)]

    @property
    def offset(self) -> int:
        return self._offset - len(self._partial)

    def read_new_timed(self, max_bytes: int = 4 << 20) -> list[tuple[str | None, EngineEvent]]:
        """Like `read_new`, each event with the `t` it was written at (None if missing)."""
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                chunk = file.read(max_bytes)
        except OSError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events: list[tuple[str | None, EngineEvent]] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                event = event_from_json(obj)
                if event is not None:
                    t = obj.get("t")
                    events.append((t if isinstance(t, str) else None, event))
        return events
