"""Dashboards read the live DB while runs happen (CONTRACT.md "Swap and readers").

Real reader processes — one reconnecting for every query in the default journal mode, one that
switches the DB to WAL mode and keeps its connection (as Datasette does), one holding a plain
connection open (SQLAlchemy's pool) — read the live DB through 10 consecutive snapshot runs, a
`--webform-only` pass and a restore. Each must see no error, every step must leave a DB that
passes `integrity_check` with no journal beside it, and the readers holding a connection open
must see each new snapshot (run_info.run_tag) on their next query.

The failures this reproduces: a rename over a WAL-mode DB left the old `-wal` beside the new file
("database disk image is malformed"), and a reader with an open connection kept reading the
renamed-away file forever.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.events import RunResult
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import make_settings
from .conftest import SECRET
from .killharness import dump_db

READER = r"""
import json, os, sqlite3, sys, time
path, mode, out, stop = sys.argv[1:5]
state = {"errors": [], "seen": [], "queries": 0}

def connect():
    conn = sqlite3.connect(path, timeout=30)
    if mode == "wal":
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
    return conn

def publish():
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, out)

held = connect() if mode in ("wal", "held") else None
publish()
while not os.path.exists(stop):
    try:
        conn = held or connect()
        tag = conn.execute("SELECT run_tag FROM run_info").fetchone()[0]
        deals = conn.execute("SELECT COUNT(*) FROM deal").fetchone()[0]
        forms = conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0]
        conn.execute("SELECT * FROM people ORDER BY id LIMIT 50").fetchall()
        if held is None:
            conn.close()
        state["queries"] += 1
        if not state["seen"] or state["seen"][-1] != [tag, deals, forms]:
            state["seen"].append([tag, deals, forms])
            publish()
    except Exception as exc:
        state["errors"].append(repr(exc))
        publish()
    time.sleep(0.002)
publish()
"""


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=5, scale=60, forms=4, rate_limit=0, token=SECRET)


class Reader:
    def __init__(self, root: Path, db: Path, mode: str) -> None:
        self.mode = mode
        self.out = root / f"reader-{mode}.json"
        self.stop = root / "stop"
        script = root / "reader.py"
        script.write_text(READER)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(db), mode, str(self.out), str(self.stop)]
        )

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.out.read_text()))
        except (OSError, ValueError):
            return {"errors": [], "seen": [], "queries": 0}

    def wait_for(self, tag: str, forms: int | None = None, timeout: float = 20.0) -> None:
        """Until this reader's next query shows snapshot `tag` (and `forms` web-form rows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.state()["seen"]
            if seen and seen[-1][0] == tag and (forms is None or seen[-1][2] == forms):
                return
            assert self.proc.poll() is None, f"reader {self.mode} died"
            time.sleep(0.02)
        raise AssertionError(f"reader {self.mode} never saw {tag}: {self.state()['seen'][-3:]}")


@pytest.fixture
def readers_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "readers"
    root.mkdir()
    yield root
    (root / "stop").write_text("")


def check_step(db: Path, where: str) -> None:
    conn = sqlite3.connect(db, timeout=30)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
    finally:
        conn.close()
    assert not db.with_name(db.name + "-journal").exists(), f"{where}: -journal beside the DB"


def settings_for(root: Path, server: SandboxServer, **changes: Any) -> Settings:
    return make_settings(root, server, token=server.token, **changes)


def run(settings: Settings) -> RunResult:
    return api.run_snapshot(settings)


def live_tag(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT run_tag FROM run_info").fetchone()[0])
    finally:
        conn.close()


def webform_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("modes", [("default", "held"), ("default", "wal", "held")])
def test_readers_see_every_snapshot_and_never_an_error(
    tmp_path: Path, sandbox: SandboxServer, readers_root: Path, modes: tuple[str, ...]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = settings_for(ws, sandbox)
    db = settings.db_path
    first = run(settings)
    assert first.exit_code == 0, first.message
    readers = [Reader(readers_root, db, mode) for mode in modes]
    for reader in readers:
        reader.wait_for(first.run_tag)
    checks = 0
    swaps: list[str | None] = []
    for i in range(10):
        sandbox.set_day(1 + i % 3)
        result = run(settings)
        assert (result.exit_code, result.replaced) == (0, True), result.message
        swaps.append(result.swap)
        check_step(db, f"after run {i + 1}")
        checks += 1
        for reader in readers:
            if reader.mode != "default":
                reader.wait_for(result.run_tag)
    # every run found the DB open in the readers: each went in place
    assert swaps == ["in-place"] * 10, swaps

    sandbox.set_day(20)  # many days of new submissions, for the web-form pass alone
    before = webform_rows(db)
    wf = run(settings.replace(webform_only=True))
    assert wf.exit_code == 0, wf.message
    after = webform_rows(db)
    assert after > before, "the web-form pass added no rows: the step proves nothing"
    check_step(db, "after the web-form pass")
    checks += 1
    # the pass left no WAL frames behind
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
    for reader in readers:
        if reader.mode != "default":
            reader.wait_for(result.run_tag, forms=after)

    backups = api.list_backups(settings)
    assert backups, "no backup to restore"
    verified = api.verify_backup(settings, backups[0].path)
    api.restore_backup(settings, verified)
    restored = live_tag(db)
    assert restored != result.run_tag
    check_step(db, "after the restore")
    checks += 1
    for reader in readers:
        if reader.mode != "default":
            reader.wait_for(restored)
    # and one more run on top of the restored DB
    final = run(settings)
    assert final.exit_code == 0, final.message
    check_step(db, "after the run after the restore")
    checks += 1
    for reader in readers:
        if reader.mode != "default":
            reader.wait_for(final.run_tag)

    (readers_root / "stop").write_text("")
    totals = {}
    for reader in readers:
        reader.proc.wait(30)
        state = reader.state()
        assert state["errors"] == [], f"reader {reader.mode}: {state['errors'][:3]}"
        assert state["queries"] > 0
        totals[reader.mode] = (state["queries"], len(state["seen"]))
    print(f"readers {modes}: 0 errors; queries/snapshots seen {totals}; integrity ok x{checks}")
    assert checks == 13


def test_rename_over_a_wal_db_with_a_reader_is_refused_not_corrupting(
    tmp_path: Path, sandbox: SandboxServer, readers_root: Path
) -> None:
    """`--swap rename` while a reader holds the DB in WAL mode: the old way renamed the new file
    beside the old -wal; now the rename is refused and the run falls back (exit 3)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    settings = settings_for(ws, sandbox, swap="rename")
    db = settings.db_path
    first = run(settings)
    assert first.exit_code == 0
    reader = Reader(readers_root, db, "wal")
    reader.wait_for(first.run_tag)
    before = dump_db(db)
    result = run(settings)
    assert (result.exit_code, result.status, result.replaced) == (3, "fallback", False)
    assert any("WAL" in e for e in result.errors), result.errors
    assert result.fallback_path and Path(result.fallback_path).is_file()
    check_step(db, "after the refused rename")
    assert dump_db(db) == before
    (readers_root / "stop").write_text("")
    reader.proc.wait(30)
    assert reader.state()["errors"] == []


def test_auto_swaps_in_place_when_the_rename_fails(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename refused (as Windows refuses it for an open file): auto copies in place."""
    import functools

    from salesmap_tui.engine import files
    from salesmap_tui.engine.runs import snapshot

    ws = tmp_path / "ws"
    ws.mkdir()
    settings = settings_for(ws, sandbox)
    assert run(settings).exit_code == 0

    def refuse(src: Path, dst: Path) -> None:
        if Path(dst) == settings.db_path:
            raise PermissionError(13, "Access is denied (injected)", str(dst))
        os.replace(src, dst)

    failing = functools.partial(files.replace_file_with_retry, replace=refuse, sleep=lambda s: 0)
    monkeypatch.setattr(snapshot, "replace_file_with_retry", failing)
    inode = settings.db_path.stat().st_ino
    result = run(settings)
    assert (result.exit_code, result.replaced, result.swap) == (0, True, "in-place")
    assert settings.db_path.stat().st_ino == inode  # the same file, new contents
    assert live_tag(settings.db_path) == result.run_tag
    assert not Path(result.temp_db_path or "").exists()
    check_step(settings.db_path, "after the in-place swap")


def make_db(path: Path, tag: str, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("CREATE TABLE run_info (run_tag)")
    conn.execute("INSERT INTO run_info VALUES (?)", (tag,))
    conn.executemany("INSERT INTO t VALUES (?)", [(tag * 100,)] * rows)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
@pytest.mark.parametrize("step", [1, 4])
def test_a_kill_mid_in_place_swap_leaves_the_old_snapshot(
    tmp_path: Path, journal_mode: str, step: int
) -> None:
    """SIGKILL inside the in-place copy's one write transaction (DBs larger than SQLite's page
    cache, so pages of the live file were already overwritten): SQLite's journal gives the old
    snapshot back, and `recover_db` lets SQLite roll it back rather than deleting it."""
    from salesmap_tui.engine.crashpoints import KILL_ENV
    from salesmap_tui.engine.files import recover_db

    live, new = tmp_path / "live.db", tmp_path / "new.db"
    make_db(live, "old", 40_000)
    make_db(new, "new", 60_000)
    if journal_mode == "wal":
        conn = sqlite3.connect(live)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    before = dump_table(live)
    code = (
        "import sys; from pathlib import Path\n"
        "from salesmap_tui.engine.files import copy_in_place\n"
        "copy_in_place(Path(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    env = {**os.environ, KILL_ENV: f"inplace_step:{step}"}
    proc = subprocess.run([sys.executable, "-c", code, str(new), str(live)], env=env, check=False)
    assert proc.returncode == -9, "the copy was not killed midway: the test proves nothing"
    if journal_mode == "delete":
        assert live.with_name("live.db-journal").exists()
        with pytest.raises(sqlite3.OperationalError):
            # what a read-only dashboard sees until a read-write open rolls the journal back
            dump_table(live)
    assert recover_db(live) == []
    assert dump_table(live) == before
    conn = sqlite3.connect(live)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def dump_table(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT (SELECT run_tag FROM run_info), COUNT(*) FROM t").fetchall()
    finally:
        conn.close()
