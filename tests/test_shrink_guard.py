"""The shrink guard (CONTRACT.md "Shrink guard") and letting a held-back snapshot in.

The failure it stops: a server that answered 20 deals where the live DB had 60 (a truncated
list, a filtered workspace) was swapped in, exit 0, no warning.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.errors import UsageError
from salesmap_tui.engine.shrink import Shrink, shrunk_tables
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import make_settings


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag_of(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT run_tag FROM run_info").fetchone()[0])
    finally:
        conn.close()


def records(settings: Settings) -> list[dict[str, Any]]:
    text = settings.history_path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_rule() -> None:
    before = {"organization": 1000, "people": 100, "deal": 15, "lead": 9, "memo": 40}
    after = {"organization": 499, "people": 50, "deal": 0, "lead": 0, "memo": 40}
    # more than half and at least 10 rows: organization and deal; people lost exactly half;
    # lead lost all 9 (fewer than 10)
    assert shrunk_tables(before, after, 0.5) == [
        Shrink("organization", 1000, 499),
        Shrink("deal", 15, 0),
    ]
    assert shrunk_tables(before, after, 1.0) == []
    assert [s.table for s in shrunk_tables(before, after, 0.0)] == [
        "organization",
        "people",
        "deal",
    ]
    assert Shrink("deal", 200, 0).describe() == "deal 200 → 0 rows (-100%)"
    # a table the new snapshot lacks counts as emptied; user and team are not list tables
    assert shrunk_tables({"memo": 30, "user": 50}, {"user": 0}, 0.5) == [Shrink("memo", 30, 0)]


@pytest.fixture
def shrunk(tmp_path: Path) -> Any:
    """A live DB from a 60-record workspace, then the same workspace answering 20 records."""
    with SandboxServer(SandboxConfig(seed=4, scale=60, forms=2, rate_limit=0)) as big:
        first = api.run_snapshot(make_settings(tmp_path, big))
        assert first.exit_code == 0
    server = SandboxServer(SandboxConfig(seed=4, scale=20, forms=2, rate_limit=0))
    with server:
        yield make_settings(tmp_path, server), first


def test_a_shrunk_snapshot_is_held_back_with_exit_5(shrunk: Any) -> None:
    settings, _ = shrunk
    live = settings.db_path
    before = sha(live)
    backups = sorted(p.name for p in settings.backup_dir.glob("*"))
    result = api.run_snapshot(settings)
    assert (result.exit_code, result.status, result.replaced) == (5, "fallback", False)
    held = live.with_name(f"{live.stem}_{result.run_tag}.db")
    assert result.fallback_path == str(held) and held.is_file()
    assert tag_of(held) == result.run_tag
    assert sha(live) == before  # the live DB untouched
    # no backup: the live DB was not replaced
    assert sorted(p.name for p in settings.backup_dir.glob("*")) == backups
    assert not Path(result.temp_db_path or "").exists()
    last = records(settings)[-1]
    assert (last["status"], last["exit_code"], last["replaced"]) == ("fallback", 5, False)
    assert "organization 60 → 20 rows (-67%)" in last["reason"], last["reason"]
    assert "deal 60 → 20 rows" in last["reason"]
    assert last["fallback_path"] == str(held) and last["final_db_path"] == str(live)
    # the checkpoint is finished: --resume does not pick the run up again
    cp = json.loads((settings.checkpoint_dir / f"checkpoint_{result.run_tag}.json").read_text())
    assert cp["done"] is True
    # what the TUI offers to let in
    offered = api.held_back_snapshots(settings)
    assert [r["run_tag"] for r in offered] == [result.run_tag]
    assert offered[0]["fallback_path"] == str(held)


def test_max_shrink_1_turns_the_guard_off(shrunk: Any) -> None:
    settings, _ = shrunk
    result = api.run_snapshot(settings.replace(max_shrink=1.0))
    assert (result.exit_code, result.replaced) == (0, True), result.message
    assert tag_of(settings.db_path) == result.run_tag


def test_a_held_back_snapshot_can_be_let_in(shrunk: Any) -> None:
    settings, first = shrunk
    held = api.run_snapshot(settings)
    assert held.exit_code == 5
    path = Path(held.fallback_path or "")
    promoted = api.promote_snapshot(settings, path)
    assert (promoted.status, promoted.exit_code, promoted.replaced) == ("done", 0, True)
    assert promoted.run_tag == held.run_tag
    assert tag_of(settings.db_path) == held.run_tag
    assert not path.exists()
    # the replaced live DB is backed up under the run tag of the data it held
    backup = settings.backup_dir / f"{settings.db_path.stem}_{first.run_tag}.db.gz"
    assert promoted.backup_path == str(backup) and backup.is_file()
    last = records(settings)[-1]
    assert (last["run_tag"], last["status"], last["exit_code"]) == (held.run_tag, "done", 0)
    assert last["replaced"] is True and last["fallback_path"] is None
    assert api.held_back_snapshots(settings) == []
    with pytest.raises(UsageError):
        api.promote_snapshot(settings, path)  # gone now
