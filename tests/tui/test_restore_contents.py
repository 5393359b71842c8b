"""Restore shows, for each backup, the run tag and date of the data it holds, and its rows."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from test_screens import visible_labels
from textual.widgets import DataTable, Static
from tui_fixtures import TAGS, make_app, rendered, workers_done, write_workspace

from salesmap_tui.sandbox import SandboxServer
from salesmap_tui.tui.overview import backup_contents
from salesmap_tui.tui.screens.restore import RestoreScreen


async def settle(app: Any, pilot: Any) -> None:
    for _ in range(4):
        await workers_done(app)
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
        table = screen.query_one("#backups", DataTable)
        row = table.get_row_at(0)
        cells = {c.label.plain: row[i].plain for i, c in enumerate(table.ordered_columns)}
        assert cells["data of run"] == tags[0]
        first, rows = next(iter(found.tables.items()))
        assert cells["rows"].startswith(f"{first} {rows:,}")


def test_a_broken_backup_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "x_20250101T000000Z-dead.db.gz"
    bad.write_bytes(gzip.compress(b"not sqlite at all" * 100))
    found = backup_contents(bad)
    assert found.error is not None and found.run_tag is None
    truncated = tmp_path / "y.db.gz"
    truncated.write_bytes(gzip.compress(b"x" * 10_000)[:50])
    assert backup_contents(truncated).error is not None
    assert not list(tmp_path.glob("salesmap-backup-peek-*"))


async def test_what_a_backup_holds_is_visible_at_80_columns(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RestoreScreen)
        table = screen.query_one("#backups", DataTable)
        shown = visible_labels(table)
        assert {"data of run", "data as of", "rows"} <= set(shown), shown
        # the second-newest backup holds the data of the run before the one that made it
        await pilot.press("down")
        await pilot.pause()
        row = table.get_row_at(1)
        cells = {c.label.plain: row[i].plain for i, c in enumerate(table.ordered_columns)}
        assert cells["data of run"] == TAGS[0] and cells["data as of"] == "03-10 02:05"
        assert cells["rows"].startswith("organization 500")
        # the line under the list says it in full, with the file's name
        detail = rendered(screen.query_one("#backup-detail", Static), width=200)
        assert screen.backups[1].path.name in detail and TAGS[0] in detail
        assert "lead 250" in detail
