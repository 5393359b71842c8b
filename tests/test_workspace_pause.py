"""Issue 10: a 429 pauses the workspace; pacing on the sandbox's own arrival log; another client.

Runs against the loopback sandbox with its real limiter (100 per 10 s) and the engine's real
pacing (0.12 s, 100 per 10 s): every figure comes from the server's request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.client import SalesmapClient
from salesmap_tui.engine.events import (
    EngineEvent,
    RequestRetried,
    WebformProgress,
    WebformResult,
    WorkspacePaused,
)
from salesmap_tui.engine.pacer import Pacer
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import (
    SNAPSHOT_TABLES,
    Recorder,
    dataset_of,
    expected_records,
    make_settings,
    run,
    snapshot_of,
    table_records,
    webform_rows,
)

LIMITED = {"rate_limit": 100, "rate_window_s": 10.0}


class SandboxProcess:
    """The sandbox in a process of its own: its arrival times are not skewed by the engine
    holding this process's GIL (an in-process server stamps a request late when it is busy)."""

    def __init__(self, *args: str) -> None:
        self.args = args

    def __enter__(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", "salesmap_tui.sandbox", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=_ahead)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip().removeprefix("base_url: ")
        self.token = self.proc.stdout.readline().strip().removeprefix("token: ")
        assert self.base_url.startswith("http"), "the sandbox did not start"
        # the /_sandbox controls answer to the sandbox's token only
        auth = {"Authorization": f"Bearer {self.token}"}
        self.http = httpx.Client(
            base_url=self.base_url.removesuffix("/v2"), timeout=30, headers=auth
        )
        # the server's first answers pay for its first use (imports, first connection): warm it
        # up, then start its log and its window afresh
        for _ in range(3):
            self.http.get("/v2/team")
        self.http.post("/_sandbox/reset").raise_for_status()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(10)

    def faults(self, spec: str) -> None:
        self.http.post("/_sandbox/faults", content=spec).raise_for_status()

    def other(self, per_window: int) -> None:
        self.http.post("/_sandbox/other", params={"per_window": per_window}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.http.get("/_sandbox/stats").json()
        return out

    def log(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.http.get("/_sandbox/log").json()["entries"]
        return entries


def _ahead() -> None:
    """The server is the measuring instrument: on a loaded machine, let the OS run it ahead of
    the rest, so it stamps an arrival when it comes (where that is not allowed, nothing
    changes; the engine under test keeps its normal priority)."""
    with contextlib.suppress(OSError):
        os.nice(-15)


def sandbox_args(cfg: SandboxConfig) -> list[str]:
    return [
        "--seed", str(cfg.seed), "--scale", str(cfg.scale), "--forms", str(cfg.forms),
        "--latency-ms", str(cfg.latency_ms), "--hint-scale", str(cfg.hint_scale),
        "--rate-limit", str(cfg.rate_limit), "--other-client", str(cfg.other_per_window),
    ]  # fmt: skip


def paced(root: Path, server: SandboxServer | SandboxProcess, **changes: Any) -> Settings:
    """The product's pacing (0.12 s, 100 per 10 s) against the sandbox."""
    root.mkdir(parents=True, exist_ok=True)
    changes.setdefault("max_wait", 30.0)
    return make_settings(root, server, min_interval=0.12, **changes)


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the engine finished writing each request's headers (the pacer's `mark_sent`, on
    the same monotonic clock as the server's arrival stamps): the engine's side of the gap."""
    times: list[float] = []
    original = Pacer.mark_sent

    def mark_sent(self: Pacer, granted_at: float) -> None:
        times.append(time.monotonic())
        original(self, granted_at)

    monkeypatch.setattr(Pacer, "mark_sent", mark_sent)
    return times


def check_pacing(entries: list[dict[str, Any]], wire: list[float]) -> None:
    """Both sides of every gap: the engine's own writes are >= 0.12 s apart (what it promises),
    and the server's arrival log >= 0.11 s (what the API sees, its stamping included: a CI run
    on a loaded 2-core machine stamped one request 5.9 ms late and the next 0.9 ms early, 0.1147 s
    apart for requests the engine wrote 0.1214 s apart)."""
    sent = sorted(wire)
    assert len(sent) > 20
    own = min(b - a for a, b in itertools.pairwise(sent))
    assert own >= 0.12 - 1e-6, f"the engine wrote two requests {own:.4f} s apart"
    ordered = sorted(entries, key=lambda e: e["t"])
    times = [e["t"] for e in ordered]
    assert len(times) > 20
    gap, a, b = min(
        ((y["t"] - x["t"], x, y) for x, y in itertools.pairwise(ordered)), key=lambda g: g[0]
    )
    if gap < 0.11:
        wa, wb = (min(sent, key=lambda s: abs(s - e["t"])) for e in (a, b))
        pytest.fail(
            f"{gap:.4f} s between {a} and {b} on the arrival log; the engine wrote them "
            f"{wb - wa:.4f} s apart, the server stamped them {a['t'] - wa:+.4f} s and "
            f"{b['t'] - wb:+.4f} s after"
        )
    lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 10.0:
            lo += 1
        assert hi - lo + 1 <= 100


def check_rows(db: Path, config: SandboxConfig) -> None:
    data = dataset_of(config)
    for table in SNAPSHOT_TABLES:
        assert table_records(db, table) == expected_records(data, table), table


def test_after_a_429_no_request_of_any_endpoint_leaves_before_the_hint(
    tmp_path: Path, wire: list[float]
) -> None:
    cfg = SandboxConfig(seed=5, scale=150, forms=3, latency_ms=20, **LIMITED)
    hint = 1.0
    with SandboxProcess(*sandbox_args(cfg)) as server:
        # every deal page is refused once, with a 1 s hint in the body (as Salesmap does)
        server.faults(f"429:1:burst=1:path=deal:hint={hint}")
        result, rec = run(paced(tmp_path, server))
        log = server.log()
    assert result.exit_code == 0, result.message
    check_rows(tmp_path / "salesmap_latest.db", cfg)
    refused = [e for e in log if e["status"] == 429]
    assert len(refused) >= 3  # one per deal page
    for e in refused:
        answered = e["done"]  # the 429 left the server here: the client has it just after
        inside = [x for x in log if answered + 0.01 < x["t"] < answered + hint - 0.01]
        assert inside == [], f"{len(inside)} requests left inside the hint after {e['path']}"
    check_pacing(log, wire)
    # said once per pause, not once per waiting request; the request itself is a retry
    pauses = rec.of(WorkspacePaused)
    assert 1 <= len(pauses) <= len(refused)
    assert {p.endpoint for p in pauses} == {"deal"}
    assert all(p.wait_s == hint and p.reason == "body hint" for p in pauses)
    assert {e.endpoint for e in rec.of(RequestRetried)} == {"deal"}


def test_pacing_holds_on_the_arrival_log_through_429s_and_a_resume(
    tmp_path: Path, wire: list[float]
) -> None:
    cfg = SandboxConfig(seed=11, scale=200, forms=4, latency_ms=30, hint_scale=0.2, **LIMITED)
    with SandboxProcess(*sandbox_args(cfg)) as server:
        server.faults("429:0.05,503:0.05")
        settings = paced(tmp_path, server, checkpoint_interval=1)
        cancel = threading.Event()
        rec = Recorder()
        seen = 0

        def sink(event: EngineEvent) -> None:
            nonlocal seen
            rec(event)
            if isinstance(event, WebformProgress):
                seen += 1
                if seen == 2:
                    cancel.set()  # mid-crawl, with forms in flight

        first = run_snapshot(settings, sink, cancel)
        assert first.status == "interrupted"
        resumed, _ = run(settings.replace(resume_run_tag=first.run_tag))
        log = server.log()
    assert resumed.exit_code == 0, resumed.message
    assert {e["status"] for e in log} >= {429, 503, 200}
    check_pacing(log, wire)  # both runs, retries and the resume included
    check_rows(settings.db_path, cfg)


async def test_a_request_in_flight_when_another_429_came_is_not_blamed() -> None:
    """Two requests in flight both get a 429: one pause, one attempt spent, both retried after."""
    sent: list[tuple[str, float]] = []
    refused: set[str] = set()

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        sent.append((path, time.monotonic()))
        await asyncio.sleep(0.05)
        if path not in refused:
            refused.add(path)
            body = {"success": False, "message": "Too Many Requests", "reason": "0.3초 후"}
            return httpx.Response(429, json=body)
        return httpx.Response(200, json={"success": True, "data": {"x": path}})

    events: list[EngineEvent] = []
    pacer = Pacer(0.01, 100, 10.0)
    settings = Settings(token="t0ken", base_url="https://api.test/v2", max_retries=1)
    async with SalesmapClient(
        settings, pacer, events.append, threading.Event(), transport=httpx.MockTransport(handler)
    ) as client:
        got = await asyncio.gather(
            client.get_data("/a", None, "a", lambda: 1.0), client.get_data("/b", None, "b")
        )
    assert got == [{"x": "/v2/a"}, {"x": "/v2/b"}]  # with max_retries 1: neither spent two
    pauses = [e for e in events if isinstance(e, WorkspacePaused)]
    assert [(p.endpoint, p.wait_s) for p in pauses] == [("a", 0.3)]
    assert [e.endpoint for e in events if isinstance(e, RequestRetried)] == ["a"]
    first_429_back = sent[0][1] + 0.05
    retries = [t for _, t in sent[2:]]
    assert len(retries) == 2 and min(retries) >= first_429_back + 0.3 - 0.01


@pytest.mark.slow
def test_a_run_completes_while_another_client_spends_40_percent(
    tmp_path: Path, wire: list[float]
) -> None:
    cfg = SandboxConfig(seed=13, scale=500, forms=4, other_per_window=40, **LIMITED)
    with SandboxProcess(*sandbox_args(cfg)) as server:
        result, _ = run(paced(tmp_path / "shared", server))
        log = server.log()
        sent = list(wire)  # this run's writes (the reference run's come after)
        stats = server.stats()
        server.other(0)
        reference = paced(tmp_path / "alone", server)
        assert run(reference)[0].exit_code == 0
    assert result.exit_code == 0, result.message
    assert stats["other_admitted"] > 30  # the other client did spend its share meanwhile
    db = tmp_path / "shared" / "salesmap_latest.db"
    check_rows(db, cfg)
    assert snapshot_of(db) == snapshot_of(reference.db_path)
    assert webform_rows(db) == webform_rows(reference.db_path)
    check_pacing(log, sent)
    assert result.webform is not None and result.webform.status == "done"


def _forms_done_in(temp_db: Path) -> set[str]:
    conn = sqlite3.connect(temp_db)
    try:
        rows = conn.execute(
            "SELECT webFormId FROM _webform_pass WHERE status = 'done' AND webFormId != ''"
        )
        return {str(r[0]) for r in rows}
    finally:
        conn.close()


def test_a_resume_does_not_refetch_finished_forms(tmp_path: Path) -> None:
    cfg = SandboxConfig(seed=3, scale=150, forms=5, rate_limit=0)
    with SandboxServer(cfg) as server:
        settings = make_settings(tmp_path / "run", server, concurrency=1, checkpoint_interval=1)
        settings.db_path.parent.mkdir()
        cancel = threading.Event()

        def sink(event: EngineEvent) -> None:
            # forms_done counts the skipped ones (people name forms the API does not know)
            if isinstance(event, WebformProgress) and event.forms_done - event.skipped_forms >= 2:
                cancel.set()

        first = run_snapshot(settings, sink, cancel)
        assert first.status == "interrupted"
        done = _forms_done_in(Path(first.temp_db_path or ""))
        assert len(done) >= 2
        server.state.reset_stats()
        resumed, _ = run(settings.replace(resume_run_tag=first.run_tag))
        again = [e["path"] for e in server.state.request_log()]
        clean = make_settings(tmp_path / "clean", server)
        clean.db_path.parent.mkdir()
        reference, _ = run(clean)
    assert resumed.exit_code == 0, resumed.message
    for form_id in done:
        assert not [p for p in again if form_id in p], f"form {form_id} fetched again"
    assert webform_rows(settings.db_path) == webform_rows(clean.db_path)
    assert _counts(resumed.webform) == _counts(reference.webform)


def _counts(wf: WebformResult | None) -> tuple[Any, ...]:
    assert wf is not None
    return (wf.status, wf.forms, wf.new_rows, wf.dropped, wf.skipped_forms)


def test_the_overlapped_pass_equals_the_pass_after_the_crawl(tmp_path: Path) -> None:
    """Same rows, same counts as the sequential pass (the one --webform-only still runs)."""
    cfg = SandboxConfig(seed=9, scale=200, forms=6, rate_limit=0)
    with SandboxServer(cfg) as server:
        settings = make_settings(tmp_path / "run", server)
        settings.db_path.parent.mkdir()
        overlapped, _ = run(settings)
        assert overlapped.exit_code == 0, overlapped.message
        # the same crawled DB without its web-form rows, then the pass after the crawl
        later = make_settings(tmp_path / "later", server, webform_only=True)
        later.db_path.parent.mkdir()
        shutil.copy(settings.db_path, later.db_path)
        conn = sqlite3.connect(later.db_path)
        conn.execute("DELETE FROM webform_history")
        conn.commit()
        conn.close()
        sequential, _ = run(later)
    assert sequential.exit_code == 0, sequential.message
    assert _counts(overlapped.webform) == _counts(sequential.webform)
    ow = overlapped.webform
    assert ow is not None and ow.new_rows > 0 and ow.dropped > 0 and ow.skipped_forms > 0
    assert webform_rows(settings.db_path) == webform_rows(later.db_path)
    names = "SELECT webFormId, webFormName, peopleId, createdAt FROM webform_history"
    a, b = sqlite3.connect(settings.db_path), sqlite3.connect(later.db_path)
    try:
        assert sorted(a.execute(names)) == sorted(b.execute(names))
        # the pass's bookkeeping is gone from the snapshot
        tables = {r[0] for r in a.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "_webform_pass" not in tables
    finally:
        a.close()
        b.close()


def test_concurrency_auto_and_one_give_identical_tables(tmp_path: Path, sandbox: Any) -> None:
    a = make_settings(tmp_path / "a", sandbox, concurrency=1)
    b = make_settings(tmp_path / "b", sandbox, concurrency=0)  # auto
    for s in (a, b):
        s.db_path.parent.mkdir()
        assert run(s)[0].exit_code == 0
    assert snapshot_of(a.db_path) == snapshot_of(b.db_path)
    assert webform_rows(a.db_path) == webform_rows(b.db_path)
