"""Hostile CRM data, fuzzed, through the whole engine.

Hypothesis builds records whose keys are any Unicode (quotes, brackets, semicolons, NUL, empty,
very long, equal but for case, the writer's own reserved names) and whose values are every JSON
type and size; an `httpx.MockTransport` serves them as Salesmap envelopes, paged by cursor, to
`run_snapshot`. The live DB must then hold exactly what was sent (read back from the columns and
`_extra`, mapped by `_columns`), with no SQL error and no object in `sqlite_master` beyond the
ones a snapshot makes.

CI runs a modest number of examples; the long run is `FUZZ_EXAMPLES=2000 pytest --timeout=0
tests/reliability/test_hostile_data.py` (about 6 minutes: past pytest-timeout's 300 s).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesmap_tui.config import Settings
from salesmap_tui.engine.endpoints import SNAPSHOT_ENDPOINTS
from salesmap_tui.engine.runs.snapshot import run_snapshot
from salesmap_tui.engine.writer import RELATION_COLUMNS

from .conftest import SECRET, leaks_in_tree

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SERVED = ("organization", "memo", "user")  # paginated, paginated with payload, one page
EXPECTED_OBJECTS = {
    *(spec.name for spec in SNAPSHOT_ENDPOINTS),
    "_columns",
    "_fields",  # issue 12: JSON types per column, for dashboards
    "sqlite_stat1",  # PRAGMA optimize's statistics, once relation indexes exist (issue 12)
    "manifest",
    "run_info",
    "webform_history",
}

# UTF-8-encodable text: the API speaks UTF-8 (lone surrogates have their own writer test)
TEXT = st.characters(codec="utf-8")
TRICKY_KEYS = st.sampled_from(
    [
        "ID",
        "Id",
        "iD",
        "_extra",
        "_EXTRA",
        "payload",
        "Payload",
        "_columns",
        "rowid",
        "oid",
        "",
        " ",
        "\x00",
        "a\x00b",
        '"',
        '""',
        "'",
        "`",
        "[",
        "]",
        "[id]",
        ";",
        '"; DROP TABLE organization; --',
        "'); DELETE FROM manifest; --",
        'x"); CREATE TABLE pwned(a); --',
        "name",
        "Name",
        "NAME",
        "이름",
        "ß",
        "SS",
        "İ",
        "ı",
        "\u212a",  # Kelvin sign: folds to "k" outside ASCII rules
        "k",
        "K",
        "\x1b[31mred\x1b[0m",
        "\x1b]0;title\x07",
        "[bold]markup[/bold]",
        "a.b",
        "a b",
        "?",
        ":name",
        "@p",
        "$1",
        "k" * 3000,
        "ключ",
        "🔑",
        "\u200b",
        "\ufeff",
    ]
)
KEYS = st.one_of(TRICKY_KEYS, st.text(TEXT, max_size=12)).filter(lambda k: k != "id")
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**80),  # beyond SQLite's INTEGER: kept as text
    st.integers(max_value=-(2**63) - 1, min_value=-(2**80)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(TEXT, max_size=40),
    st.sampled_from(["", "\x00", "null", "[1, 2]", '{"a": 1}', "1e5", "-0", "x" * 20_000]),
)
VALUE = st.recursive(
    LEAF,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(TRICKY_KEYS, st.text(TEXT, max_size=6)), children, max_size=4)
    ),
    max_leaves=10,
)
IDS = st.one_of(
    st.text(TEXT, min_size=1, max_size=30),
    st.integers(min_value=1, max_value=2**62),
    st.sampled_from(["'; DROP TABLE organization; --", "\x00", "[id]", "Ω", " "]),
)


@st.composite
def endpoint_pages(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Records with distinct ids, split into pages; each page's cursor is its last id."""
    ids = draw(st.lists(IDS, min_size=0, max_size=12, unique_by=lambda i: str(i)))
    records = [{"id": rid, **draw(st.dictionaries(KEYS, VALUE, max_size=8))} for rid in ids]
    pages: list[list[dict[str, Any]]] = []
    rest = records
    while rest:
        n = draw(st.integers(min_value=1, max_value=max(1, len(rest))))
        pages.append(rest[:n])
        rest = rest[n:]
    return pages


class FakeSalesmap:
    """Serves the drawn pages as the API would: envelope, cursor = last id, end by null."""

    def __init__(self, pages: dict[str, list[list[dict[str, Any]]]], ascii_json: bool) -> None:
        self.pages = pages
        self.ascii_json = ascii_json
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        parts = urlsplit(str(request.url))
        name = parts.path.rsplit("/", 1)[-1]
        cursor = parse_qs(parts.query, keep_blank_values=True).get("cursor", [None])[0]
        self.requests.append(f"{name}?{cursor}")
        key = {"webForm": "webFormList"}.get(name, f"{name}List")
        pages = self.pages.get(name, [])
        index = 0
        if cursor is not None:
            starts = {str(p[-1]["id"]): i + 1 for i, p in enumerate(pages)}
            index = starts[cursor]  # a cursor the server never gave out is a test failure
        page = pages[index] if index < len(pages) else []
        nxt = page[-1]["id"] if page and index + 1 < len(pages) else None
        body = {"success": True, "data": {key: page, "nextCursor": nxt}}
        text = json.dumps(body, ensure_ascii=self.ascii_json)
        return httpx.Response(200, content=text.encode("utf-8"), headers={"content-type":
                              "application/json; charset=utf-8"})  # fmt: skip


def read_back(db: Path, table: str) -> dict[str, dict[str, Any]]:
    """{id: {key: stored value}} from the table's own columns and `_extra` (via `_columns`)."""
    conn = sqlite3.connect(db)
    try:
        routed: set[str] = set()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_columns'").fetchone():
            routed = {
                str(k)
                for (k,) in conn.execute(
                    "SELECT source_key FROM _columns WHERE table_name = ? AND column_name = ?",
                    (table, "_extra"),
                )
            }
        cur = conn.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cur.description]
        out: dict[str, dict[str, Any]] = {}
        for row in cur:
            rec: dict[str, Any] = {}
            for name, value in zip(names, row, strict=True):
                if name == "_extra":
                    extra = json.loads(value) if value is not None else {}
                    assert set(extra) <= routed, "an _extra key missing from _columns"
                    rec.update({k: ("extra", v) for k, v in extra.items()})
                elif name != "payload":
                    rec[name] = value
            out[str(rec.pop("id"))] = rec
        return out
    finally:
        conn.close()


def assert_same(stored: Any, sent: Any, where: str) -> None:
    if isinstance(stored, tuple) and stored[:1] == ("extra",):
        assert stored[1] == sent and type(stored[1]) is type(sent), where  # JSON round trip
        return
    if isinstance(sent, bool):
        assert stored == int(sent) and type(stored) is int, where
    elif isinstance(sent, int):
        want: Any = sent if -(2**63) <= sent < 2**63 else str(sent)
        assert stored == want and type(stored) is type(want), where
    elif isinstance(sent, dict | list):
        assert isinstance(stored, str) and json.loads(stored) == sent, where
    else:  # str, float, None keep their type
        assert stored == sent and type(stored) is type(sent), where


def check_table(db: Path, table: str, records: list[dict[str, Any]]) -> None:
    got = read_back(db, table)
    want = {str(r["id"]): r for r in records}
    assert set(got) == set(want), table
    for rid, sent in want.items():
        row = got[rid]
        for key, value in sent.items():
            if key == "id":
                continue
            where = f"{table}[{rid!r}][{key!r}]"
            if value is None:  # null is NULL: a column that holds NULL, or an _extra null
                assert row.get(key) in (None, ("extra", None)), where
            else:
                assert key in row, where
                assert_same(row[key], value, where)
        # nothing else came back: every other column of this row is NULL
        extra_keys = {k for k, v in row.items() if isinstance(v, tuple)}
        assert extra_keys <= set(sent), f"{table}[{rid!r}] has foreign _extra keys"
        others = {k for k, v in row.items() if k not in sent and v is not None}
        assert not others, f"{table}[{rid!r}] has values for {others}"
    if table == "memo":  # memo keeps the raw record too
        conn = sqlite3.connect(db)
        payloads = {str(i): json.loads(p) for i, p in conn.execute("SELECT id, payload FROM memo")}
        conn.close()
        assert payloads == {str(r["id"]): r for r in records}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    pages=st.fixed_dictionaries({name: endpoint_pages() for name in SERVED}),
    ascii_json=st.booleans(),
)
def test_hostile_records_are_stored_exactly_through_the_engine(
    pages: dict[str, list[list[dict[str, Any]]]], ascii_json: bool
) -> None:
    server = FakeSalesmap(pages, ascii_json)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_settings = Settings(
            db_path=root / "live.db",
            log_dir=root / "logs",
            backup_dir=root / "backups",
            base_url="https://salesmap.invalid/api/v2",
            token=SECRET,
            min_interval=0,
            max_wait=0.01,
            backoff_base=0.001,
            concurrency=3,
        )
        result = run_snapshot(
            run_settings,
            lambda event: None,
            threading.Event(),
            transport_factory=lambda: httpx.MockTransport(server),
        )
        assert (result.status, result.exit_code) == ("done", 0), result.errors
        db = run_settings.db_path
        for name in SERVED:
            sent = [r for page in pages[name] for r in page]
            check_table(db, name, sent if name != "user" else (pages[name] or [[]])[0])
        conn = sqlite3.connect(db)
        try:
            objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        tables = {n for t, n in objects if t == "table"}
        assert tables <= EXPECTED_OBJECTS, tables - EXPECTED_OBJECTS
        assert {t for t, _ in objects} <= {"table", "index"}
        # SQLite's own, and (issue 12) ours on relation columns, ix_<table>_<column>, and
        # (issue 9) webform_history's unique key, an expression index
        relation_indexes = {f"ix_{t}_{c}" for t in tables for c in RELATION_COLUMNS}
        relation_indexes.add("webform_history_identity")
        assert all(
            n.startswith("sqlite_autoindex_") or n in relation_indexes
            for t, n in objects
            if t == "index"
        )
        # each page was asked for once: the ids served as cursors came back verbatim
        paginated = [n for n in SERVED if n != "user"]
        for name in paginated:
            asked = [r for r in server.requests if r.startswith(f"{name}?")]
            assert len(asked) == max(1, len(pages[name])), (name, asked)
        assert leaks_in_tree(root) == []  # this run's files live outside tmp_path
