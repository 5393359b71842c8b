"""Held-back snapshots (CONTRACT "Shrink guard"): the dashboard shows which tables shrank by how
much, and lets the snapshot in or discards it, each after a confirmation. Real engine, real
sandbox: the workspace answers 60 records, then the same workspace answers 20.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static
from tui_fixtures import make_app, rendered, workers_done

from salesmap_tui.engine import api
from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.widgets.confirm import ConfirmScreen


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag_of(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT run_tag FROM run_info").fetchone()[0])
    finally:
        conn.close()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def settle(app: SalesmapApp, pilot: Any) -> None:
    for _ in range(4):
        await workers_done(app)
        await pilot.pause()


def summary(app: SalesmapApp) -> str:
    return rendered(app.dashboard.query_one("#summary-panel", Static), width=200)


def footer_keys(app: SalesmapApp) -> set[str]:
    return {b.binding.key for b in app.screen.active_bindings.values() if b.enabled}


@pytest.fixture
def shrinking(tmp_path: Path) -> Iterator[tuple[Path, SandboxServer, str]]:
    """A live DB from a 60-record workspace; then the server answers 20 records."""
    with SandboxServer(SandboxConfig(seed=4, scale=60, forms=2, rate_limit=0)) as big:
        app = make_app(tmp_path, base_url=big.base_url, token=big.token)
        first = api.run_snapshot(app.settings)
        assert first.exit_code == 0, first.message
    with SandboxServer(SandboxConfig(seed=4, scale=20, forms=2, rate_limit=0)) as small:
        yield tmp_path, small, first.run_tag


async def test_a_run_held_back_shows_what_shrank_and_lets_it_in(
    shrinking: tuple[Path, SandboxServer, str],
) -> None:
    root, server, first_tag = shrinking
    live = root / "salesmap_latest.db"
    app = make_app(root, base_url=server.base_url, token=server.token)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert "held back" not in summary(app)
        assert "i" not in footer_keys(app)  # nothing to decide: the keys are not offered
        await pilot.press("r")
        await settle(app, pilot)
        result = app.dashboard.result
        assert result is not None and result.exit_code == 5, result
        held = live.with_name(f"{live.stem}_{result.run_tag}.db")
        assert held.is_file() and tag_of(live) == first_tag
        text = summary(app)
        assert "held back by the shrink guard" in text
        assert "organization 60 → 20 rows (-67%)" in text
        assert "deal 60 → 20 rows (-67%)" in text
        assert held.name in text
        assert {"i", "D"} <= footer_keys(app)

        # "let it in" asks first; No leaves everything as it was
        await pilot.press("i")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        body = rendered(confirm.query_one("#dialog-body", Static), width=200)
        assert "organization 60 → 20 rows (-67%)" in body and "backed up first" in body
        await pilot.press("n")
        await settle(app, pilot)
        assert held.is_file() and tag_of(live) == first_tag

        await pilot.press("i")
        await pilot.press("y")
        await settle(app, pilot)
        assert tag_of(live) == result.run_tag  # the held-back snapshot is the live DB now
        assert not held.exists()
        backup = root / "backups" / f"{live.stem}_{first_tag}.db.gz"
        assert backup.is_file()  # the replaced live DB was backed up first
        after = app.dashboard.result
        assert after is not None and (after.status, after.exit_code) == ("done", 0)
        assert after.replaced
        text = summary(app)
        assert "held back by the shrink guard" not in text and "let in" in text
        assert "i" not in footer_keys(app)
        last = json.loads((root / "logs" / "run_history.jsonl").read_text().splitlines()[-1])
        assert (last["run_tag"], last["status"], last["exit_code"]) == (result.run_tag, "done", 0)


async def test_a_held_back_snapshot_found_on_open_can_be_discarded(
    shrinking: tuple[Path, SandboxServer, str],
) -> None:
    root, server, first_tag = shrinking
    live = root / "salesmap_latest.db"
    app = make_app(root, base_url=server.base_url, token=server.token)
    # a headless run (cron) held it back (the engine runs its own event loop: a thread)
    held_run = await asyncio.to_thread(api.run_snapshot, app.settings)
    assert held_run.exit_code == 5
    held = Path(held_run.fallback_path or "")
    before = sha(live)
    history = (root / "logs" / "run_history.jsonl").read_text()
    files = tree(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        text = summary(app)
        assert "held back by the shrink guard" in text  # on open, at 80 columns too
        assert "organization 60 → 20 rows (-67%)" in text
        await pilot.press("D")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        body = rendered(confirm.query_one("#dialog-body", Static), width=200)
        assert held.name in body and "nothing else" in body
        await pilot.press("n")
        await settle(app, pilot)
        assert held.is_file()
        await pilot.press("D", "y")
        await settle(app, pilot)
        assert not held.exists()
        # only that file: the live DB, the backups and the history are as they were
        assert sha(live) == before and tag_of(live) == first_tag
        assert tree(root) == files - {held.name}
        assert (root / "logs" / "run_history.jsonl").read_text() == history
        assert "held back by the shrink guard" not in summary(app)
        assert "D" not in footer_keys(app)


async def test_discard_refuses_a_file_no_longer_held_back(
    shrinking: tuple[Path, SandboxServer, str],
) -> None:
    """Another window let it in meanwhile: discard deletes nothing (the live DB least of all)."""
    root, server, _ = shrinking
    app = make_app(root, base_url=server.base_url, token=server.token)
    held_run = await asyncio.to_thread(api.run_snapshot, app.settings)
    held = Path(held_run.fallback_path or "")
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert app.dashboard.held_back is not None
        api.promote_snapshot(app.settings, held)  # the other window
        live_sha = sha(root / "salesmap_latest.db")
        await pilot.press("D", "y")
        await settle(app, pilot)
        assert sha(root / "salesmap_latest.db") == live_sha
        assert app.dashboard.held_back is None  # the list was read again
