"""The web-form pass: `update_webform_history` fills `webform_history` from form submissions.

Allowed people are the distinct `peopleId` of deals; the forms read are those in the allowed
people's `제출된 웹폼 목록` (or `/v2/webForm` when no record has that field). Rows accumulate across
runs: the unique index on `(webFormId, peopleId, createdAt, payload_hash)` makes a repeated pass
add only new submissions. `payload_hash` hashes the submission's `contents` only (a new top-level
key in the API's answer must not duplicate every stored row), and the index reads a NULL as ''
(SQLite's UNIQUE treats NULLs as distinct: a submission without `createdAt` would be stored again
on every pass).

Tables written by older versions (an inline UNIQUE over a hash of the whole payload) are migrated
on first contact, in one transaction: rows re-keyed, duplicates of one submission collapsed onto
the oldest row, nothing else lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesmap_tui.config import Settings
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.errors import ApiError, RunCancelled, TokenRejected, printable
from salesmap_tui.engine.events import EventSink, WebformProgress, WebformResult
from salesmap_tui.engine.history import HistoryEntry, read_history
from salesmap_tui.engine.runtag import utc_now_iso
from salesmap_tui.engine.sqlite_util import open_readonly as open_readonly
from salesmap_tui.engine.sqlite_util import table_columns as table_columns
from salesmap_tui.engine.sqlite_util import table_exists as table_exists

if TYPE_CHECKING:
    from salesmap_tui.engine.client import SalesmapClient

TABLE = "webform_history"
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
FORMS_KEY = "제출된 웹폼 목록"
IDENTITY_INDEX = "webform_history_identity"
_MIGRATING = TABLE + "__migrating"


def _create_sql(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS "{table}" (
    webFormId TEXT, webFormName TEXT, peopleId TEXT, organizationId TEXT, dealId TEXT,
    leadId TEXT, createdAt TEXT, contents TEXT, payload TEXT, payload_hash TEXT, run_tag TEXT,
    fetched_at TEXT
)"""


def _identity_sql(table: str) -> str:
    # an expression index: NULL createdAt (or peopleId) is one value, not a new one each time
    return (
        f'CREATE UNIQUE INDEX IF NOT EXISTS {IDENTITY_INDEX} ON "{table}" '
        "(COALESCE(webFormId, ''), COALESCE(peopleId, ''), COALESCE(createdAt, ''), payload_hash)"
    )


CREATE_SQL = _create_sql(TABLE)
INSERT_SQL = (
    f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
_HASH_INDEX = COLUMNS.index("payload_hash")
_CONTENTS_INDEX = COLUMNS.index("contents")


@dataclass(frozen=True)
class Migration:
    """What re-keying a table written by an older version did."""

    rows_before: int
    rows_after: int  # fewer when several rows were one submission (a new top-level API key)


def is_current(conn: sqlite3.Connection) -> bool:
    """True when webform_history exists with today's identity index."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = ?",
        (IDENTITY_INDEX, TABLE),
    ).fetchone()
    return row is not None


def ensure_table(conn: sqlite3.Connection) -> Migration | None:
    """Create webform_history, or migrate an older one in place; one transaction, committed
    here unless the caller has one open (then it is the caller's to commit)."""
    if table_exists(conn, TABLE) and is_current(conn):
        return None
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        migration: Migration | None = None
        if table_exists(conn, TABLE):
            migration = _migrate_in_place(conn)
        else:
            conn.execute(CREATE_SQL)
            conn.execute(_identity_sql(TABLE))
        if own:
            conn.commit()
    except BaseException:
        if own:
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
        raise
    return migration


def _migrate_in_place(conn: sqlite3.Connection) -> Migration:
    """Re-key an older webform_history (inside the caller's transaction): a new table with the
    identity index, every row copied oldest first with its hash recomputed from `contents`,
    then the old table dropped and the new one renamed. A kill at any point rolls it all back."""
    crashpoint("webform_migrate")
    present = [c for c in COLUMNS if c in set(table_columns(conn, TABLE))]
    # the old table's own indexes (e.g. on peopleId), rebuilt on the new one
    extra_indexes = [
        str(sql)
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL AND name != ?",
            (TABLE, IDENTITY_INDEX),
        )
    ]
    conn.execute(f'DROP TABLE IF EXISTS "{_MIGRATING}"')
    conn.execute(_create_sql(_MIGRATING))
    conn.execute(_identity_sql(_MIGRATING))
    before = int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
    insert = (
        f'INSERT OR IGNORE INTO "{_MIGRATING}" ({", ".join(COLUMNS)}) '
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    cursor = conn.execute(f"SELECT {', '.join(present)} FROM {TABLE} ORDER BY rowid")
    while rows := cursor.fetchmany(1000):
        conn.executemany(insert, [_rekeyed(present, row) for row in rows])
        crashpoint("webform_migrate_rows")
    conn.execute(f"DROP TABLE {TABLE}")
    conn.execute(f'ALTER TABLE "{_MIGRATING}" RENAME TO {TABLE}')
    for sql in extra_indexes:
        conn.execute(sql)
    after = int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
    crashpoint("webform_migrated")
    return Migration(before, after)


def _rekeyed(present: list[str], row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A stored row (columns `present`) as a full COLUMNS row with today's payload_hash."""
    values = dict(zip(present, row, strict=True))
    out = [values.get(c) for c in COLUMNS]
    out[_HASH_INDEX] = stored_contents_hash(out[_CONTENTS_INDEX])
    return tuple(out)


def carry_over(live_db: Path, conn: sqlite3.Connection, chunk: int = 1000) -> int:
    """Copy the live DB's webform_history rows into `conn` (a new snapshot's temp DB), in one
    transaction; rows the temp DB already holds are left as they are. Rows of a live DB written
    by an older version are re-keyed on the way (the live DB itself is only read).

    Returns the rows added: at a run's start every row, when the run goes live the rows the
    live DB gained meanwhile (a `--webform-only` pass while the run was interrupted).
    """
    ensure_table(conn)
    if not live_db.exists():
        return 0
    src = open_readonly(live_db)
    added = 0
    try:
        if not table_exists(src, TABLE):
            return 0
        present = [c for c in COLUMNS if c in set(table_columns(src, TABLE))]
        if not present:
            return 0
        rekey = not is_current(src)
        cols = ", ".join(present)
        cursor = src.execute(f"SELECT {cols} FROM {TABLE} ORDER BY rowid")
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")
        try:
            if rekey:
                crashpoint("webform_migrate")
            while rows := cursor.fetchmany(chunk):
                if rekey:
                    batch = [_rekeyed(present, row) for row in rows]
                    added += _insert_rows(conn, batch)
                    crashpoint("webform_migrate_rows")
                else:
                    insert = (
                        f"INSERT OR IGNORE INTO {TABLE} ({cols}) "
                        f"VALUES ({', '.join('?' * len(present))})"
                    )
                    added += max(0, conn.executemany(insert, rows).rowcount)
            if own:
                conn.commit()
        except BaseException:
            if own:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            raise
    finally:
        src.close()
    return added


def _insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """INSERT OR IGNORE full COLUMNS rows; returns how many were new."""
    if not rows:
        return 0
    return max(0, conn.executemany(INSERT_SQL, rows).rowcount)


def _as_id(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return _as_id(value.get("id"))
    return str(value)


as_id = _as_id  # an id from the API's JSON as text (None for null, "", bool)


def _json_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def allowed_people(conn: sqlite3.Connection) -> set[str]:
    """Distinct `deal.peopleId` (the seed's allowed People ID set)."""
    if not table_exists(conn, "deal") or "peopleId" not in table_columns(conn, "deal"):
        return set()
    rows = conn.execute('SELECT DISTINCT "peopleId" FROM deal WHERE "peopleId" IS NOT NULL')
    return {str(r[0]) for r in rows if r[0] not in (None, "")}


@dataclass
class FormPlan:
    forms: dict[str, str] = field(default_factory=dict)  # form id -> name
    dropped_entries: int = 0  # list entries without a form id
    from_people: bool = True


def forms_from_people(conn: sqlite3.Connection, allowed: set[str]) -> FormPlan | None:
    """Forms named in allowed people's `제출된 웹폼 목록`; None when no record has the field."""
    if not table_exists(conn, "people") or FORMS_KEY not in table_columns(conn, "people"):
        return None
    plan = FormPlan()
    seen_field = False
    quoted = '"' + FORMS_KEY + '"'
    for person_id, raw in conn.execute(f"SELECT id, {quoted} FROM people"):
        entries = _json_list(raw)
        if entries is None:
            continue
        seen_field = True
        if str(person_id) not in allowed:
            continue
        for entry in entries:
            form_id = _as_id(entry.get("id")) if isinstance(entry, dict) else None
            if form_id is None:
                plan.dropped_entries += 1
                continue
            name = entry.get("name") if isinstance(entry, dict) else None
            plan.forms.setdefault(form_id, str(name) if name is not None else "")
    return plan if seen_field else None


def contents_hash(contents: Any) -> str:
    """`payload_hash`: sha256 of the submission's `contents` in canonical JSON (sorted keys,
    no spaces, ASCII escapes, so a lone surrogate hashes too), nothing else of the answer."""
    canonical = json.dumps(contents, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def stored_contents_hash(stored: Any) -> str:
    """`contents_hash` of a row's stored `contents` column (JSON text, or NULL for none)."""
    if stored is None:
        return contents_hash(None)
    try:
        return contents_hash(json.loads(stored))
    except (TypeError, ValueError):
        # not JSON (never written by this tool): its own text is its identity
        return hashlib.sha256(str(stored).encode("utf-8", "surrogatepass")).hexdigest()


def submission_row(
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
        contents_hash(contents),
        run_tag,
        fetched_at,
    )


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])


def rows_of_run(conn: sqlite3.Connection, run_tag: str) -> int:
    """Rows a run added: true after a resume too (a pass committed before a kill counts)."""
    return int(
        conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE run_tag = ?", (run_tag,)).fetchone()[0]
    )


def begin_pass(conn: sqlite3.Connection) -> None:
    """Open the pass's one transaction (the temp DB's connection is autocommit otherwise: a
    kill mid-pass left some forms' rows committed, and the resumed run under-counted them)."""
    if not conn.in_transaction:
        conn.execute("BEGIN")


async def update_webform_history(
    conn: sqlite3.Connection,
    client: SalesmapClient,
    run_tag: str,
    on_event: EventSink,
    cancel: threading.Event,
    concurrency: int,
    log: Any = None,
) -> WebformResult:
    """Fetch submissions of the forms allowed people submitted; insert the new ones.

    Every form's chain starts at once; the pacer caps the requests in flight (`concurrency`
    is kept for callers and no longer used here).

    All inserts happen in one transaction, committed at the end: a pass stopped half-way leaves
    `webform_history` as it was. Per-form failures are counted and reported, never swallowed;
    a cancel or a rejected token propagates (after a rollback).
    """
    from salesmap_tui.engine.endpoints import WEBFORM_LIST, webform_submit_spec

    migration = ensure_table(conn)
    if migration is not None and log is not None:
        log(
            f"webform_history migrated to today's identity: {migration.rows_before} rows, "
            f"{migration.rows_after} after merging duplicates of one submission"
        )
    before = rows_of_run(conn, run_tag)  # > 0 when a resumed run's pass had committed
    inserted = 0
    allowed = allowed_people(conn)
    plan = forms_from_people(conn, allowed)
    if plan is None:
        plan = FormPlan(from_people=False)
        async for page in client.iter_pages(WEBFORM_LIST):
            for form in page.records:
                form_id = _as_id(form.get("id"))
                if form_id is None:
                    plan.dropped_entries += 1
                    continue
                plan.forms.setdefault(form_id, str(form.get("name") or ""))
    dropped = plan.dropped_entries
    skipped: list[str] = []
    errors: list[str] = []
    done = 0
    total = len(plan.forms)
    fetched_at = utc_now_iso()

    def progress() -> None:
        on_event(WebformProgress(done, total, before + inserted, dropped, len(skipped)))

    async def one(form_id: str, form_name: str) -> None:
        nonlocal dropped, done, inserted
        try:
            async for page in client.iter_pages(webform_submit_spec(form_id)):
                rows = []
                for sub in page.records:
                    person = _as_id(sub.get("peopleId"))
                    if person is None:
                        dropped += 1
                        continue
                    if person not in allowed:
                        continue
                    rows.append(submission_row(form_id, form_name, sub, run_tag, fetched_at))
                inserted += _insert_rows(conn, rows)
                crashpoint("webform_page")
        except ApiError as exc:
            if exc.status == 400:
                skipped.append(form_id)
                if log is not None:
                    log(f"web form {printable(form_id)} skipped: {exc}")
            else:
                errors.append(f"web form {printable(form_id)}: {exc}")
        except (TokenRejected, RunCancelled, sqlite3.Error):
            # a local write failure (a full disk) is not one form's problem: the whole pass
            # rolls back, so webform_history is exactly as it was
            raise
        except Exception as exc:
            errors.append(f"web form {printable(form_id)}: {exc}")
        done += 1
        progress()

    progress()
    begin_pass(conn)
    try:
        async with asyncio.TaskGroup() as group:
            for form_id, name in plan.forms.items():
                group.create_task(one(form_id, name))
    except BaseExceptionGroup as group_error:
        conn.rollback()
        first = group_error.exceptions[0]
        raise first from None
    except BaseException:
        conn.rollback()
        raise
    new_rows = before + inserted
    crashpoint("webform_commit")
    conn.commit()
    return WebformResult(
        status="failed" if errors else "done",
        forms=total,
        new_rows=new_rows,
        dropped=dropped,
        skipped_forms=len(skipped),
        error=summarize_failures(errors),
        errors=tuple(errors),
    )


def summarize_failures(errors: list[str], first: int = 5) -> str | None:
    """How many forms failed and the first reasons (every one is in `WebformResult.errors`)."""
    if not errors:
        return None
    more = f"; and {len(errors) - first} more" if len(errors) > first else ""
    noun = "form" if len(errors) == 1 else "forms"
    return f"{len(errors)} web {noun} failed: " + "; ".join(errors[:first]) + more


def _last_webform_pass(entries: Iterator[HistoryEntry]) -> dict[str, Any] | None:
    last: dict[str, Any] | None = None
    for entry in entries:
        rec = entry.record
        if isinstance(rec.get("webform"), dict) and rec.get("status") != "running":
            last = rec
    return last


@dataclass(frozen=True)
class FormCount:
    """One form's rows in webform_history (names are Korean in real workspaces)."""

    form_id: str
    name: str
    rows: int
    newest: str | None


@dataclass(frozen=True)
class WebformStatus:
    db_exists: bool
    rows: int
    newest_created_at: str | None
    forms: int  # distinct webFormId in webform_history
    allowed_people: int  # distinct deal.peopleId in the live DB
    last_pass: dict[str, Any] | None  # newest history record with a `webform` outcome
    form_rows: tuple[FormCount, ...] = ()  # per form, most rows first


def webform_status(settings: Settings) -> WebformStatus:
    """What the live DB's webform_history holds now, and the last pass's outcome."""
    history = (e for e in read_history(settings.history_path) if isinstance(e, HistoryEntry))
    last = _last_webform_pass(history)
    if not settings.db_path.is_file():
        return WebformStatus(False, 0, None, 0, 0, last)
    conn = open_readonly(settings.db_path)
    try:
        people = len(allowed_people(conn))
        if not table_exists(conn, TABLE):
            return WebformStatus(True, 0, None, 0, people, last)
        rows, newest, forms = conn.execute(
            f"SELECT COUNT(*), MAX(createdAt), COUNT(DISTINCT webFormId) FROM {TABLE}"
        ).fetchone()
        per_form = tuple(
            FormCount(str(form_id or "-"), str(name or "-"), int(n), newest_at)
            for form_id, name, n, newest_at in conn.execute(
                f"SELECT webFormId, MAX(webFormName), COUNT(*), MAX(createdAt) FROM {TABLE} "
                "GROUP BY webFormId ORDER BY COUNT(*) DESC, 2"
            )
        )
        return WebformStatus(True, int(rows), newest, int(forms), people, last, per_form)
    finally:
        conn.close()
