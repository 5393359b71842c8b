"""Quit while a run is active, the command palette, themes, the backoff countdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from textual.command import CommandPalette
from textual.widgets import DataTable, OptionList, Static
from tui_fixtures import FakeClock, make_app, recorded_run, rendered

from salesmap_tui.engine.events import EndpointProgress, RequestRetried
from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.messages import EngineEventMessage
from salesmap_tui.tui.screens.dashboard import DashboardScreen
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.widgets.confirm import ConfirmScreen
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow


async def wait_for(pilot: Any, condition: Any, tries: int = 500) -> None:
    """Process messages until `condition()` holds (bounded; no timed assertion)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition never became true")


def slow_sandbox() -> SandboxServer:
    # slow enough that the run is still going when the user answers
    return SandboxServer(SandboxConfig(seed=6, scale=2000, forms=2, latency_ms=30, rate_limit=0))


def sandbox_app(root: Path, server: SandboxServer) -> SalesmapApp:
    return make_app(
        root,
        base_url=server.base_url,
        token=server.token,
        checkpoint_interval=1,
        concurrency=1,
    )


async def test_quit_during_run_no_keeps_running(tmp_path: Path) -> None:
    with slow_sandbox() as server:
        app = sandbox_app(tmp_path, server)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            await wait_for(pilot, lambda: app.dashboard.started is not None)
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
            assert app.return_code is None  # still running
            assert app.run_active, app.dashboard.result
            assert app.dashboard.result is None
            assert not app.dashboard.cancelling
            # the run goes on: more pages arrive after the answer
            pages = sum(row.pages for row in app.dashboard.query(EndpointRow))
            await wait_for(
                pilot, lambda: sum(row.pages for row in app.dashboard.query(EndpointRow)) > pages
            )
            assert app.run_active
            # end it the ordinary way so the test stays short
            await pilot.press("c", "y")
            await wait_for(pilot, lambda: app.dashboard.result is not None, tries=3000)
            assert app.dashboard.result is not None
            assert app.dashboard.result.status == "interrupted"


async def test_quit_during_run_yes_saves_checkpoint_and_exits(tmp_path: Path) -> None:
    with slow_sandbox() as server:
        app = sandbox_app(tmp_path, server)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("r")
            await wait_for(pilot, lambda: app.dashboard.checkpoint is not None)
            tag = app.dashboard.run_tag
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            for _ in range(3000):
                if app.return_code is not None:
                    break
                await asyncio.sleep(0.01)
        assert app.return_code == 0
        assert tag is not None
        history = [
            json.loads(line)
            for line in (tmp_path / "logs" / "run_history.jsonl").read_text("utf-8").splitlines()
        ]
        assert [r["status"] for r in history if r.get("run_tag") == tag][-1] == "interrupted"
        checkpoint = tmp_path / "logs" / "checkpoints" / f"checkpoint_{tag}.json"
        assert checkpoint.is_file()
        assert json.loads(checkpoint.read_text("utf-8"))["run_tag"] == tag
        assert not (tmp_path / "salesmap_latest.db").exists()  # the live DB was never written


async def test_quit_without_run_exits_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def palette_prompts(app: SalesmapApp) -> list[str]:
    options = app.screen.query_one(OptionList)
    # a prompt is "title\nhelp"
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_command_palette_lists_and_runs_actions(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        # with an empty query the palette lists every system command
        await wait_for(pilot, lambda: app.screen.query_one(OptionList).option_count > 0)
        prompts = " | ".join(palette_prompts(app))
        for title in (
            "Start snapshot run",
            "Cancel run",
            "Resume a checkpoint",
            "Restore a backup",
            "Web forms",
            "Run history",
            "Help",
        ):
            assert title in prompts, prompts
        await pilot.press(*"run history")
        await wait_for(pilot, lambda: "Run history" in " ".join(palette_prompts(app)[:1]))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        assert app.current_mode == "history"


async def test_theme_switch_rerenders(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        for _, event in recorded_run(tmp_path):
            app.post_message(EngineEventMessage(event))
        await pilot.pause()
        before = app.export_screenshot()
        # through the palette: Theme → type a name → Enter
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"theme")
        await wait_for(pilot, lambda: " ".join(palette_prompts(app)[:1]).startswith("Theme\n"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"nord")
        await wait_for(pilot, lambda: "nord" in " ".join(palette_prompts(app)[:1]))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "nord")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.pause()
        after = app.export_screenshot()
        assert after != before  # new colours, same content
        assert "backing off" in rendered(
            app.dashboard.query(EndpointRow)[1].query_one(".ep-state", Static)
        )
        # and directly, for every built-in theme
        for name in ("textual-light", "gruvbox", "textual-dark"):
            app.theme = name
            await pilot.pause()
            assert "20250314T092000Z-1a2b" in app.export_screenshot()


async def test_backoff_counts_down_by_the_app_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        app.post_message(EngineEventMessage(EndpointProgress("deal", "fetching", 1, 50)))
        app.post_message(
            EngineEventMessage(
                RequestRetried(
                    "deal", 1, 4, 429, "429 Too Many Requests", 5.0, "Retry-After header"
                )
            )
        )
        await pilot.pause()
        row = app.dashboard.row("deal")
        assert row is not None
        state = row.query_one(".ep-state", Static)
        assert "backing off 5.0 s" in rendered(state)
        assert row._countdown is not None  # the 1 s timer runs while backing off
        clock.advance(2)
        row._tick()  # what the interval timer calls each second
        await pilot.pause()
        assert "backing off 3.0 s" in rendered(state)
        clock.advance(3.5)
        row._tick()
        await pilot.pause()
        assert "retrying" in rendered(state)
        assert row._countdown is None  # stopped once the wait is over
        app.post_message(EngineEventMessage(EndpointProgress("deal", "fetching", 2, 100)))
        await pilot.pause()
        assert rendered(state).strip() == "fetching"


async def test_short_waits_show_two_decimals(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        for wait_s in (0.4, 0.004):
            app.post_message(
                EngineEventMessage(
                    RequestRetried("memo", 1, 4, 429, "429 Too Many Requests", wait_s, "body hint")
                )
            )
        await pilot.pause()
        log = app.dashboard.query_one("#retry-log")
        waits = [log.get_row_at(i)[4].plain for i in range(2)]  # type: ignore[attr-defined]
        assert waits == ["0.40 s hint", "<0.01 s hint"]
        row = app.dashboard.row("memo")
        assert row is not None
        # a wait too short to read is not counted down: the request is on its way again
        assert rendered(row.query_one(".ep-state", Static)).strip() == "retrying"


async def test_dashboard_draws_progress_at_most_once_per_interval(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.ui_refresh_s = 30.0  # far longer than the test: only the leading draw may happen
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        row = app.dashboard.row("deal")
        assert row is not None
        detail = row.query_one(".ep-detail", Static)
        app.post_message(EngineEventMessage(EndpointProgress("deal", "fetching", 1, 50)))
        await pilot.pause()
        assert "1 page · 50 rows" in rendered(detail)  # the first event draws at once
        for page in range(2, 6):
            app.post_message(
                EngineEventMessage(EndpointProgress("deal", "fetching", page, 50 * page))
            )
            await pilot.pause()
        assert row.pages == 5  # the model is current...
        assert "1 page · 50 rows" in rendered(detail)  # ...the screen waits for the interval
        app.dashboard.flush()  # what the interval timer calls
        await pilot.pause()
        assert "5 pages · 250 rows" in rendered(detail)


async def test_retry_log_follows_its_end_until_the_user_moves_up(tmp_path: Path) -> None:
    """New entries keep the newest in view and highlighted; an older one the user moved to stays."""

    def entry(endpoint: str, n: int) -> EngineEventMessage:
        return EngineEventMessage(RequestRetried(endpoint, n, 20, 503, f"503 n{n}", 1.0, "x"))

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for n in range(12):
            app.post_message(entry("deal", n + 1))
        await pilot.pause()
        await pilot.pause()
        log = app.dashboard.query_one("#retry-log", DataTable)
        detail = app.dashboard.query_one("#retry-detail", Static)
        assert log.max_scroll_y > 0  # more entries than lines: the test means something
        assert log.scroll_y == log.max_scroll_y and log.cursor_row == 11
        assert "n12" in rendered(detail, width=200)  # the line below is the newest, in view
        log.focus()
        await pilot.press(*["up"] * 10)  # to an older entry, out of the end's view
        await pilot.pause()
        assert log.cursor_row == 1 and log.scroll_y <= 1
        log.refresh(layout=True)  # a layout (a column change, a resize) must not pull it back
        await pilot.pause()
        await pilot.pause()
        assert log.cursor_row == 1 and log.scroll_y <= 1
        app.post_message(entry("memo", 13))  # nor a new entry: the user is reading
        await pilot.pause()
        await pilot.pause()
        assert log.cursor_row == 1 and log.scroll_y <= 1
        assert "n2" in rendered(detail, width=200)
        await pilot.press(*["down"] * 11)  # back at the newest: the log follows again
        app.post_message(entry("memo", 14))
        await pilot.pause()
        await pilot.pause()
        assert log.cursor_row == 13 and log.scroll_y == log.max_scroll_y
        assert "n14" in rendered(detail, width=200)


async def test_retry_log_shows_a_cut_cause_whole(tmp_path: Path) -> None:
    cause = "503 일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        for endpoint in ("deal", "memo"):
            app.post_message(
                EngineEventMessage(RequestRetried(endpoint, 1, 4, 503, cause, 1.0, "backoff"))
            )
        await pilot.pause()
        detail = app.dashboard.query_one("#retry-detail", Static)
        # the newest entry is highlighted; the column cuts the cause, the line below does not
        assert detail.display
        assert cause in rendered(detail, width=200)
        assert "memo" in rendered(detail, width=200)
        log = app.dashboard.query_one("#retry-log")
        log.focus()
        await pilot.press("up")
        assert "deal" in rendered(detail, width=200)
