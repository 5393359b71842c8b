"""TableWriter: streaming upserts of API records into SQLite, additive schema, safe identifiers.

One table per endpoint: `id PRIMARY KEY` (untyped, so an integer id `1` and a text id `"1"` stay
two rows), then one untyped column per API key named exactly as the key (so values keep their
JSON types). A record without a usable id (missing, null, empty, not a string or an integer)
fails the page: it is never dropped in silence. A key that cannot be its own column (a case twin of
an existing column, a reserved name, empty, containing NUL, or past the column limit) is kept in
the `_extra` JSON column and recorded once in `_columns`; nothing is ever dropped. Keys are
untrusted: identifiers are always quoted, values always bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from salesmap_tui.config import SQLITE_MAX_COLUMNS
from salesmap_tui.engine.errors import SalesmapTuiError, printable
from salesmap_tui.engine.files import (
    create_private_fd,
    ensure_private_dir,
    fsync_file,
    remove_planted_links,
)
from salesmap_tui.engine.sqlite_util import quote_ident

_T = TypeVar("_T")
EXTRA_COLUMN = "_extra"
PAYLOAD_COLUMN = "payload"
ID_COLUMN = "id"
COLUMNS_TABLE = "_columns"
FIELDS_TABLE = "_fields"
# columns dashboards join on; each gets an index at finalize wherever a table has it
RELATION_COLUMNS = ("peopleId", "organizationId", "dealId", "leadId")
# JSON type names, in the order `json_types` lists them ("number|null", "string|object", ...)
JSON_TYPE_ORDER = ("string", "number", "boolean", "object", "array", "null")
_JSON_TYPE_OF: dict[type, str] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}
# own columns stop here, leaving room for `_extra` and `payload` under SQLite's hard limit
COLUMN_BUDGET = SQLITE_MAX_COLUMNS - 10
_RESERVED = frozenset({EXTRA_COLUMN, PAYLOAD_COLUMN})
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_PLAN_CACHE_MAX = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(name: str) -> str:
    """SQLite compares identifiers case-insensitively for ASCII letters only."""
    return name.translate(_ASCII_LOWER)


def _dumps(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # a lone surrogate from the API: escaped JSON keeps it exactly and is valid UTF-8
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def sql_value(value: Any) -> Any:
    """A JSON value as SQLite stores it: numbers, 0/1, NULL, text, or JSON text for containers."""
    t = type(value)
    if t is str or t is float or value is None:
        return value
    if t is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if t is bool:
        return int(value)
    if t is dict or t is list:
        return _dumps(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value) if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if isinstance(value, float | str):
        return value
    if isinstance(value, dict | list | tuple):
        return _dumps(value)
    return str(value)


class RecordWithoutId(SalesmapTuiError):
    """A record whose `id` is missing or unusable: the run fails (exit 1), nothing is dropped."""


def id_problem(value: Any) -> str | None:
    """Why `value` cannot be a record's id, or None when it can (a non-empty string, an int).

    A blank but non-empty string (" ") is an odd id, not a missing one: it is kept as it is.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int):
        return None
    if isinstance(value, str):
        return None if value else "an empty string"
    return f"a {type(value).__name__}"


def id_key(value: Any) -> tuple[str, Any]:
    """An id's identity within a page: its JSON type and value (`1` is not `"1"`)."""
    return ("i" if isinstance(value, int) else "s", value)


def _no_id_message(source: str, index: int, rec: dict[str, Any]) -> str:
    why = f"its id is {id_problem(rec[ID_COLUMN])}" if ID_COLUMN in rec else "it has no id key"
    keys = [printable(str(k))[:40] for k in list(rec)[:8]]
    more = ", ..." if len(rec) > 8 else ""
    hint = ""
    if ID_COLUMN not in rec and "_id" in rec:
        hint = " (the records carry `_id` instead of `id`)"
    return (
        f"{source}: record {index + 1} of a page has no usable id: {why}{hint}; "
        f"its keys: {', '.join(keys) or 'none'}{more}. A record without an id cannot be "
        "stored, and the run fails rather than drop it; the live DB is untouched"
    )


@dataclass(frozen=True)
class WriteStats:
    rows: int  # records upserted (a duplicate id within the page counts once)
    new_columns: list[str] = field(default_factory=list)  # columns added by this page
    new_extra_keys: list[str] = field(default_factory=list)  # keys newly routed to `_extra`


@dataclass(frozen=True, eq=False)  # identity hash: cheap as a dict key per row
class _Plan:
    """How one key-set (in its order) maps onto the table: built once, reused for every row."""

    own: tuple[str, ...]  # keys stored in their own column (not `id`)
    extra: tuple[str, ...]  # keys stored in `_extra`
    sql: str


class TableWriter:
    """Streams pages of records into one table; `write_page` commits before it returns."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        table: str,
        *,
        keep_payload: bool = False,
        source: str | None = None,
    ) -> None:
        self.conn = conn
        self.table = table
        self.source = source or f"table {table}"  # names the endpoint in a failure
        self.keep_payload = keep_payload
        self._qtable = quote_ident(table)
        self._columns: list[str] = []  # the table's columns, in order
        self._folded: set[str] = set()  # their ASCII-lowercased names
        self._own: set[str] = set()  # keys stored as their own column
        self._extra: set[str] = set()  # keys stored in `_extra`
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._exists = False
        # column -> JSON types seen in it (null is added at finalize, from the table itself)
        self._types: dict[str, set[str]] = {}
        self._load()

    # --- state ----------------------------------------------------------------------------------
    def _load(self) -> None:
        cols = [
            str(r[1])
            for r in self.conn.execute("SELECT * FROM pragma_table_info(?)", (self.table,))
        ]
        if not cols:
            return
        self._exists = True
        self._set_columns(cols)
        if self._table_exists(COLUMNS_TABLE):
            rows = self.conn.execute(
                f"SELECT source_key FROM {COLUMNS_TABLE} WHERE table_name = ? AND column_name = ?",
                (self.table, EXTRA_COLUMN),
            )
            self._extra = {str(r[0]) for r in rows}
        if self._table_exists(FIELDS_TABLE):  # a resumed run keeps what it saw before
            rows = self.conn.execute(
                f"SELECT column_name, json_types FROM {FIELDS_TABLE} WHERE table_name = ?",
                (self.table,),
            )
            for col, types in rows:
                self._types[str(col)] = {t for t in str(types or "").split("|") if t}
                self._types[str(col)].discard("null")

    def _set_columns(self, cols: Iterable[str]) -> None:
        self._columns = list(cols)
        self._folded = {_fold(c) for c in self._columns}
        self._own = {c for c in self._columns if c not in _RESERVED}

    def _table_exists(self, name: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def row_count(self) -> int:
        if not self._exists and not self._table_exists(self.table):
            return 0
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {self._qtable}").fetchone()[0])

    def column_count(self) -> int:
        return len(self._columns)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    # --- writing --------------------------------------------------------------------------------
    def ensure_table(self) -> None:
        """Create the (empty) table now, so an endpoint with no records still has its table."""
        if self._exists:
            return
        self._begin()
        try:
            self._set_columns(self._initial_columns())
            self._create_table()
            self.conn.commit()
        except BaseException:
            self._rollback()
            self._set_columns([])
            raise
        self._exists = True

    def _initial_columns(self) -> list[str]:
        return [ID_COLUMN, PAYLOAD_COLUMN] if self.keep_payload else [ID_COLUMN]

    def _create_table(self) -> None:
        """CREATE TABLE with every column known now (one statement beats many ALTERs)."""
        defs = []
        for col in self._columns:
            if col == ID_COLUMN:
                # untyped: TEXT affinity would turn the integer 1 into "1", merging two ids
                defs.append(f"{quote_ident(col)} PRIMARY KEY")
            elif col in _RESERVED:
                defs.append(f"{quote_ident(col)} TEXT")
            else:
                defs.append(quote_ident(col))  # untyped: values keep their JSON type
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {self._qtable} ({', '.join(defs)})")

    def _begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.rollback()

    def write_page(self, records: list[dict[str, Any]]) -> WriteStats:
        """Upsert one page in one transaction, adding columns as new keys appear; commits."""
        try:
            return self._write_page(records)
        except UnicodeEncodeError:
            # lone surrogates cannot be UTF-8; store U+FFFD in their place rather than fail
            return self._write_page([_scrub(r) for r in records])

    def _write_page(self, records: list[dict[str, Any]]) -> WriteStats:
        saved = (list(self._columns), set(self._extra), self._exists)
        new_columns: list[str] = []
        new_extra: list[str] = []
        creating = not self._exists
        if creating:
            self._set_columns(self._initial_columns())
        self._begin()
        try:
            plans = self._plans
            # the last record per id wins, as it would in a sequential upsert; every record's
            # keys still shape the schema
            latest: dict[tuple[str, Any], tuple[Any, dict[str, Any], _Plan]] = {}
            for index, rec in enumerate(records):
                rid = rec.get(ID_COLUMN)
                if id_problem(rid) is not None:
                    raise RecordWithoutId(_no_id_message(self.source, index, rec))
                keyset = tuple(rec)
                plan = plans.get(keyset)
                if plan is None:
                    plan = self._plan(keyset, new_columns, new_extra)
                latest[id_key(rid)] = (sql_value(rid), rec, plan)
            self._apply_schema(creating, self._columns[len(saved[0]) :], new_extra)
            self._exists = True
            keep_payload = self.keep_payload
            groups: dict[_Plan, list[tuple[Any, ...]]] = {}
            by_plan: dict[_Plan, list[dict[str, Any]]] = {}
            for rid, rec, plan in latest.values():
                row: list[Any] = [rid]
                row.extend([sql_value(rec[k]) for k in plan.own])
                if plan.extra:
                    row.append(_dumps({k: rec[k] for k in plan.extra}))
                if keep_payload:
                    row.append(_dumps(rec))
                bucket = groups.get(plan)
                if bucket is None:
                    groups[plan] = bucket = []
                    by_plan[plan] = []
                bucket.append(tuple(row))
                by_plan[plan].append(rec)
            for plan, rows in groups.items():
                self.conn.executemany(plan.sql, rows)
            grown = self._types_grown(by_plan)
            if grown:
                self._save_types(grown)
            self.conn.commit()
        except BaseException:
            self._rollback()
            # the DDL was rolled back too: forget what it added
            self._set_columns(saved[0])
            self._extra = saved[1]
            self._exists = saved[2]
            self._plans.clear()
            raise
        for col, types in grown.items():
            self._types[col] = types
        return WriteStats(rows=len(latest), new_columns=new_columns, new_extra_keys=new_extra)

    def _types_grown(self, by_plan: dict[_Plan, list[dict[str, Any]]]) -> dict[str, set[str]]:
        """Columns whose set of JSON types this page grows, with their new sets."""
        grown: dict[str, set[str]] = {}
        known = self._types
        if by_plan and self.keep_payload and "object" not in known.get(PAYLOAD_COLUMN, set()):
            grown[PAYLOAD_COLUMN] = {"object"}
        for plan, recs in by_plan.items():
            for key in (ID_COLUMN, *plan.own):
                # one pass per key over the page's records, at C speed
                seen = {type(r[key]) for r in recs}
                seen.discard(type(None))
                names = {_JSON_TYPE_OF.get(t, "string") for t in seen}
                have = grown.get(key) or known.get(key) or set()
                if not names <= have:
                    grown[key] = have | names
            extra_seen = grown.get(EXTRA_COLUMN) or known.get(EXTRA_COLUMN) or set()
            if plan.extra and "object" not in extra_seen:
                grown[EXTRA_COLUMN] = {"object"}
        return grown

    def _save_types(self, grown: dict[str, set[str]]) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} (table_name TEXT, column_name TEXT, "
            "json_types TEXT, PRIMARY KEY (table_name, column_name))"
        )
        self.conn.executemany(
            f"INSERT OR REPLACE INTO {FIELDS_TABLE} (table_name, column_name, json_types) "
            "VALUES (?, ?, ?)",
            [(self.table, col, join_types(types)) for col, types in grown.items()],
        )

    @property
    def json_types(self) -> dict[str, set[str]]:
        """Column -> the non-null JSON types written to it so far."""
        return {col: set(types) for col, types in self._types.items()}

    def _plan(self, keyset: tuple[str, ...], new_columns: list[str], new_extra: list[str]) -> _Plan:
        own: list[str] = []
        extra: list[str] = []
        for key in keyset:
            if key == ID_COLUMN:
                continue
            if key in self._own:
                own.append(key)
            elif key in self._extra:
                extra.append(key)
            elif self._can_be_column(key):
                self._columns.append(key)
                self._folded.add(_fold(key))
                self._own.add(key)
                new_columns.append(key)
                own.append(key)
            else:
                if EXTRA_COLUMN not in self._columns:
                    self._columns.append(EXTRA_COLUMN)
                    self._folded.add(EXTRA_COLUMN)
                self._extra.add(key)
                new_extra.append(key)
                extra.append(key)
        cols = [ID_COLUMN, *own]
        if extra:
            cols.append(EXTRA_COLUMN)
        if self.keep_payload:
            cols.append(PAYLOAD_COLUMN)
        sql = (
            f"INSERT OR REPLACE INTO {self._qtable} ({', '.join(map(quote_ident, cols))}) "
            f"VALUES ({', '.join('?' * len(cols))})"
        )
        plan = _Plan(own=tuple(own), extra=tuple(extra), sql=sql)
        if len(self._plans) >= _PLAN_CACHE_MAX:
            self._plans.clear()
        self._plans[keyset] = plan
        return plan

    def _can_be_column(self, key: str) -> bool:
        if not key or "\x00" in key:
            return False
        folded = _fold(key)
        if folded in self._folded or folded in _RESERVED:
            return False
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return len(self._columns) < COLUMN_BUDGET

    def _apply_schema(self, creating: bool, added: list[str], new_extra: list[str]) -> None:
        """The DDL for what planning this page decided, inside the page's transaction."""
        if creating:
            self._create_table()
        else:
            for col in added:
                kind = " TEXT" if col in _RESERVED else ""  # own columns stay untyped
                self.conn.execute(f"ALTER TABLE {self._qtable} ADD COLUMN {quote_ident(col)}{kind}")
        if new_extra:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (table_name TEXT, column_name TEXT, "
                "source_key TEXT, PRIMARY KEY (table_name, source_key))"
            )
            self.conn.executemany(
                f"INSERT OR IGNORE INTO {COLUMNS_TABLE} (table_name, column_name, source_key) "
                "VALUES (?, ?, ?)",
                [(self.table, EXTRA_COLUMN, key) for key in new_extra],
            )


def join_types(types: Iterable[str]) -> str:
    """`{"null", "number"}` -> "number|null" (JSON_TYPE_ORDER)."""
    have = set(types)
    return "|".join(t for t in JSON_TYPE_ORDER if t in have)


def _columns_of(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]


def create_relation_indexes(conn: sqlite3.Connection, tables: Iterable[str]) -> list[str]:
    """An index on every relation column each of `tables` has (for dashboards' joins)."""
    made: list[str] = []
    for table in tables:
        cols = set(_columns_of(conn, table))
        for col in RELATION_COLUMNS:
            if col in cols:
                name = f"ix_{table}_{col}"
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} "
                    f"ON {quote_ident(table)} ({quote_ident(col)})"
                )
                made.append(name)
    return made


# how SQLite's own types read as JSON types, for tables not written by a TableWriter
_SQL_TYPE_AS_JSON = {"text": "string", "integer": "number", "real": "number", "blob": "string"}
_JSON_FUNC_AS_JSON = {
    "true": "boolean",
    "false": "boolean",
    "integer": "number",
    "real": "number",
    "text": "string",
    "object": "object",
    "array": "array",
    "null": "null",
}


def finalize_fields(
    conn: sqlite3.Connection,
    tables: Iterable[str],
    *,
    json_columns: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Write `_fields (table_name, column_name, json_types)` for every column of `tables`.

    Types recorded while writing (TableWriter) are kept; `null` is added where the table holds
    a NULL (a value null in the API or a key a record did not have). A column with no recorded
    types is read from SQLite (`json_columns` name JSON-text columns, read with json_type).
    """
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} (table_name TEXT, column_name TEXT, "
        "json_types TEXT, PRIMARY KEY (table_name, column_name))"
    )
    json_columns = json_columns or {}
    for table in tables:
        cols = _columns_of(conn, table)
        if not cols:
            continue
        recorded: dict[str, set[str]] = {}
        for col, types in conn.execute(
            f"SELECT column_name, json_types FROM {FIELDS_TABLE} WHERE table_name = ?", (table,)
        ):
            recorded[str(col)] = {t for t in str(types or "").split("|") if t and t != "null"}
        qt = quote_ident(table)
        nulls = conn.execute(
            f"SELECT {', '.join(f'SUM({quote_ident(c)} IS NULL)' for c in cols)} FROM {qt}"
        ).fetchone()
        out: list[tuple[str, str, str]] = []
        for col, null_count in zip(cols, nulls, strict=True):
            types = set(recorded.get(col) or ())
            if not types:
                qc = quote_ident(col)
                if col in json_columns.get(table, ()):
                    sql = f"SELECT DISTINCT json_type({qc}) FROM {qt} WHERE json_valid({qc})"
                    types = {_JSON_FUNC_AS_JSON.get(str(r[0]), "string") for r in conn.execute(sql)}
                    sql = f"SELECT 1 FROM {qt} WHERE {qc} IS NOT NULL AND NOT json_valid({qc})"
                    if conn.execute(sql + " LIMIT 1").fetchone():
                        types.add("string")
                else:
                    sql = f"SELECT DISTINCT typeof({qc}) FROM {qt} WHERE {qc} IS NOT NULL"
                    types = {_SQL_TYPE_AS_JSON.get(str(r[0]), "string") for r in conn.execute(sql)}
            if null_count:
                types.add("null")
            out.append((table, col, join_types(types)))
        conn.executemany(
            f"INSERT OR REPLACE INTO {FIELDS_TABLE} (table_name, column_name, json_types) "
            "VALUES (?, ?, ?)",
            out,
        )


def prepare_for_dashboards(
    conn: sqlite3.Connection,
    tables: Iterable[str],
    *,
    json_columns: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """At finalize: the relation indexes and `_fields`, in one transaction; the indexes made."""
    names = [t for t in tables if _columns_of(conn, t)]
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN")
    try:
        made = create_relation_indexes(conn, names)
        finalize_fields(conn, names, json_columns=json_columns)
        conn.commit()
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.rollback()
        raise
    return made


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


class WriteThread:
    """One thread that writes the crawl's pages to the temp DB while the event loop goes on.

    SQLite keeps one writer connection (the run's); during the crawl its page writes run here,
    one job at a time in the order they are handed in, each holding `lock`. Whatever else touches
    the connection meanwhile (the checkpoint's row counts, the web-form pass's bookkeeping) takes
    `lock` too, so no statement ever runs inside another's transaction. A page's checkpoint is
    taken only after its job returned, so a checkpoint never names a cursor whose page is not
    committed. `close` waits for the job running (a cancelled crawl never leaves one behind
    writing to a connection about to close) and drops those not started.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="temp-db-writer")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` on the writer thread, under `lock`; its result (or exception)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._locked, fn, args)

    def _locked(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        with self.lock:
            return fn(*args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def prepare_connection(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600) a DB to write: WAL, synchronous=NORMAL, explicit transactions."""
    ensure_private_dir(path.parent)
    remove_planted_links(path)
    fd, _created = create_private_fd(path, os.O_RDWR)  # O_NOFOLLOW; a new file's folder fsynced
    os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


def finalize_sqlite_connection(conn: sqlite3.Connection) -> None:
    """Checkpoint the WAL, optimize, go back to DELETE mode (no -wal/-shm left), close, fsync."""
    path: str | None = None
    try:
        if conn.in_transaction:
            conn.commit()
        for _seq, name, file in conn.execute("PRAGMA database_list"):
            if name == "main" and file:
                path = str(file)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA optimize")
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        if mode is not None and str(mode[0]).lower() != "delete":
            raise sqlite3.OperationalError(
                f"could not leave WAL mode on {path} (journal_mode is {mode[0]}): "
                "another connection still has it open"
            )
    finally:
        conn.close()
    if path:
        fsync_file(Path(path))
