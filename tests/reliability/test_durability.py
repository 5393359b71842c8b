"""Durability and hostile environments (issue: power loss, full disks, proxies, log injection).

Each test drives the real engine against real files: the history file on a write that fails half
way, a resumed run whose temp DB lost committed pages, a CRM field name built to forge a log line,
and a real HTTP proxy on loopback that records what reaches it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from salesmap_tui.engine import history
from salesmap_tui.engine.checkpoint import CheckpointManager
from salesmap_tui.engine.runlog import RunLog, escape_line
from salesmap_tui.engine.runs.snapshot import run_snapshot
from salesmap_tui.sandbox import SandboxServer

from ..conftest import make_settings, run, snapshot_of
from .conftest import SECRET

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00) ")


# --- history: a failed append leaves no fragment -----------------------------------------------
class ShortWriteOs:
    """`os` as the history module sees it: the next write stores only `keep` bytes, then fails."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        # what a filling disk does: part of the buffer lands, then ENOSPC
        os.write(fd, data[: self.keep])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("keep", [0, 1, 17, 80])
def test_failed_history_append_leaves_no_fragment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    path = tmp_path / "logs" / "run_history.jsonl"
    history.append_history(path, history.make_record(run_tag="a", status="done"))
    before = path.read_bytes()
    monkeypatch.setattr(history, "os", ShortWriteOs(keep))
    with pytest.raises(OSError) as info:
        history.append_history(path, history.make_record(run_tag="b", status="failed"))
    monkeypatch.undo()
    assert path.read_bytes() == before, "a torn record stayed in the history"
    assert str(path) in str(info.value) and "append" in str(info.value)
    assert info.value.errno == errno.ENOSPC
    history.append_history(path, history.make_record(run_tag="c", status="done"))
    items = history.read_history(path)
    assert all(isinstance(i, history.HistoryEntry) for i in items), items
    assert [i.record["run_tag"] for i in items if isinstance(i, history.HistoryEntry)] == ["a", "c"]


def test_run_message_says_history_record_is_missing(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, sandbox, token=sandbox.token)
    real = history.append_history
    calls = {"n": 0}

    def fail_second(path: Path, record: dict[str, Any]) -> None:
        calls["n"] += 1
        if record.get("status") != "running":
            monkeypatch.setattr(history, "os", ShortWriteOs(5))
        try:
            real(path, record)
        finally:
            monkeypatch.setattr(history, "os", os)

    from salesmap_tui.engine.runs import context

    monkeypatch.setattr(context, "append_history", fail_second)
    result, _ = run(settings)
    assert result.exit_code == 0
    assert "run history" in result.message and str(settings.history_path) in result.message
    text = settings.history_path.read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())


# --- resume: fewer rows than the checkpoint says ------------------------------------------------
def test_resume_with_lost_rows_fetches_the_endpoint_again(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A checkpoint ahead of its rows (what a power cut did before the rows were synced):
    the resume must not continue from the cursor and lose the pages in between."""
    reference = tmp_path / "ref"
    reference.mkdir()
    ref_settings = make_settings(reference, sandbox, token=sandbox.token)
    assert run(ref_settings)[0].exit_code == 0
    root = tmp_path / "cut"
    root.mkdir()
    settings = make_settings(root, sandbox, token=sandbox.token, checkpoint_interval=1)
    cancel = threading.Event()

    def stop_after_memo_pages(event: Any) -> None:
        from salesmap_tui.engine.events import CheckpointSaved

        memo = event.endpoints.get("memo", {}) if isinstance(event, CheckpointSaved) else {}
        if memo.get("pages", 0) >= 3:
            cancel.set()

    from salesmap_tui.engine.api import run_snapshot as api_run

    first = api_run(settings, stop_after_memo_pages, cancel)
    assert first.exit_code == 130, first.message
    cp = CheckpointManager(settings.checkpoint_dir).load(first.run_tag)
    temp = Path(cp.temp_db_path)
    memo = cp.endpoints["memo"]
    assert memo.rows > 50 and memo.cursor
    conn = sqlite3.connect(temp)
    conn.execute("DELETE FROM memo WHERE rowid IN (SELECT rowid FROM memo LIMIT 40)")
    conn.commit()
    conn.close()
    resumed, rec = run(make_settings(root, sandbox, token=sandbox.token, resume=True))
    assert resumed.exit_code == 0, resumed.message
    warnings = [e.message for e in rec.events if type(e).__name__ == "EngineWarning"]
    assert any("memo" in w and "first page" in w for w in warnings), warnings
    assert snapshot_of(settings.db_path) == snapshot_of(ref_settings.db_path)


# --- logs: a CRM field name cannot forge a line ------------------------------------------------
FORGED = "x\nfinished: done (exit 0): snapshot done: salesmap_latest.db replaced"
NASTY = [FORGED, "a\rfinished: done", "b\u2028finished: done", "c\u2029d", "e\x1b[2Jf", "g\x85h"]


def test_escape_line_leaves_one_line() -> None:
    for text in NASTY:
        out = escape_line(text)
        assert len(out.splitlines()) == 1 and out.isprintable(), repr(out)


def _serve_forged(request: httpx.Request) -> httpx.Response:
    parts = urlsplit(str(request.url))
    name = parts.path.rsplit("/", 1)[-1]
    cursor = parse_qs(parts.query).get("cursor", [None])[0]
    key = {"webForm": "webFormList"}.get(name, f"{name}List")
    if name == "deal":  # the run must fail: its log then has one true `finished:` line
        body = {"success": False, "message": "Bad Request", "reason": "boom\nfinished: done"}
        return httpx.Response(400, json=body)
    records: list[dict[str, Any]] = []
    nxt = None
    if name == "organization" and cursor is None:
        records, nxt = [{"id": "o1", "name": "n"}], "o1"
    elif name == "organization":
        records = [{"id": "o2", **{k: 1 for k in NASTY}}]
    return httpx.Response(200, json={"success": True, "data": {key: records, "nextCursor": nxt}})


def test_forged_field_name_cannot_forge_a_log_line(tmp_path: Path) -> None:
    settings = make_settings_plain(tmp_path)
    result = run_snapshot(
        settings, lambda e: None, threading.Event(), lambda: httpx.MockTransport(_serve_forged)
    )
    assert result.status == "failed" and result.exit_code == 1
    text = Path(str(result.log_path)).read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]
    assert all(TS.match(line) or line.startswith("    | ") for line in lines), lines
    finished = [line for line in lines if re.match(TS.pattern + "finished:", line)]
    assert len(finished) == 1 and "finished: failed" in finished[0], finished
    assert not any(ch in text for ch in "\r\u2028\u2029\x1b\x85")
    assert "new columns" in text and "x\\nfinished: done" in text  # logged, escaped


def make_settings_plain(root: Path, **changes: Any) -> Any:
    from salesmap_tui.config import Settings

    values: dict[str, Any] = {
        "db_path": root / "salesmap_latest.db",
        "log_dir": root / "logs",
        "backup_dir": root / "backups",
        "base_url": "http://127.0.0.1:9/v2",
        "token": SECRET,
        "min_interval": 0.0,
        "max_wait": 0.01,
        "backoff_base": 0.01,
        "backoff_429": 0.01,
        "request_timeout": 2.0,
        "concurrency": 1,
    }
    values.update(changes)
    return Settings(**values)


def test_runlog_block_keeps_continuation_lines_indented(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "r.log", SECRET)
    log.write_block("run failed:", f"Traceback\n  x = '{SECRET}'\nValueError: a\rb\n")
    log.close()
    lines = (tmp_path / "r.log").read_text().split("\n")[:-1]
    assert TS.match(lines[0]) and all(line.startswith("    | ") for line in lines[1:])
    assert SECRET not in "".join(lines) and "a\\rb" in lines[-1]


# --- proxies: the token never travels in clear through one -------------------------------------
class RecordingProxy:
    """A tiny HTTP proxy on loopback that records every byte it receives and answers 502."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.received = bytearray()
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                self.received += data
                with_body = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                with contextlib.suppress(OSError):
                    conn.sendall(with_body + b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    p = RecordingProxy()
    yield p
    p.close()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: RecordingProxy) -> RecordingProxy:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for scheme in ("HTTP", "HTTPS", "ALL"):
        monkeypatch.setenv(f"{scheme}_PROXY", proxy.url)
        monkeypatch.setenv(f"{scheme.lower()}_proxy", proxy.url)
    return proxy


def test_loopback_run_never_uses_the_proxy(
    tmp_path: Path, sandbox: SandboxServer, proxy_env: RecordingProxy
) -> None:
    result, _ = run(make_settings(tmp_path, sandbox, token=sandbox.token))
    assert result.exit_code == 0, result.message
    assert proxy_env.connections == 0 and not proxy_env.received


def test_https_goes_through_the_proxy_by_connect_only(
    tmp_path: Path, proxy_env: RecordingProxy
) -> None:
    """A corporate proxy still works for https: it gets a CONNECT, never the token."""
    settings = make_settings_plain(tmp_path, base_url="https://salesmap.example/api/v2")
    result = run_snapshot(settings, lambda e: None, threading.Event())
    assert result.exit_code == 1  # the proxy answers 502 to the CONNECT
    assert proxy_env.connections > 0
    assert proxy_env.received.startswith(b"CONNECT salesmap.example:443 ")
    assert SECRET.encode() not in proxy_env.received
    assert b"authorization" not in proxy_env.received.lower()


def test_plain_http_to_another_host_is_refused_with_a_proxy_set(
    tmp_path: Path, proxy_env: RecordingProxy
) -> None:
    from salesmap_tui.engine.client import use_env_proxy
    from salesmap_tui.engine.errors import UsageError

    with pytest.raises(UsageError, match="in clear"):
        use_env_proxy("http://crm.example/v2")
    settings = make_settings_plain(tmp_path, base_url="http://crm.example/v2")
    with pytest.raises(UsageError):
        run_snapshot(settings, lambda e: None, threading.Event())
    assert proxy_env.connections == 0


def test_help_says_how_the_proxy_is_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    from salesmap_tui.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["snapshot", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "HTTPS_PROXY" in out and "never through a proxy" in out


def test_cli_event_lines_cannot_be_forged() -> None:
    import io

    from salesmap_tui.cli.printer import EventPrinter
    from salesmap_tui.engine.events import EngineWarning

    out = io.StringIO()
    EventPrinter(out)(EngineWarning(f"organization: new columns {FORGED}\u2028{NASTY[4]}"))
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    assert "\x1b" not in text and "\u2028" not in text
