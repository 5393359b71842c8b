"""Run tags and timestamps: `YYYYMMDDTHHMMSSZ-xxxx`, unique even within one second."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

RUN_TAG_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


def new_run_tag(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


def is_run_tag(text: str) -> bool:
    return bool(RUN_TAG_RE.match(text))


def utc_now_iso() -> str:
    """ISO-8601 UTC with a `Z`, to the millisecond: the format of every timestamp we write."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
