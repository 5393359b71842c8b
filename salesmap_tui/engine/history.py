"""run_history.jsonl: append one JSON object per line; read tolerantly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
