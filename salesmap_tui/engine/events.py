"""The typed events the engine emits: the only contract between the engine and any UI.

Every event is a frozen dataclass. The engine calls `on_event(event)` from its own thread; a UI
must not block in that callback (the TUI posts a message, the CLI prints a line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["lock", "backup", "prepare", "crawl", "webform", "finalize", "swap", "done"]
RunKind = Literal["snapshot", "webform", "restore"]
RunStatus = Literal["running", "done", "failed", "interrupted", "fallback"]
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
class WebformResult:
    status: Literal["done", "failed", "skipped"]
    forms: int = 0
    new_rows: int = 0
    dropped: int = 0
    skipped_forms: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "forms": self.forms,
            "new_rows": self.new_rows,
            "dropped": self.dropped,
            "skipped_forms": self.skipped_forms,
            "error": self.error,
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


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


EngineEvent = (
    RunStarted
    | PhaseChanged
    | EndpointProgress
    | RequestRetried
    | RequestStats
    | CheckpointSaved
    | BackupMade
    | EngineWarning
    | WebformProgress
    | RunFinished
)

EventSink = Callable[[EngineEvent], None]


def ignore_event(event: EngineEvent) -> None:
    """An event sink that drops everything (for callers that only want the result)."""
