"""SVG snapshots of every screen at 120x36, baselines in the top-level snapshots/ folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from tui_fixtures import finished, make_app, recorded_run

from salesmap_tui.tui.messages import EngineEventMessage

SIZE = (120, 36)


def test_dashboard_mid_run(snap_compare: Any, tmp_path: Path) -> None:
    """The dashboard in the middle of a run: bars, a backoff, retries, a checkpoint."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in recorded_run(tmp_path):
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_dashboard_finished(snap_compare: Any, tmp_path: Path) -> None:
    """The dashboard's summary after the run finished."""
    app = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        for advance, event in [*recorded_run(tmp_path), (5.0, finished(tmp_path))]:
            app.now.advance(advance)
            app.post_message(EngineEventMessage(event))
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
