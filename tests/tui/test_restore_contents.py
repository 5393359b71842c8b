"""Restore shows, for each backup, the run tag and date of the data it holds, and its rows."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from tui_fixtures import make_app

from salesmap_tui.sandbox import SandboxServer
from salesmap_tui.tui.overview import backup_contents
from salesmap_tui.tui.screens.restore import RestoreScreen


async def settle(app: Any, pilot: Any) -> None:
    for _ in range(4):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_backups_show_the_run_and_rows_they_hold(
    tmp_path: Path, tui_sandbox: SandboxServer
) -> None:
    app = make_app(tmp_path, base_url=tui_sandbox.base_url, token=tui_sandbox.token)
    async with app.run_test(size=(120, 36)) as pilot:
        tags = []
        for _ in range(2):
            await pilot.press("r")
            await settle(app, pilot)
            assert app.dashboard.result is not None
            tags.append(app.dashboard.result.run_tag)
        await pilot.press("b")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RestoreScreen)
        # the second run backed up the first run's snapshot: that is the data the backup holds
        (backup,) = screen.backups
        found = screen.contents[(backup.path, backup.mtime)]
        assert found.error is None and found.run_tag == tags[0]
        assert found.finished_at and found.tables["deal"] > 0
        row = screen.query_one("#backups").get_row_at(0)  # type: ignore[attr-defined]
        assert row[3].plain == tags[0]
        first, rows = next(iter(found.tables.items()))
        assert row[5].plain.startswith(f"{first} {rows:,}")


def test_a_broken_backup_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "x_20250101T000000Z-dead.db.gz"
    bad.write_bytes(gzip.compress(b"not sqlite at all" * 100))
    found = backup_contents(bad)
    assert found.error is not None and found.run_tag is None
    truncated = tmp_path / "y.db.gz"
    truncated.write_bytes(gzip.compress(b"x" * 10_000)[:50])
    assert backup_contents(truncated).error is not None
    assert not list(tmp_path.glob("salesmap-backup-peek-*"))
