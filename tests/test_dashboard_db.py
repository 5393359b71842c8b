"""A DB ready for dashboards: relation indexes, and `_fields` true to what the API served."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.engine.events import EndpointProgress, EngineEvent
from salesmap_tui.engine.writer import (
    RELATION_COLUMNS,
    TableWriter,
    join_types,
    prepare_for_dashboards,
)

from .conftest import SNAPSHOT_TABLES, dataset_of, make_settings, run

JSON_TYPE = {str: "string", int: "number", float: "number", bool: "boolean", dict: "object"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    return JSON_TYPE[type(value)]


def served_types(records: list[dict[str, Any]]) -> dict[str, str]:
    """Column -> json_types, computed from the records as the API served them."""
    keys: dict[str, set[str]] = {}
    for rec in records:
        for key, value in rec.items():
            keys.setdefault(key, set()).add(json_type(value))
    for key, types in keys.items():
        if any(key not in rec for rec in records):
            types.add("null")  # a record without the key: NULL in its row
    return {k: join_types(v) for k, v in keys.items()}


def fields_of(db: Path) -> dict[str, dict[str, str]]:
    conn = sqlite3.connect(db)
    try:
        out: dict[str, dict[str, str]] = {}
        for table, col, types in conn.execute("SELECT * FROM _fields"):
            out.setdefault(table, {})[col] = types
        return out
    finally:
        conn.close()


def indexed_columns(db: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    try:
        out: dict[str, set[str]] = {}
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for _seq, name, *_ in conn.execute(f'PRAGMA index_list("{table}")'):
                for _n, _cid, col in conn.execute(f'PRAGMA index_info("{name}")'):
                    out.setdefault(table, set()).add(col)
        return out
    finally:
        conn.close()


def columns(db: Path, table: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    finally:
        conn.close()


def test_every_relation_column_is_indexed_after_a_run(tmp_path, sandbox):
    result, _ = run(make_settings(tmp_path, sandbox))
    assert result.exit_code == 0, result.message
    db = tmp_path / "salesmap_latest.db"
    indexed = indexed_columns(db)
    expected_somewhere = 0
    for table in (*SNAPSHOT_TABLES, "webform_history"):
        for col in RELATION_COLUMNS:
            if col in columns(db, table):
                expected_somewhere += 1
                assert col in indexed.get(table, set()), f"{table}.{col} has no index"
    assert "peopleId" in indexed["webform_history"]
    assert "peopleId" in indexed["deal"] and "dealId" in indexed["memo"]
    assert expected_somewhere >= 8
    # the planner uses them for a dashboard's join
    conn = sqlite3.connect(db)
    plan = " ".join(
        str(r[-1])
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM people p JOIN deal d ON d.peopleId = p.id "
            "WHERE p.id = ?",
            ("x",),
        )
    )
    conn.close()
    assert "ix_deal_peopleId" in plan


def test_fields_are_true_to_what_the_sandbox_served(tmp_path, sandbox, sandbox_config):
    result, _ = run(make_settings(tmp_path, sandbox))
    assert result.exit_code == 0, result.message
    db = tmp_path / "salesmap_latest.db"
    fields = fields_of(db)
    data = dataset_of(sandbox_config)
    for table in SNAPSHOT_TABLES:
        expected = served_types(list(data.iter_records(table)))
        if table == "memo":
            expected["payload"] = "object"
        assert fields[table] == expected, table
        assert set(fields[table]) == set(columns(db, table))  # every column, no more
    # webform_history's types read from its own columns
    wf = fields["webform_history"]
    assert set(wf) == set(columns(db, "webform_history"))
    assert wf["contents"].split("|")[0] in ("object", "array")
    assert wf["webFormId"].startswith("string")


def test_fields_survive_an_interrupted_and_resumed_run(tmp_path, sandbox):
    (tmp_path / "clean").mkdir()
    (tmp_path / "resumed").mkdir()
    clean, _ = run(make_settings(tmp_path / "clean", sandbox))
    assert clean.exit_code == 0
    cancel = threading.Event()
    settings = make_settings(tmp_path / "resumed", sandbox, checkpoint_interval=1)
    from salesmap_tui.engine.api import run_snapshot

    pages = 0

    def sink(event: EngineEvent) -> None:
        nonlocal pages
        if isinstance(event, EndpointProgress) and event.state == "fetching":
            pages += 1
            if pages == 6:
                cancel.set()

    first = run_snapshot(settings, sink, cancel)
    assert first.status == "interrupted"
    second, _ = run(settings.replace(resume=True))
    assert second.exit_code == 0, second.message
    assert fields_of(tmp_path / "resumed" / "salesmap_latest.db") == fields_of(
        tmp_path / "clean" / "salesmap_latest.db"
    )


def test_types_a_writer_sees_including_booleans_nulls_and_missing_keys(tmp_path):
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    w = TableWriter(conn, "deal")
    w.write_page(
        [
            {
                "id": 1,
                "금액": 10,
                "won": True,
                "tags": ["a"],
                "owner": {"id": "u"},
                "peopleId": "p",
            },
            {"id": 2, "금액": 2.5, "won": None, "tags": [], "owner": None},
        ]
    )
    w.write_page([{"id": 3, "금액": "n/a", "late": "x"}])
    prepare_for_dashboards(conn, ["deal"])
    got = {c: t for _, c, t in conn.execute("SELECT * FROM _fields WHERE table_name = 'deal'")}
    assert got == {
        "id": "number",
        "금액": "string|number",
        "won": "boolean|null",
        "tags": "array|null",
        "owner": "object|null",
        "peopleId": "string|null",
        "late": "string|null",
    }
    # a failed page's types are not recorded (its transaction rolled back)
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON deal BEGIN SELECT RAISE(ABORT, 'x'); END")
    with pytest.raises(sqlite3.Error):
        w.write_page([{"id": 4, "won": "maybe"}])
    conn.execute("DROP TRIGGER boom")
    assert w.json_types["won"] == {"boolean"}
    conn.close()
