"""CheckpointManager: atomic JSON checkpoints (`.json.tmp` then rename), listing, loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EndpointCheckpoint:
    """Where one endpoint stands: the cursor after the last *committed* page."""

    cursor: str | None = None
    pages: int = 0
    rows: int = 0
    done: bool = False


@dataclass
class Checkpoint:
    run_tag: str
    temp_db_path: str
    db_path: str
    settings: dict[str, Any]  # Settings.public_dict(): never the token
    backup_path: str | None
    phase: str
    started_at: str
    saved_at: str = ""
    done: bool = False
    endpoints: dict[str, EndpointCheckpoint] = field(default_factory=dict)
    version: int = 1


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint file as the resume screen / `checkpoints` command lists it."""

    path: Path
    run_tag: str | None
    checkpoint: Checkpoint | None  # None when the file could not be read
    problem: str | None  # why it cannot be resumed (unreadable, finished, temp DB missing, ...)
    temp_db_exists: bool
    temp_db_size: int | None
    mtime: float
