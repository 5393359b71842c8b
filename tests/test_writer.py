"""TableWriter: schema growth, value types, safe identifiers, `_extra`, transactions."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesmap_tui.config import SQLITE_MAX_COLUMNS
from salesmap_tui.engine.sqlite_util import quote_ident
from salesmap_tui.engine.writer import (
    COLUMN_BUDGET,
    RecordWithoutId,
    TableWriter,
    finalize_sqlite_connection,
    prepare_connection,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def columns_of(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]


def tables_of(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def read_back(conn: sqlite3.Connection, table: str) -> dict[str, dict[str, Any]]:
    """Every row as {key: stored value}: own columns (non-NULL) plus the `_extra` keys."""
    q = quote_ident(table)
    cur = conn.execute(f"SELECT * FROM {q}")
    names = [d[0] for d in cur.description]
    out: dict[str, dict[str, Any]] = {}
    for row in cur.fetchall():
        rec: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            if name in ("_extra", "payload"):
                continue
            if value is not None:
                rec[name] = value
        extra_idx = names.index("_extra") if "_extra" in names else None
        if extra_idx is not None and row[extra_idx] is not None:
            extra = json.loads(row[extra_idx])
            for key, value in extra.items():
                assert key not in rec, f"{key!r} both a column and in _extra"
                rec[key] = value
        out[rec["id"]] = rec
    return out


def stored_matches(sent: Any, stored: Any) -> bool:
    """A column value as SQLite gives it back, against the JSON value that was sent."""
    if isinstance(sent, bool):
        return stored == int(sent) and type(stored) is int
    if isinstance(sent, dict | list):
        return isinstance(stored, str) and json.loads(stored) == sent
    if isinstance(sent, int):
        if -(2**63) <= sent < 2**63:
            return type(stored) is int and stored == sent
        return stored == str(sent)
    if isinstance(sent, float):
        return type(stored) is float and stored == sent
    return type(stored) is str and stored == sent


def assert_reconstructs(conn: sqlite3.Connection, table: str, sent: dict[str, dict[str, Any]]):
    back = read_back(conn, table)
    assert set(back) == set(sent)
    extra_keys = (
        {
            r[0]
            for r in conn.execute("SELECT source_key FROM _columns WHERE table_name = ?", (table,))
        }
        if "_columns" in tables_of(conn)
        else set()
    )
    cols = set(columns_of(conn, table))
    for rid, rec in sent.items():
        got = dict(back[rid])
        for key, value in rec.items():
            if key == "id":
                continue
            if key in extra_keys:
                assert key not in cols or key in ("_extra", "payload")
                assert got.pop(key) == value, key
            elif value is None:
                assert key not in got
            else:
                assert key in cols, f"{key!r} is neither a column nor in _columns"
                assert stored_matches(value, got.pop(key)), (key, value)
        got.pop("id")
        assert got == {}, f"keys that were not sent: {got}"


# --- basics ---------------------------------------------------------------------------------------


def test_creates_table_with_untyped_id_and_one_column_per_key() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "deal")
    assert w.row_count() == 0
    stats = w.write_page([{"id": 7, "이름": "홍길동", "amount": 12.5, "count": 3}])
    assert stats.rows == 1
    assert stats.new_columns == ["이름", "amount", "count"]
    assert columns_of(conn, "deal") == ["id", "이름", "amount", "count"]
    row = conn.execute('SELECT id, "이름", amount, count FROM deal').fetchone()
    # the id keeps its JSON type too (issue 9: 1 and "1" are two records)
    assert row == (7, "홍길동", 12.5, 3)
    assert type(row[2]) is float and type(row[3]) is int
    info = {r[1]: (r[2], r[5]) for r in conn.execute("PRAGMA table_info(deal)")}
    assert info["id"] == ("", 1)
    assert info["amount"] == ("", 0)  # untyped: values keep their JSON type
    assert w.column_count() == 4


def test_value_types() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    big = 2**64 + 5
    w.write_page(
        [
            {
                "id": "a",
                "t": True,
                "f": False,
                "n": None,
                "s": "text",
                "o": {"k": [1, "가"]},
                "l": [1, 2],
                "big": big,
                "neg": -(2**63),
            }
        ]
    )
    row = conn.execute("SELECT t, f, n, s, o, l, big, neg FROM t").fetchone()
    assert row == (1, 0, None, "text", '{"k":[1,"가"]}', "[1,2]", str(big), -(2**63))


def test_new_keys_add_columns_and_refetch_replaces_row() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "people")
    w.write_page([{"id": "1", "a": 1, "b": 2}, {"id": "2", "a": 3}])
    stats = w.write_page([{"id": "1", "a": 10, "c": "new"}])
    assert stats.new_columns == ["c"]
    assert columns_of(conn, "people") == ["id", "a", "b", "c"]
    # stored as last fetched: `b` is absent now, so NULL
    assert conn.execute("SELECT a, b, c FROM people WHERE id = '1'").fetchone() == (10, None, "new")
    # the same page twice never duplicates a row
    w.write_page([{"id": "1", "a": 10, "c": "new"}, {"id": "2", "a": 3}])
    assert w.row_count() == 2


def test_duplicate_id_in_one_page_last_wins_across_key_sets() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    stats = w.write_page([{"id": "1", "x": "first"}, {"id": "1", "y": "second"}])
    assert stats.rows == 1
    assert conn.execute("SELECT x, y FROM t").fetchall() == [(None, "second")]


def test_integer_and_text_ids_stay_distinct_rows() -> None:
    # issue 9: ids 1 and "1" are two records; TEXT affinity used to merge them into one row
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    stats = w.write_page([{"id": 1, "x": "int"}, {"id": "1", "x": "text"}])
    assert stats.rows == 2
    w.write_page([{"id": 1, "x": "int again"}])
    rows = conn.execute("SELECT id, typeof(id), x FROM t ORDER BY typeof(id)").fetchall()
    assert rows == [(1, "integer", "int again"), ("1", "text", "text")]
    assert w.row_count() == 2


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"name": "no id"}, "it has no id key"),
        ({"id": None, "name": "null id"}, "its id is null"),
        ({"id": "", "v": 1}, "its id is an empty string"),
        ({"id": True}, "its id is a boolean"),
        ({"id": {"x": 1}}, "its id is a dict"),
        ({"id": 1.5}, "its id is a float"),
    ],
)
def test_a_record_without_a_usable_id_fails_the_page(record: dict[str, Any], why: str) -> None:
    # issue 9: such records were dropped with a warning (a deal table went 200 -> 0, exit 0)
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "deal", source="GET /deal")
    w.write_page([{"id": "kept", "v": 0}])
    with pytest.raises(RecordWithoutId) as info:
        w.write_page([{"id": "a", "v": 1}, record])
    message = str(info.value)
    assert message.startswith("GET /deal: record 2 of a page has no usable id: " + why)
    assert info.value.exit_code == 1
    # the page is rolled back whole: nothing of it is stored, the earlier page is
    assert conn.execute("SELECT id FROM deal").fetchall() == [("kept",)]


def test_underscore_id_records_fail_naming_the_endpoint() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "pipeline", source="GET /pipeline")
    with pytest.raises(RecordWithoutId) as info:
        w.write_page([{"_id": "p1", "name": "영업"}])
    assert "GET /pipeline" in str(info.value)
    assert "carry `_id` instead of `id`" in str(info.value)
    assert "its keys: _id, name" in str(info.value)
    assert w.row_count() == 0


def test_memo_keeps_payload() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "memo", keep_payload=True)
    rec = {"id": 5, "text": "메모", "payload": "a key named payload", "nested": {"a": None}}
    w.write_page([rec])
    payload, extra = conn.execute("SELECT payload, _extra FROM memo").fetchone()
    assert json.loads(payload) == rec
    assert "메모" in payload  # ensure_ascii=False
    assert json.loads(extra) == {"payload": "a key named payload"}


def test_ensure_table_creates_empty_table() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "team")
    w.ensure_table()
    assert "team" in tables_of(conn)
    assert w.row_count() == 0 and w.column_count() == 1
    w.write_page([])
    assert w.row_count() == 0


# --- identifiers and _extra -----------------------------------------------------------------------


def test_hostile_keys_are_columns_not_sql() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, 'we"ird; DROP TABLE x')
    conn.execute("CREATE TABLE x (a)")
    keys = ['"; DROP TABLE x; --', "[bracket]", "`tick`", "a'b", "semi;colon", "x" * 3000, "🙂"]
    rec: dict[str, Any] = {"id": "1", **{k: i for i, k in enumerate(keys)}}
    w.write_page([rec])
    assert tables_of(conn) == {"x", 'we"ird; DROP TABLE x', "_fields"}  # _fields: issue 12
    assert columns_of(conn, 'we"ird; DROP TABLE x') == ["id", *keys]
    assert_reconstructs(conn, 'we"ird; DROP TABLE x', {"1": rec})


def test_case_twins_reserved_empty_and_nul_keys_go_to_extra() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    rec = {
        "id": "1",
        "Name": "A",
        "name": "b",
        "NAME": "c",
        "ID": 9,
        "_extra": "x",
        "_EXTRA": "y",
        "Payload": "p",
        "": "empty",
        "a\x00b": "nul",
    }
    stats = w.write_page([rec])
    assert stats.new_columns == ["Name"]
    assert set(stats.new_extra_keys) == {
        "name",
        "NAME",
        "ID",
        "_extra",
        "_EXTRA",
        "Payload",
        "",
        "a\x00b",
    }
    assert columns_of(conn, "t") == ["id", "Name", "_extra"]
    mapped = conn.execute(
        "SELECT column_name, source_key FROM _columns WHERE table_name = 't' ORDER BY source_key"
    ).fetchall()
    assert {m[0] for m in mapped} == {"_extra"}
    assert len(mapped) == 8
    assert_reconstructs(conn, "t", {"1": rec})
    # recorded once, even when the keys come again
    w.write_page([rec])
    assert conn.execute("SELECT COUNT(*) FROM _columns").fetchone()[0] == 8


def test_non_ascii_case_is_distinct_in_sqlite() -> None:
    # SQLite folds only ASCII letters, so these are two different columns
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    w.write_page([{"id": "1", "É": 1, "é": 2}])
    assert columns_of(conn, "t") == ["id", "É", "é"]


def test_extra_mapping_is_stable_across_writers() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    w.write_page([{"id": "1", "Name": "col", "name": "extra"}])
    # a resumed run: a new writer on the existing table
    w2 = TableWriter(conn, "t")
    assert w2.column_count() == 3
    w2.write_page([{"id": "2", "name": "still extra"}])
    assert columns_of(conn, "t") == ["id", "Name", "_extra"]
    row = conn.execute("SELECT Name, _extra FROM t WHERE id = '2'").fetchone()
    assert row[0] is None and json.loads(row[1]) == {"name": "still extra"}


def test_column_limit_overflow_goes_to_extra() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "wide", keep_payload=True)
    rec: dict[str, Any] = {"id": "1", **{f"k{i}": i for i in range(SQLITE_MAX_COLUMNS + 100)}}
    stats = w.write_page([rec])
    cols = columns_of(conn, "wide")
    assert len(cols) <= COLUMN_BUDGET + 1 < SQLITE_MAX_COLUMNS
    assert "_extra" in cols and "payload" in cols
    assert len(stats.new_extra_keys) == len(rec) - 1 - (len(cols) - 3)
    assert_reconstructs(conn, "wide", {"1": rec})
    # the overflow keys stay in _extra for this table, also for a new writer
    w2 = TableWriter(conn, "wide", keep_payload=True)
    w2.write_page([{"id": "2", f"k{SQLITE_MAX_COLUMNS}": "late"}])
    assert len(columns_of(conn, "wide")) == len(cols)
    assert_reconstructs(
        conn, "wide", {"1": rec, "2": {"id": "2", f"k{SQLITE_MAX_COLUMNS}": "late"}}
    )


def test_lone_surrogates_do_not_fail_the_page() -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t")
    stats = w.write_page([{"id": "1", "v": "a\ud800b"}])
    assert stats.rows == 1
    assert conn.execute("SELECT v FROM t").fetchone() == ("a\ufffdb",)


# --- transactions ---------------------------------------------------------------------------------


def test_page_is_one_transaction_and_state_rolls_back(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    conn = prepare_connection(db)
    w = TableWriter(conn, "t")
    w.write_page([{"id": "1", "a": 1}])
    conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.id = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        w.write_page([{"id": "2", "a": 2, "newcol": 1, "NewCol": 2}, {"id": "boom", "a": 3}])
    assert not conn.in_transaction
    assert columns_of(conn, "t") == ["id", "a"]  # the ALTER was rolled back too
    assert "_columns" not in tables_of(conn)
    assert w.row_count() == 1
    # the writer forgot the rolled-back columns and adds them again
    stats = w.write_page([{"id": "2", "a": 2, "newcol": 1, "NewCol": 2}])
    assert stats.new_columns == ["newcol"] and stats.new_extra_keys == ["NewCol"]
    assert columns_of(conn, "t") == ["id", "a", "newcol", "_extra"]


def test_rows_are_committed_when_write_page_returns(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    conn = prepare_connection(db)
    w = TableWriter(conn, "t")
    w.write_page([{"id": i, "v": i} for i in range(10)])
    other = sqlite3.connect(db)
    assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 10
    other.close()
    conn.close()


def test_prepare_and_finalize_connection(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "t.db"
    conn = prepare_connection(db)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    TableWriter(conn, "t").write_page([{"id": "1"}])
    assert Path(str(db) + "-wal").exists()
    finalize_sqlite_connection(conn)
    assert not Path(str(db) + "-wal").exists()
    assert not Path(str(db) + "-shm").exists()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert check.execute("SELECT id FROM t").fetchall() == [("1",)]
    check.close()


# --- property: any keys, any JSON values ----------------------------------------------------------

TRICKY_KEYS = st.sampled_from(
    [
        "id",
        "ID",
        "Id",
        "_extra",
        "_EXTRA",
        "payload",
        "PAYLOAD",
        "",
        "\x00",
        "a\x00b",
        '"',
        '""',
        '"; DROP TABLE t; --',
        "[x]",
        "`y`",
        "a;b",
        "name",
        "Name",
        "NAME",
        "이름",
        "ß",
        "İ",
        "k" * 5000,
        "rowid",
        "_columns",
    ]
)
KEYS = st.one_of(TRICKY_KEYS, st.text(max_size=20))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
RECORD = st.dictionaries(KEYS.filter(lambda k: k != "id"), JSON, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pages=st.lists(
        st.lists(st.tuples(st.sampled_from(["1", "2", "3", "4", "é"]), RECORD), max_size=5),
        min_size=1,
        max_size=4,
    ),
    keep_payload=st.booleans(),
)
def test_property_any_keys_round_trip(
    pages: list[list[tuple[str, dict[str, Any]]]], keep_payload: bool
) -> None:
    conn = sqlite3.connect(":memory:")
    w = TableWriter(conn, "t", keep_payload=keep_payload)
    expected: dict[str, dict[str, Any]] = {}
    for page in pages:
        records = [{"id": rid, **rec} for rid, rec in page]
        w.write_page(records)
        for rec in records:
            expected[rec["id"]] = rec
    assert tables_of(conn) <= {"t", "_columns", "_fields"}  # _fields: issue 12
    assert_reconstructs(conn, "t", expected)
    if keep_payload:
        for rid, payload in conn.execute("SELECT id, payload FROM t"):
            assert json.loads(payload) == expected[rid]
    # a writer opened later maps every key the same way
    w2 = TableWriter(conn, "t", keep_payload=keep_payload)
    assert w2.columns == w.columns
    assert w2.json_types == w.json_types  # and knows the types it saw (a resumed run)
    # ... and writing every record again through it changes nothing (extra keys included)
    for page in pages:
        w2.write_page([{"id": rid, **rec} for rid, rec in page])
    assert_reconstructs(conn, "t", expected)
