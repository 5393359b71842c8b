"""The events file: every run's typed events as JSON lines, read back into the same events."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from salesmap_tui.engine.events import (
    EVENT_TYPES,
    BackupMade,
    CheckpointSaved,
    EndpointProgress,
    EngineWarning,
    EventsFile,
    EventsReader,
    PhaseChanged,
    RequestRetried,
    RequestStats,
    RunFinished,
    RunResult,
    RunStarted,
    WebformProgress,
    WebformResult,
    WorkspacePaused,
    event_from_json,
    event_to_json,
    events_path_for,
)
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import make_settings, run

RESULT = RunResult(
    run_tag="20261201T101010Z-abcd",
    kind="snapshot",
    status="done",
    exit_code=0,
    started_at="2026-12-01T10:10:10.000Z",
    finished_at="2026-12-01T10:11:10.000Z",
    duration_s=60.0,
    db_path="/x/live.db",
    final_db_path="/x/live.db",
    temp_db_path="/x/live.db.tmp",
    backup_path=None,
    log_path="/x/logs/snapshot_20261201T101010Z-abcd.log",
    replaced=True,
    fallback_path=None,
    tables={"deal": {"rows": 3, "cols": 4}},
    errors=("deal: 503 Service Unavailable",),
    webform=WebformResult("done", forms=2, new_rows=5),
    message="snapshot done: 고객 3명",
)
SAMPLES = [
    RunStarted(
        "t", "snapshot", True, "/db", "/db.tmp", "/log", "http://x", ("deal", "lead"), {"deal": 3}
    ),
    PhaseChanged("crawl", "7 endpoints"),
    EndpointProgress("deal", "backoff", 2, 100, 300, "c2", 1.5),
    RequestRetried("deal", 1, 5, 429, "429 요청이 너무 많습니다", 2.0, "body hint"),
    RequestStats(10, 5, 10.0, 100, 3.2),
    RequestStats(40, 20, 10.0, 100, 5.0, in_flight=3, max_in_flight=4, budget=60, paused_s=1.5),
    WorkspacePaused("deal", 8.316, "body hint"),
    CheckpointSaved("/cp.json", "t", "2026-12-01T10:10:10.000Z", "crawl", {"deal": {"pages": 1}}),
    BackupMade("/b.db.gz", 1234),
    EngineWarning("careful"),
    WebformProgress(1, 2, 3, 0, 0),
    RunFinished(RESULT),
]


def test_every_event_type_round_trips_through_json():
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES.values())
    for event in SAMPLES:
        line = json.dumps(event_to_json(event, t="2026-12-01T10:10:10.000Z"), ensure_ascii=False)
        data = json.loads(line)
        assert data["t"] == "2026-12-01T10:10:10.000Z"
        assert data["event"] in EVENT_TYPES
        assert event_from_json(data) == event


def test_unknown_or_broken_lines_are_none_not_errors():
    assert event_from_json({"event": "from_the_future", "x": 1}) is None
    assert event_from_json({"event": "endpoint_progress"}) is None  # required fields missing
    # a newer writer's extra field is ignored
    data = event_to_json(EngineWarning("w"))
    data["new_field"] = 1
    assert event_from_json(data) == EngineWarning("w")


def test_reader_waits_for_a_half_written_line(tmp_path: Path):
    path = tmp_path / "snapshot_t.events.jsonl"
    reader = EventsReader(path)
    assert reader.read_new() == []  # not there yet
    first = json.dumps(event_to_json(PhaseChanged("crawl")))
    second = json.dumps(event_to_json(EngineWarning("w")))
    path.write_text(first + "\n" + second[:10])
    assert reader.read_new() == [PhaseChanged("crawl")]
    with path.open("a") as file:
        file.write(second[10:] + "\nnot json\n")
    assert reader.read_new() == [EngineWarning("w")]
    assert reader.read_new() == []


def test_events_file_is_private_and_never_holds_the_secret(tmp_path: Path):
    path = tmp_path / "e.events.jsonl"
    out = EventsFile(path, "s3cret")
    out.write(EngineWarning("token s3cret leaked?"))
    out.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "s3cret" not in text and "***" in text


def test_a_snapshot_run_writes_its_events_as_they_happen(tmp_path: Path):
    config = SandboxConfig(seed=3, scale=60, forms=2, rate_limit=100_000, faults="503:1:burst=1")
    with SandboxServer(config) as server:
        settings = make_settings(tmp_path, server)
        result, rec = run(settings)
    assert result.exit_code == 0, result.message
    path = events_path_for(result.log_path or "")
    assert path == tmp_path / "logs" / f"snapshot_{result.run_tag}.events.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert server.token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(set(line) >= {"t", "event"} for line in lines)
    assert lines[0]["event"] == "run_started" and lines[-1]["event"] == "run_finished"
    # the file holds exactly what the sink got, in order (the retry's backoff progress too)
    read_back = EventsReader(path).read_new()
    assert read_back == rec.events
    assert any(isinstance(e, RequestRetried) for e in read_back)
    assert isinstance(read_back[-1], RunFinished) and read_back[-1].result == result


def test_a_resumed_run_appends_to_the_same_events_file(tmp_path: Path):
    import threading

    config = SandboxConfig(seed=3, scale=300, forms=2, rate_limit=100_000)
    with SandboxServer(config) as server:
        settings = make_settings(tmp_path, server, concurrency=1)
        cancel = threading.Event()
        seen: list[object] = []

        def stop_after_pages(event: object) -> None:
            seen.append(event)
            # after a committed page (a run that committed none leaves nothing to resume)
            if isinstance(event, CheckpointSaved) and any(
                info.get("rows") for info in event.endpoints.values()
            ):
                cancel.set()

        from salesmap_tui.engine.api import run_snapshot

        first = run_snapshot(settings, stop_after_pages, cancel)
        assert first.status == "interrupted", first.message
        second, _ = run(settings.replace(resume_run_tag=first.run_tag))
    assert second.status == "done" and second.run_tag == first.run_tag
    events = EventsReader(events_path_for(second.log_path or "")).read_new()
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [f.result.status for f in finished] == ["interrupted", "done"]
    assert sum(isinstance(e, RunStarted) for e in events) == 2


def test_the_webform_only_pass_writes_its_events_file(tmp_path: Path):
    config = SandboxConfig(seed=3, scale=40, forms=2, rate_limit=100_000)
    with SandboxServer(config) as server:
        settings = make_settings(tmp_path, server)
        assert run(settings)[0].exit_code == 0
        result, rec = run(settings.replace(webform_only=True))
    assert result.kind == "webform" and result.exit_code == 0, result.message
    events = EventsReader(events_path_for(result.log_path or "")).read_new()
    assert events == rec.events
    assert isinstance(events[0], RunStarted) and events[0].kind == "webform"
    assert isinstance(events[-1], RunFinished)
