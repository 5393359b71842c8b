"""The dashboard, driven by recorded engine events (no network, no engine needed)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, ProgressBar, Static
from tui_fixtures import FakeClock, finished, make_app, recorded_run, rendered

from salesmap_tui.engine.events import EndpointProgress, RequestStats
from salesmap_tui.tui.messages import EngineEventMessage
from salesmap_tui.tui.screens.dashboard import DashboardScreen
from salesmap_tui.tui.widgets.endpoint_row import EndpointRow


async def feed(app, pilot, events) -> None:  # type: ignore[no-untyped-def]
    for advance, event in events:
        app.now.advance(advance)
        app.post_message(EngineEventMessage(event))
        await pilot.pause()


async def test_recorded_run_fills_every_panel(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeClock())
    async with app.run_test(size=(120, 36)) as pilot:
        await feed(app, pilot, recorded_run(tmp_path))
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        rows = {row.endpoint: row for row in screen.query(EndpointRow)}
        assert rows["organization"].state == "done"
        assert rows["people"].state == "backoff"
        people_state = rows["people"].query_one(".ep-state", Static)
        assert "backing off 8.3 s" in rendered(people_state)
        # expected rows known -> a determinate bar; unknown (memo) -> indeterminate
        assert rows["deal"].query_one(ProgressBar).total == 900
        assert rows["memo"].query_one(ProgressBar).total is None
        assert "8.1 req/s · 81/100 per 10 s" in rendered(screen.query_one("#rate-bar", Static))
        log = screen.query_one("#retry-log", DataTable)
        assert log.row_count == 4  # three retries and one warning
        causes = [log.get_row_at(i)[3] for i in range(3)]
        assert Text("503 [bold]Service Unavailable[/]").plain in [c.plain for c in causes]
        checkpoint = rendered(screen.query_one("#checkpoint-panel", Static))
        assert "checkpoint_20250314T092000Z-1a2b.json" in checkpoint
        assert "c-500" in checkpoint


async def test_progress_messages_for_one_endpoint_coalesce() -> None:
    first = EngineEventMessage(EndpointProgress("deal", "fetching", 1, 50))
    newer = EngineEventMessage(EndpointProgress("deal", "fetching", 2, 100))
    other = EngineEventMessage(EndpointProgress("lead", "fetching", 1, 10))
    backoff = EngineEventMessage(EndpointProgress("deal", "backoff", 2, 100, wait_s=3))
    assert first.can_replace(newer)
    assert not first.can_replace(other)
    assert not first.can_replace(backoff)  # a state change is never dropped
    stats = EngineEventMessage(RequestStats(1, 1, 10.0, 100, 1.0))
    assert stats.can_replace(EngineEventMessage(RequestStats(2, 2, 10.0, 100, 2.0)))


async def test_summary_after_run_finished(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await feed(app, pilot, recorded_run(tmp_path))
        await feed(app, pilot, [(5, finished(tmp_path))])
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        summary = rendered(screen.query_one("#summary-panel", Static))
        assert "done" in summary
        assert "organization 600" in summary
        # the folders give way first; the file name stays whole
        assert "salesmap_latest_20250314T092000Z-1a2b.db.gz" in summary
        assert not app.run_active
