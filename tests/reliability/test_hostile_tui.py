"""Terminal escape sequences from the server or the CRM never reach the terminal raw.

A server answers with reasons, content types, cursors and web-form names that carry CSI / OSC
sequences (`\\x1b[31m`, `\\x1b]0;title\\x07`, `\\x1b[2J`). The real engine turns them into events;
the TUI shows them and the CLI prints them. What the TUI would write to the terminal (the
compositor's full update, escape sequences included) and what the CLI prints must hold none of
those sequences: they are shown literally, as `\\x1b...` text.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from salesmap_tui.cli.printer import EventPrinter
from salesmap_tui.config import Settings
from salesmap_tui.engine.events import (
    CheckpointSaved,
    EndpointProgress,
    EngineEvent,
    RunStarted,
)
from salesmap_tui.engine.runs.snapshot import run_snapshot
from salesmap_tui.tui.app import SalesmapApp
from salesmap_tui.tui.messages import EngineEventMessage

from ..conftest import Recorder
from .conftest import SECRET

CSI = "\x1b[38;5;196mHOSTILE\x1b[0m"
OSC = "\x1b]0;PWNED-TITLE\x07"
CLEAR = "\x1b[2J\x1b[H"
EVIL = f"{CSI} {OSC} {CLEAR} \x9b31m [bold]b[/bold]"
RAW = ("\x1b[38;5;196mHOSTILE", "\x1b]0;", "\x07", "\x1b[2J", "\x9b")
TAG = "20250314T092000Z-1a2b"


def assert_harmless(raw: str) -> None:
    found = [seq for seq in RAW if seq in raw]
    assert not found, f"raw escape sequences reach the terminal: {found}"


def settings_in(root: Path) -> Settings:
    return Settings(
        db_path=root / "salesmap_latest.db",
        log_dir=root / "logs",
        backup_dir=root / "backups",
        base_url="https://salesmap.invalid/api/v2",
        token=SECRET,
        min_interval=0,
        max_wait=0.001,
        backoff_base=0.001,
        backoff_429=0.001,
    )


def hostile_server(request: httpx.Request) -> httpx.Response:
    """Every endpoint fails in a way that carries hostile text into the engine's messages."""
    path = request.url.path
    if path.endswith("/user"):
        body = {"success": False, "message": "Internal Server Error", "reason": EVIL}
        return httpx.Response(503, json=body)
    if path.endswith("/team"):
        return httpx.Response(200, content=b"<html>", headers={"content-type": EVIL[:40]})
    if path.endswith("/people"):
        return httpx.Response(400, json={"success": False, "reason": [EVIL, EVIL]})
    if path.endswith("/webForm"):
        data = {"webFormList": [{"id": f"form{OSC}", "name": EVIL}]}
        return httpx.Response(200, json={"success": True, "data": data})
    if "/webForm/" in path:
        return httpx.Response(400, json={"success": False, "reason": EVIL})
    key = path.rsplit("/", 1)[-1] + "List"
    return httpx.Response(200, json={"success": True, "data": {key: [], "nextCursor": None}})


def engine_events(root: Path) -> tuple[list[Any], str]:
    """The events of a real (failing) run against the hostile server, and the CLI's lines."""
    rec = Recorder()
    printed = io.StringIO()
    printer = EventPrinter(out=printed)

    def sink(event: Any) -> None:
        rec(event)
        printer(event)

    result = run_snapshot(
        settings_in(root),
        sink,
        threading.Event(),
        transport_factory=lambda: httpx.MockTransport(hostile_server),
    )
    assert result.exit_code == 1 and result.errors
    return rec.events, printed.getvalue()


def make_app(root: Path) -> SalesmapApp:
    app = SalesmapApp(
        settings_in(root), clock=lambda: datetime(2025, 3, 14, 9, 30, tzinfo=UTC), base_dir=root
    )
    app.animation_level = "none"
    return app


def terminal_output(app: SalesmapApp) -> str:
    """What the app would write to the terminal to draw its current screen."""
    update = app.screen._compositor.render_full_update()
    return update.render_segments(app.console)


async def settle(app: SalesmapApp, pilot: Any) -> None:
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


def test_engine_messages_print_escape_sequences_literally(tmp_path: Path) -> None:
    _events, printed = engine_events(tmp_path)
    assert "max_retries_exceeded" in printed
    assert_harmless(printed)
    assert "\\x1b[38;5;196mHOSTILE" in printed  # shown, as text
    for log in (tmp_path / "logs").glob("*.log"):
        assert_harmless(log.read_text(encoding="utf-8"))
    history = (tmp_path / "logs" / "run_history.jsonl").read_text(encoding="utf-8")
    for line in history.splitlines():
        assert_harmless(json.dumps(json.loads(line), ensure_ascii=False))


async def test_dashboard_shows_hostile_engine_text_harmlessly(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    events, _ = await asyncio.to_thread(engine_events, tmp_path / "run")
    app = make_app(tmp_path)
    async with app.run_test(size=(220, 60)) as pilot:
        for event in events:
            app.post_message(EngineEventMessage(event))
        await settle(app, pilot)
        raw = terminal_output(app)
        assert "HOSTILE" in raw  # the retry log and the summary show the server's text ...
        assert_harmless(raw)  # ... but never as escape sequences


async def test_hostile_cursor_in_progress_and_checkpoint_is_harmless(tmp_path: Path) -> None:
    db = tmp_path / "salesmap_latest.db"
    cursor = f"{OSC}{CSI}"
    events: list[EngineEvent] = [
        RunStarted(
            TAG,
            "snapshot",
            False,
            str(db),
            None,
            "log",
            "http://127.0.0.1:1/v2",
            ("organization", "people"),
        ),
        EndpointProgress("organization", "fetching", 3, 150, None, cursor),
        EndpointProgress("people", "backoff", 2, 100, None, cursor, 1.5),
        CheckpointSaved(
            str(tmp_path / f"checkpoint_{TAG}.json"),
            TAG,
            "2025-03-14T09:20:09.000Z",
            "crawl",
            {"organization": {"pages": 3, "rows": 150, "cursor": cursor, "done": False}},
        ),
    ]
    app = make_app(tmp_path)
    async with app.run_test(size=(220, 60)) as pilot:
        for event in events:
            app.post_message(EngineEventMessage(event))
        await settle(app, pilot)
        assert_harmless(terminal_output(app))


async def test_webform_names_from_the_live_db_are_harmless(tmp_path: Path) -> None:
    from salesmap_tui.engine import webform

    db = tmp_path / "salesmap_latest.db"
    conn = sqlite3.connect(db)
    webform.ensure_table(conn)
    conn.execute(
        "INSERT INTO webform_history (webFormId, webFormName, peopleId, createdAt, contents, "
        "payload, payload_hash, run_tag, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("f1", EVIL, "p1", "2025-03-01T00:00:00Z", "[]", "{}", "h", TAG, "2025-03-01T00:00:00Z"),
    )
    conn.commit()
    conn.close()
    app = make_app(tmp_path)
    async with app.run_test(size=(220, 60)) as pilot:
        await pilot.press("w")
        await settle(app, pilot)
        raw = terminal_output(app)
        assert "HOSTILE" in raw
        assert_harmless(raw)
