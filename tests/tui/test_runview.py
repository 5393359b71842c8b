"""The run view model on its own: Textual-free, rates only once measurable, truthful ends."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tui_fixtures import finished_result, recorded_run

from salesmap_tui.engine.events import EndpointProgress, RunFinished, RunStarted
from salesmap_tui.tui.format import middle, short_path
from salesmap_tui.tui.runview import NOT_RUN, STOPPED, RateMeter, RunView

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_view_model_modules_import_no_textual() -> None:
    code = (
        "import sys; import salesmap_tui.tui.runview, salesmap_tui.tui.overview, "
        "salesmap_tui.tui.watch; print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_rate_before_there_is_enough_to_measure() -> None:
    meter = RateMeter(window_s=5, min_span_s=2)
    meter.add(at(0), 0)
    assert meter.rate() is None
    meter.add(at(0.5), 490)  # one fast page: "490 rows/s" would be a guess
    assert meter.rate() is None
    meter.add(at(2.5), 500)
    assert meter.rate() == 200.0  # 500 rows over 2.5 s
    # smoothed over the window: old samples fall out, the rate follows the recent pace
    for second in range(3, 12):
        meter.add(at(second), 500 + (second - 2) * 10)
    rate = meter.rate()
    assert rate is not None and 9 <= rate <= 12


def test_rate_falls_while_nothing_arrives() -> None:
    meter = RateMeter(window_s=5, min_span_s=2)
    for second in range(0, 4):
        meter.add(at(second), second * 100)
    before = meter.rate(at(3))
    after = meter.rate(at(9))  # six quiet seconds later (a long backoff)
    assert before is not None and after is not None and after < before


def test_interrupted_run_settles_every_row(tmp_path: Path) -> None:
    view = RunView()
    for index, (_, event) in enumerate(recorded_run(tmp_path)):
        view.apply(event, at(index))
    assert view.endpoints["people"].state == "backoff"
    view.apply(RunFinished(finished_result(tmp_path, "interrupted")), at(100))
    states = {name: ep.state for name, ep in view.endpoints.items()}
    assert states["organization"] == "done"
    assert states["people"] == STOPPED and states["memo"] == STOPPED
    assert not view.active and view.endpoints["people"].backoff_until is None
    assert view.overall_eta_s(at(100)) is None


def test_a_run_that_ends_before_an_endpoint_starts_says_not_run(tmp_path: Path) -> None:
    view = RunView()
    view.apply(
        RunStarted("t", "snapshot", False, "/db", None, "/log", "http://x", ("deal", "lead")),
        at(0),
    )
    view.apply(EndpointProgress("deal", "fetching", 1, 50), at(1))
    view.apply(RunFinished(finished_result(tmp_path, "failed")), at(2))
    assert view.endpoints["deal"].state == STOPPED
    assert view.endpoints["lead"].state == NOT_RUN


def test_overall_progress_needs_the_previous_manifest(tmp_path: Path) -> None:
    view = RunView()
    events = [event for _, event in recorded_run(tmp_path)]
    first = events[0]
    assert isinstance(first, RunStarted)
    view.apply(first, at(0))
    assert view.rows_expected() is not None
    fresh = RunView()
    fresh.apply(
        RunStarted("t", "snapshot", False, "/db", None, "/log", "http://x", ("deal",)), at(0)
    )
    assert fresh.rows_expected() is None and fresh.overall_fraction() is None


def test_paths_keep_their_file_name() -> None:
    path = "logs/checkpoints/snapshot_20261201T101010Z-abcd.events.jsonl"
    cut = short_path(path, 44)
    assert cut.endswith("/snapshot_20261201T101010Z-abcd.events.jsonl")
    assert short_path("a/b.log", 44) == "a/b.log"
    assert middle("세일즈맵_20250314T092000Z-1a2b.db.gz", 20).endswith(".db.gz")
    from rich.cells import cell_len

    assert cell_len(middle("세일즈맵_20250314T092000Z-1a2b.db.gz", 20)) <= 20


def test_retries_after_hands_each_entry_out_once_even_past_the_kept_limit() -> None:
    from salesmap_tui.engine.events import RequestRetried
    from salesmap_tui.tui.runview import MAX_RETRIES_KEPT

    view = RunView()

    def retry(n: int) -> None:
        view.apply(RequestRetried("deal", 1, 4, 503, f"503 #{n}", 1.0, "backoff"), at(n))

    assert view.retries_after(0) == ([], 0)
    for n in range(3):
        retry(n)
    entries, seen = view.retries_after(0)
    assert [e.cause for e in entries] == ["503 #0", "503 #1", "503 #2"] and seen == 3
    assert view.retries_after(seen) == ([], 3)  # synced again: nothing twice
    retry(3)
    entries, seen = view.retries_after(seen)
    assert [e.cause for e in entries] == ["503 #3"] and seen == 4
    # far more than are kept arrive between two syncs: only the kept ones, the count goes on
    for n in range(4, 4 + MAX_RETRIES_KEPT + 10):
        retry(n)
    entries, total = view.retries_after(seen)
    assert len(entries) == MAX_RETRIES_KEPT and total == 4 + MAX_RETRIES_KEPT + 10
    assert entries[-1].cause == f"503 #{total - 1}"


def test_a_watched_run_keeps_its_holder_through_its_events_and_ends_truthfully(
    tmp_path: Path,
) -> None:
    from salesmap_tui.tui.overview import Holder

    view = RunView()
    holder = Holder(4242, None, "salesmap-tui snapshot")
    view.attach(holder)
    assert view.watching
    for index, (_, event) in enumerate(recorded_run(tmp_path)):
        view.apply(event, at(index))  # its RunStarted resets the figures, not whose run it is
    assert view.holder is holder and view.started is not None and view.watching
    view.detach(None)  # the process let go of the lock without a RunFinished
    assert not view.watching and view.watch_ended == "ended"
    assert view.start_error and "without writing its result" in view.start_error
    assert view.endpoints["people"].state == STOPPED
    view.requested()  # our own run now: nobody else's
    assert view.holder is None and view.watch_ended is None and view.active
    assert view.started is not None  # the last run's figures stay until the new RunStarted
