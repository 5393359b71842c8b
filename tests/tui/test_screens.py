"""The list screens on a fixed workspace: history, resume, markup shown literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static
from tui_fixtures import MARKUP_ERROR, TAGS, make_app, rendered, workers_done, write_workspace

from salesmap_tui.engine.history import HistoryProblem
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.resume import ResumeScreen


async def settle(app: Any, pilot: Any) -> None:
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


async def test_history_browser_with_garbage_line(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("h")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        table = screen.query_one("#runs", DataTable)
        # 7 lines: one tag has two lines -> 6 rows in "last state" mode, incl. the warning row
        assert table.row_count == 6
        assert sum(isinstance(i, HistoryProblem) for i in screen.shown) == 1
        tags = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert tags.count(TAGS[1]) == 1
        statuses = {table.get_row_at(i)[0].plain: table.get_row_at(i)[2].plain for i in range(6)}
        assert statuses[TAGS[1]] == "done"  # the last line of the tag wins
        assert "line 4" in tags
        await pilot.press("a")
        assert table.row_count == 7
        await pilot.press("a")
        assert table.row_count == 6


async def test_crm_values_with_markup_render_literally(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("h")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        # newest first: the failed run (with the markup error) is the top row
        screen.show_detail(0)
        await pilot.pause()
        detail = rendered(screen.query_one("#history-detail", Static), width=200)
        assert "[bold]잘못된 요청[/bold]" in detail
        assert "[link=https://evil.example]click[/link]" in detail
        # what the widget holds is a Text whose plain text keeps the brackets
        content = screen.query_one("#history-detail", Static).content
        assert not isinstance(content, str)
        assert MARKUP_ERROR in rendered(screen.query_one("#history-detail", Static), width=400)


async def test_dashboard_log_keeps_markup_literal(tmp_path: Path) -> None:
    from tui_fixtures import recorded_run

    from salesmap_tui.tui.messages import EngineEventMessage

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        for _, event in recorded_run(tmp_path):
            app.post_message(EngineEventMessage(event))
        await pilot.pause()
        log = app.dashboard.query_one("#retry-log", DataTable)
        causes = [log.get_row_at(i)[3] for i in range(log.row_count)]
        assert all(isinstance(c, Text) for c in causes)
        assert "503 [bold]Service Unavailable[/]" in [c.plain for c in causes]


async def test_unusable_checkpoint_cannot_be_chosen(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ResumeScreen)
        assert [c.problem is None for c in screen.checkpoints] == [True, False]
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert app.screen is screen  # nothing started
        assert not app.run_active
        detail = rendered(screen.query_one("#checkpoint-detail", Static))
        assert "cannot resume" in detail


def visible_labels(table: DataTable[Any]) -> list[str]:
    """The column labels that end inside the table's visible width (no scrolling)."""
    width = table.scrollable_content_region.width
    shown, x = [], 0
    for column in table.ordered_columns:
        x += column.get_render_width(table)
        if x <= width:
            shown.append(column.label.plain)
    return shown


async def test_history_key_columns_fit_80_columns(tmp_path: Path) -> None:
    write_workspace(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        table = screen.query_one("#runs", DataTable)
        shown = visible_labels(table)
        assert {"started", "status", "rows", "err", "moved"} <= set(shown), shown
        first = table.get_row_at(0)
        assert first[0].plain == "03-13 02:00"  # the year is in the detail pane
        # the run tag is still there (scrolled to), and the detail names it
        assert TAGS[3] in [cell.plain for cell in first]
        assert TAGS[3] in rendered(screen.query_one("#history-detail", Static))
        # wider again: the wide layout comes back, run tag first
        await pilot.resize_terminal(120, 36)
        await settle(app, pilot)
        assert table.ordered_columns[0].label.plain == "run tag"
        assert table.get_row_at(0)[0].plain == TAGS[3]
