"""The README's first command, `salesmap-tui --demo`: sandbox in-process, first run at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.demo import demo_environment


async def test_demo_runs_a_first_snapshot_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SALESMAP_TOKEN", raising=False)
    with demo_environment(Settings()) as settings:
        app = SalesmapApp(settings, demo=True)
        async with app.run_test(size=(120, 36)) as pilot:
            dash: Any = app.dashboard
            for _ in range(3000):  # bounded: the demo run takes seconds, not minutes
                if dash.result is not None:
                    break
                await pilot.pause(0.02)
            assert dash.result is not None, "the demo's first run never finished"
            assert dash.result.status == "done", dash.result.message
    db = tmp_path / "salesmap-demo" / "salesmap_latest.db"
    conn = sqlite3.connect(db)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        people = conn.execute('SELECT COUNT(*) FROM "people"').fetchone()[0]
    finally:
        conn.close()
    assert {"organization", "people", "deal", "lead", "memo", "user", "team"} <= names
    assert people > 0
    assert (tmp_path / "salesmap-demo" / "logs" / "run_history.jsonl").is_file()
