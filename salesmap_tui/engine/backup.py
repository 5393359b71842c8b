"""gzip backups of the live DB, retention, and verified restore."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size_bytes: int
    mtime: float
    run_tag: str | None  # parsed from `<stem>_<run_tag>.db.gz`, None if the name does not match
