"""webform_history identity (issue 9, item 5): contents-only hash, NULL createdAt once, one
transaction per pass, counts true after a resume, and the migration of older tables."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.engine import webform
from salesmap_tui.engine.endpoints import Page
from salesmap_tui.engine.errors import RunCancelled
from salesmap_tui.engine.writer import prepare_connection

from .legacy_webform import LEGACY_CREATE_SQL, legacy_insert, legacy_payload_hash

FORM = "form-1"
PEOPLE = ("p1", "p2", "p3")


def sub(person: str, at: str | None, answer: str, **extra: Any) -> dict[str, Any]:
    return {
        "peopleId": person,
        "organizationId": None,
        "dealId": None,
        "leadId": None,
        "contents": [{"label": "문의", "value": answer}, {}],
        "createdAt": at,
        **extra,
    }


class FakeClient:
    """Serves fixed submission pages per form path (the API's shape, no HTTP)."""

    def __init__(self, pages: dict[str, list[list[dict[str, Any]]]], fail_after: int = -1):
        self.pages = pages
        self.served = 0
        self.fail_after = fail_after  # raise RunCancelled when this many pages were served

    def iter_pages(self, spec: Any, start: str | None = None, priority: Any = None) -> Any:
        return self._gen(spec)

    async def _gen(self, spec: Any) -> AsyncIterator[Page]:
        form_id = spec.path.split("/")[2] if spec.path.startswith("/webForm/") else None
        if form_id is None:  # /webForm: the list of forms
            yield Page([{"id": f, "name": f"폼 {f}"} for f in self.pages], None)
            return
        for records in self.pages.get(form_id, []):
            if self.served == self.fail_after:
                raise RunCancelled("cancelled")
            self.served += 1
            yield Page(records, None)


def snapshot_db(path: Path | None = None) -> sqlite3.Connection:
    conn = prepare_connection(path) if path else sqlite3.connect(":memory:", isolation_level=None)
    conn.execute('CREATE TABLE deal (id PRIMARY KEY, "peopleId")')
    conn.executemany("INSERT INTO deal VALUES (?, ?)", [(f"d{p}", p) for p in PEOPLE])
    return conn


async def a_pass(conn: sqlite3.Connection, client: FakeClient, tag: str) -> Any:
    return await webform.update_webform_history(
        conn,
        client,
        tag,
        lambda e: None,
        threading.Event(),
        2,  # type: ignore[arg-type]
    )


def rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return sorted(
        conn.execute(
            "SELECT webFormId, peopleId, createdAt, contents, run_tag FROM webform_history"
        ).fetchall(),
        key=repr,
    )


SUBS = [
    sub("p1", "2026-01-01T00:00:00Z", "가격"),
    sub("p2", "2026-01-02T00:00:00Z", "데모"),
    sub("p3", None, "시간 없음"),
    sub("p1", "2026-01-03T00:00:00Z", "가격"),
]


async def test_payload_hash_hashes_contents_only() -> None:
    conn = snapshot_db()
    await a_pass(conn, FakeClient({FORM: [SUBS]}), "t1")
    got = dict(conn.execute("SELECT createdAt, payload_hash FROM webform_history").fetchall())
    canonical = json.dumps(SUBS[0]["contents"], sort_keys=True, separators=(",", ":"))
    assert got[SUBS[0]["createdAt"]] == hashlib.sha256(canonical.encode()).hexdigest()
    assert webform.contents_hash(SUBS[0]["contents"]) == webform.contents_hash(
        json.loads(json.dumps(SUBS[0]["contents"], ensure_ascii=False))
    )


async def test_a_new_top_level_key_never_duplicates_rows() -> None:
    # issue 9: a new key in the API's submission objects doubled the table (225 -> 450)
    conn = snapshot_db()
    first = await a_pass(conn, FakeClient({FORM: [SUBS]}), "t1")
    assert first.new_rows == 4
    changed = [dict(s, formVersion=2, ipAddress="10.0.0.1") for s in SUBS]
    second = await a_pass(conn, FakeClient({FORM: [changed]}), "t2")
    assert second.new_rows == 0
    assert len(rows(conn)) == 4
    # a changed answer is a new row (its contents differ)
    third = await a_pass(
        conn, FakeClient({FORM: [[sub("p1", "2026-01-01T00:00:00Z", "가격 변경")]]}), "t3"
    )
    assert third.new_rows == 1 and len(rows(conn)) == 5


async def test_a_submission_without_created_at_is_stored_once() -> None:
    # issue 9: SQLite's UNIQUE treats NULLs as distinct: it was inserted again on every run
    conn = snapshot_db()
    for tag in ("t1", "t2", "t3"):
        await a_pass(conn, FakeClient({FORM: [[SUBS[2]], [SUBS[2]]]}), tag)
    assert conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0] == 1


async def test_a_pass_is_one_transaction_on_an_autocommit_connection(tmp_path: Path) -> None:
    # the temp DB's connection is autocommit: pages of a pass used to commit one by one
    conn = snapshot_db(tmp_path / "temp.db")
    client = FakeClient({FORM: [[SUBS[0]], [SUBS[1]], [SUBS[2]]]}, fail_after=2)
    with pytest.raises(RunCancelled):
        await a_pass(conn, client, "t1")
    assert client.served == 2
    other = sqlite3.connect(tmp_path / "temp.db")
    assert other.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0] == 0
    other.close()
    conn.close()


async def test_counts_are_true_when_a_resumed_run_repeats_a_committed_pass() -> None:
    # a kill after the pass committed, before the checkpoint moved on: the resumed run repeats
    # the pass; its count is still every row this run added, not 0
    conn = snapshot_db()
    first = await a_pass(conn, FakeClient({FORM: [SUBS]}), "run-a")
    again = await a_pass(conn, FakeClient({FORM: [SUBS]}), "run-a")
    assert first.new_rows == again.new_rows == 4
    later = await a_pass(conn, FakeClient({FORM: [SUBS]}), "run-b")
    assert later.new_rows == 0


def legacy_db(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """An older version's table: SUBS, then the same submissions with a new top-level key
    (the old hash made them new rows), and the NULL-createdAt one inserted on three runs."""
    legacy_insert(conn, FORM, "폼", SUBS, run_tag="old-1")
    legacy_insert(conn, FORM, "폼", [dict(s, formVersion=2) for s in SUBS], run_tag="old-2")
    legacy_insert(conn, FORM, "폼", [SUBS[2]], run_tag="old-3")
    conn.execute('CREATE INDEX webform_people ON webform_history ("peopleId")')
    conn.commit()
    return SUBS


def test_the_legacy_table_really_holds_the_duplicates() -> None:
    conn = sqlite3.connect(":memory:")
    legacy_db(conn)
    assert conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0] == 9
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'webform_history'").fetchone()
    assert "UNIQUE (webFormId, peopleId, createdAt, payload_hash)" in sql[0]
    assert sql[0].strip() == LEGACY_CREATE_SQL.strip().replace(" IF NOT EXISTS", "")
    payload = conn.execute("SELECT payload, payload_hash FROM webform_history LIMIT 1").fetchone()
    assert payload[1] == legacy_payload_hash(payload[0])


async def test_a_legacy_table_is_migrated_in_place_without_loss_or_duplicates() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    legacy_db(conn)
    conn.execute('CREATE TABLE deal (id PRIMARY KEY, "peopleId")')
    conn.executemany("INSERT INTO deal VALUES (?, ?)", [(f"d{p}", p) for p in PEOPLE])
    distinct_before = set(
        conn.execute("SELECT webFormId, peopleId, createdAt, contents FROM webform_history")
    )
    migration = webform.ensure_table(conn)
    assert migration == webform.Migration(rows_before=9, rows_after=4)
    assert webform.is_current(conn) and not conn.in_transaction
    after = conn.execute(
        "SELECT webFormId, peopleId, createdAt, contents, run_tag, payload_hash "
        "FROM webform_history"
    ).fetchall()
    assert {r[:4] for r in after} == distinct_before  # nothing lost
    assert len(after) == len(distinct_before)  # nothing duplicated
    assert {r[4] for r in after} == {"old-1"}  # the oldest row of each submission is kept
    assert all(r[5] == webform.stored_contents_hash(r[3]) for r in after)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"webform_people", webform.IDENTITY_INDEX} <= indexes
    assert webform.ensure_table(conn) is None  # once
    result = await a_pass(conn, FakeClient({FORM: [[dict(s, formVersion=3) for s in SUBS]]}), "t")
    assert result.new_rows == 0 and conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[
        0
    ] == len(distinct_before)


def test_carry_over_from_a_legacy_live_db_rekeys_and_leaves_it_untouched(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    conn = sqlite3.connect(live)
    legacy_db(conn)
    conn.close()
    before = live.read_bytes()
    temp = prepare_connection(tmp_path / "temp.db")
    assert webform.carry_over(live, temp) == 4
    assert live.read_bytes() == before  # the live DB is only read
    assert webform.is_current(temp)
    assert temp.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0] == 4
    # the live DB gained a row meanwhile (a --webform-only pass): a second carry-over adds it only
    conn = sqlite3.connect(live)
    legacy_insert(conn, FORM, "폼", [sub("p2", "2026-02-01T00:00:00Z", "추가")], run_tag="wf")
    conn.close()
    assert webform.carry_over(live, temp) == 1
    assert temp.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0] == 5
    temp.close()
