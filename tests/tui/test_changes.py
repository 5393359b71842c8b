"""History answers "did something change?": series per table in time order, sharp moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static
from tui_fixtures import make_app, rendered, workers_done

from salesmap_tui.engine.history import append_history, make_record
from salesmap_tui.tui.changes import sharp_moves, snapshot_runs, sparkline, table_series
from salesmap_tui.tui.screens.history import HistoryScreen


def record(tag: str, started: str, deal: int, webforms: int = 10) -> dict[str, Any]:
    return make_record(
        run_tag=tag,
        kind="snapshot",
        status="done",
        started_at=started,
        duration_s=60.0,
        tables={
            "deal": {"rows": deal, "cols": 3},
            "people": {"rows": 500, "cols": 3},
            "webform_history": {"rows": webforms, "cols": 12},
        },
    )


RUNS = [
    # written out of order: the view sorts by start time
    record("20250312T020000Z-cc03", "2025-03-12T02:00:00.000Z", 1000, 12),
    record("20250310T020000Z-aa01", "2025-03-10T02:00:00.000Z", 990, 10),
    record("20250313T020000Z-dd04", "2025-03-13T02:00:00.000Z", 400, 14),  # deal fell by 60%
    record("20250311T020000Z-bb02", "2025-03-11T02:00:00.000Z", 995, 11),
]


def test_series_are_in_time_order_and_include_webform_history() -> None:
    runs = snapshot_runs(RUNS)
    assert [r["run_tag"][:8] for r in runs] == ["20250310", "20250311", "20250312", "20250313"]
    series = {s.name: s for s in table_series(runs)}
    assert list(series) == ["people", "deal", "webform_history"]
    assert series["deal"].rows == [990, 995, 1000, 400]
    assert series["deal"].sharp and series["deal"].last_change == -0.6
    assert not series["people"].sharp
    assert not series["webform_history"].sharp  # +27% but only 3 rows: not news
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([None, 5]) == " ▄"


def test_sharp_moves_name_the_table() -> None:
    runs = snapshot_runs(RUNS)
    assert sharp_moves(runs[2], runs[3]) == [("deal", -0.6)]
    assert sharp_moves(runs[0], runs[1]) == []
    assert sharp_moves(None, runs[0]) == []


async def test_history_screen_flags_the_run_that_moved(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    history = app.settings.history_path
    history.parent.mkdir(parents=True)
    for rec in RUNS:
        append_history(history, rec)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("h")
        for _ in range(3):
            await workers_done(app)
            await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        # newest first by start time, whatever the file order
        tags = [item.record["run_tag"] for item in screen.shown]  # type: ignore[union-attr]
        assert tags == sorted(tags, reverse=True)
        table = screen.query_one("#runs")
        moved = [table.get_row_at(i)[7].plain for i in range(4)]  # type: ignore[attr-defined]
        assert moved[0] == "deal -60%" and moved[1:] == ["", "", ""]
        chart = rendered(screen.query_one("#history-chart", Static), width=60)
        assert "webform_history" in chart and "-60% ⚠" in chart
        assert "03-10 02:00 … 03-13 02:00" in chart
        assert "990–1,000" not in chart and "400–1,000" in chart  # whole numbers, real range
