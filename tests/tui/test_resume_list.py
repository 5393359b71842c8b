"""Resume lists what can be resumed first; finished runs hide behind a toggle, dim, never red;
a checkpoint older than the live DB is flagged and asks before it is resumed."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from tui_fixtures import FIXED_EPOCH, TAGS, make_app, tmp_settings, workers_done, write_workspace

from salesmap_tui.engine.checkpoint import CheckpointManager, checkpoint_to_dict, workspace_of
from salesmap_tui.tui.screens.resume import ResumeScreen
from salesmap_tui.tui.widgets.confirm import ConfirmScreen


async def settle(app: Any, pilot: Any) -> None:
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


def add_checkpoints(root: Path) -> None:
    """Beside the workspace's resumable one: a finished run and a stale unfinished one."""
    settings = tmp_settings(root)
    manager = CheckpointManager(settings.checkpoint_dir)
    good = manager.load(TAGS[3])
    finished = replace(good, run_tag="20250311T020000Z-bb02", done=True, phase="done")
    finished = replace(finished, temp_db_path=str(settings.temp_db_path(finished.run_tag)))
    stale_tag = "20250310T020000Z-aa01"
    temp = settings.temp_db_path(stale_tag)
    temp.write_bytes(b"\0" * 1024)
    stale = replace(good, run_tag=stale_tag, temp_db_path=str(temp))
    stale = replace(stale, saved_at="2025-03-14T08:00:00.000Z")  # the live DB is from 08:30
    for cp in (finished, stale):
        path = settings.checkpoint_dir / f"checkpoint_{cp.run_tag}.json"
        path.write_text(json.dumps(checkpoint_to_dict(cp)), encoding="utf-8")
        os.utime(path, (FIXED_EPOCH - 7200, FIXED_EPOCH - 7200))


async def test_resumable_first_finished_behind_a_toggle(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    add_checkpoints(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ResumeScreen)
        shown = [(c.run_tag, c.problem is None) for c in screen.checkpoints]
        assert shown[0] == (TAGS[3], True)  # resumable, newest first
        assert ("20250310T020000Z-aa01", True) in shown  # resumable too, but stale
        assert "20250311T020000Z-bb02" not in [tag for tag, _ in shown]  # finished: hidden
        assert "finished hidden" in str(screen.query_one("#resume-list").border_title)
        await pilot.press("f")
        await pilot.pause()
        tags = [c.run_tag for c in screen.checkpoints]
        assert tags[-1] == "20250311T020000Z-bb02"  # behind the others
        table = screen.query_one("#checkpoints")
        cells = table.get_row_at(len(tags) - 1)  # type: ignore[attr-defined]
        assert cells[5].plain == "went live" and "red" not in str(cells[5].style)
        assert cells[6].plain == "finished"


async def test_a_stale_checkpoint_is_flagged_and_asks_first(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    add_checkpoints(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ResumeScreen)
        index = [c.run_tag for c in screen.checkpoints].index("20250310T020000Z-aa01")
        assert screen.flag(screen.checkpoints[index]) == "older than the live DB"
        assert screen.flag(screen.checkpoints[0]) is None
        table = screen.query_one("#checkpoints")
        table.move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert not app.run_active  # nothing resumed


async def test_another_workspaces_checkpoint_is_not_offered(tmp_path: Path) -> None:
    """An unfinished run of another workspace (another base URL, or another token) is listed
    with the problems, says why, and Enter starts nothing: a resume never mixes workspaces."""
    write_workspace(tmp_path)
    settings = tmp_settings(tmp_path)
    manager = CheckpointManager(settings.checkpoint_dir)
    good = manager.load(TAGS[3])
    for tag, ws in (
        ("20250312T020000Z-cc03", workspace_of("https://other.example.invalid/v2", "t")),
        ("20250312T030000Z-dd04", workspace_of(settings.base_url, "another-token")),
    ):
        temp = settings.temp_db_path(tag)
        temp.write_bytes(b"\0" * 1024)
        cp = replace(good, run_tag=tag, temp_db_path=str(temp), workspace=ws)
        path = settings.checkpoint_dir / f"checkpoint_{tag}.json"
        path.write_text(json.dumps(checkpoint_to_dict(cp)), encoding="utf-8")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ResumeScreen)
        shown = {c.run_tag: c.problem for c in screen.checkpoints}
        assert shown[TAGS[3]] is None  # this workspace's own run: can resume
        assert "another workspace (base URL" in str(shown["20250312T020000Z-cc03"])
        assert "another API token" in str(shown["20250312T030000Z-dd04"])
        order = [c.run_tag for c in screen.checkpoints]
        assert order[0] == TAGS[3]  # the resumable one first
        table = screen.query_one("#checkpoints")
        index = order.index("20250312T020000Z-cc03")
        assert table.get_row_at(index)[-1].plain == "other workspace"  # type: ignore[attr-defined]
        table.move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        assert not app.run_active
        assert app.screen is screen  # no confirmation, no run
