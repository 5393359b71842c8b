"""webform_history exactly as salesmap-tui wrote it before issue 9 (main at a84d947).

The schema, the row and the hash below are copied verbatim from that version's
`salesmap_tui/engine/webform.py`, so tests can start from a live DB "made by today's code" and
check that the migration loses and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

TABLE = "webform_history"
LEGACY_CREATE_SQL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    webFormId TEXT, webFormName TEXT, peopleId TEXT, organizationId TEXT, dealId TEXT,
    leadId TEXT, createdAt TEXT, contents TEXT, payload TEXT, payload_hash TEXT, run_tag TEXT,
    fetched_at TEXT,
    UNIQUE (webFormId, peopleId, createdAt, payload_hash)
)"""
COLUMNS = (
    "webFormId",
    "webFormName",
    "peopleId",
    "organizationId",
    "dealId",
    "leadId",
    "createdAt",
    "contents",
    "payload",
    "payload_hash",
    "run_tag",
    "fetched_at",
)
LEGACY_INSERT_SQL = (
    f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)


def _as_id(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return _as_id(value.get("id"))
    return str(value)


def legacy_payload_hash(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


def legacy_submission_row(
    form_id: str, form_name: str, sub: dict[str, Any], run_tag: str, fetched_at: str
) -> tuple[Any, ...]:
    payload = json.dumps(sub, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    contents = sub.get("contents")
    return (
        form_id,
        form_name,
        _as_id(sub.get("peopleId")),
        _as_id(sub.get("organizationId")),
        _as_id(sub.get("dealId")),
        _as_id(sub.get("leadId")),
        None if sub.get("createdAt") is None else str(sub.get("createdAt")),
        None if contents is None else json.dumps(contents, ensure_ascii=False),
        payload,
        legacy_payload_hash(payload),
        run_tag,
        fetched_at,
    )


def legacy_insert(
    conn: sqlite3.Connection,
    form_id: str,
    form_name: str,
    subs: list[dict[str, Any]],
    run_tag: str = "20260101T000000Z-0000",
    fetched_at: str = "2026-01-01T00:00:00Z",
) -> None:
    """What the old pass did with one form's submissions (its table, its hash, its IGNORE)."""
    conn.execute(LEGACY_CREATE_SQL)
    conn.executemany(
        LEGACY_INSERT_SQL,
        [legacy_submission_row(form_id, form_name, s, run_tag, fetched_at) for s in subs],
    )
    conn.commit()


def downgrade(db: Path) -> int:
    """Rebuild `db`'s webform_history the old way (old schema, hash of the whole payload), as a
    DB written by the previous version would hold it. Returns the rows."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY rowid").fetchall()
        conn.execute("BEGIN")
        conn.execute(f"DROP TABLE {TABLE}")
        conn.execute(LEGACY_CREATE_SQL)
        hash_at = COLUMNS.index("payload_hash")
        payload_at = COLUMNS.index("payload")
        old = []
        for row in rows:
            values = list(row)
            values[hash_at] = legacy_payload_hash(values[payload_at])
            old.append(tuple(values))
        conn.executemany(LEGACY_INSERT_SQL, old)
        conn.commit()
        n = int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
    finally:
        conn.close()
    return n
