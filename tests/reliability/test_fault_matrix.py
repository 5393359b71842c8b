"""Every HTTP fault the client must survive, end to end: sandbox over loopback, the real engine.

Each row injects one fault on `/v2/user` (one request per run, so attempt counts are exact), or on
a paginated endpoint, and checks the attempts the sandbox saw, the `RequestRetried` events (cause,
status, wait and where the wait came from), and the run's outcome: history record, manifest
errors, live DB. Waits are milliseconds: the 429 hints are scaled by `hint_scale`, backoff starts
at 10 ms, `max_wait` caps everything at 50 ms, timeouts are 0.3 s.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.cli import main
from salesmap_tui.config import Settings
from salesmap_tui.engine.api import list_checkpoints, run_snapshot
from salesmap_tui.engine.events import EndpointProgress, RequestRetried
from salesmap_tui.engine.history import HistoryEntry, read_history
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import (
    SNAPSHOT_TABLES,
    Recorder,
    dataset_of,
    expected_records,
    make_settings,
    run,
    snapshot_of,
    table_records,
)
from .conftest import SECRET

MAX_WAIT = 0.05
# long enough that a loaded machine (CI shares two cores) never times out an answered request
# (a spurious retry broke the per-endpoint counts at 0.3 s), short enough for the hang rows
TIMEOUT = 2.0
ATTEMPTS = 4  # max_retries 3 + the first try


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # small: one page per endpoint but lead (3 pages) and organization (2)
    return SandboxConfig(seed=3, scale=30, forms=3, rate_limit=100_000, token=SECRET,
                         hint_scale=0.01)  # fmt: skip


def fault_settings(root: Path, server: SandboxServer, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "max_wait": MAX_WAIT,
        "backoff_base": 0.01,
        "backoff_429": 0.01,
        "request_timeout": TIMEOUT,
    }
    values.update(changes)
    return make_settings(root, server, **values)


def history(settings: Settings) -> list[dict[str, Any]]:
    return [e.record for e in read_history(settings.history_path) if isinstance(e, HistoryEntry)]


def manifest_errors(db: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    try:
        return {
            t: json.loads(e) for t, e in conn.execute("SELECT table_name, errors FROM manifest")
        }
    finally:
        conn.close()


def requests_by_kind(server: SandboxServer) -> Counter[str]:
    return Counter(str(e["kind"]) for e in server.request_log())


@dataclass(frozen=True)
class Row:
    """One fault: its spec, what each failed attempt looks like, and how the run ends."""

    spec: str
    attempts: int  # requests the sandbox sees on /v2/user
    status: int | None  # HTTP status of each failed attempt (None: no response)
    cause: str  # in every RequestRetried.error (and the final error when the run fails)
    reason: str  # where each wait came from
    waits: tuple[float, ...]  # expected wait after each failed attempt (approx=True: upper bound)
    outcome: str  # "done" or "failed"
    changes: dict[str, Any] = field(default_factory=dict)
    approx: bool = False


BACKOFF = (0.01, 0.02, 0.04)
MATRIX: dict[str, Row] = {
    # 429: the body's "N초" hint (2 s x hint_scale 0.01), then the Retry-After header wins
    "429-body-hint": Row("429:1:hint=3:burst=2", 3, 429, "429 Too Many Requests", "body hint",
                         (0.03, 0.03), "done"),
    "429-retry-after-seconds": Row("retry_after:1:value=0.04:burst=1", 2, 429,
                                   "429 Too Many Requests", "Retry-After header", (0.04,), "done"),
    "429-retry-after-date": Row("retry_after:1:date=1:burst=1", 2, 429, "429 Too Many Requests",
                                "Retry-After header", (1.0,), "done", {"max_wait": 5.0},
                                approx=True),
    "429-absurd-retry-after-capped": Row("retry_after:1:value=86400:burst=2", 3, 429,
                                         "429 Too Many Requests", "Retry-After header",
                                         (MAX_WAIT, MAX_WAIT), "done"),
    "429-absurd-date-capped": Row("retry_after:1:date=604800:burst=1", 2, 429,
                                  "429 Too Many Requests", "Retry-After header", (MAX_WAIT,),
                                  "done"),
    "429-absurd-body-hint-capped": Row("429:1:hint=100000:burst=1", 2, 429,
                                       "429 Too Many Requests", "body hint", (MAX_WAIT,), "done"),
    "429-forever": Row("429", ATTEMPTS, 429, "429 Too Many Requests", "body hint",
                       (0.02, 0.02, 0.02), "failed"),
    "500-burst": Row("500:1:burst=2", 3, 500, "500 Internal Server Error", "backoff",
                     BACKOFF[:2], "done"),
    "502-burst": Row("502:1:burst=2", 3, 502, "502 Bad Gateway", "backoff", BACKOFF[:2], "done"),
    "503-burst": Row("503:1:burst=3", 4, 503, "503 Service Unavailable", "backoff", BACKOFF,
                     "done"),
    "500-forever": Row("500", ATTEMPTS, 500, "500 Internal Server Error", "backoff", BACKOFF,
                       "failed"),
    "502-forever": Row("502", ATTEMPTS, 502, "502 Bad Gateway", "backoff", BACKOFF, "failed"),
    "503-forever": Row("503", ATTEMPTS, 503, "503 Service Unavailable", "backoff", BACKOFF,
                       "failed"),
    "hang-once": Row("hang:1:burst=1", 2, None, "timeout (ReadTimeout)", "backoff", BACKOFF[:1],
                     "done"),
    "hang-forever": Row("hang", ATTEMPTS, None, "timeout (ReadTimeout)", "backoff", BACKOFF,
                        "failed"),
    "reset-burst": Row("reset:1:burst=2", 3, None, "connection dropped", "backoff", BACKOFF[:2],
                       "done"),
    "reset-forever": Row("reset", ATTEMPTS, None, "connection dropped", "backoff", BACKOFF,
                         "failed"),
    "truncate-burst": Row("truncate:1:burst=2", 3, 200, "non-JSON body", "backoff", BACKOFF[:2],
                          "done"),
    "truncate-forever": Row("truncate", ATTEMPTS, 200, "non-JSON body", "backoff", BACKOFF,
                            "failed"),
    "html-200-burst": Row("html:1:burst=1", 2, 200, "non-JSON body (HTML?): text/html", "backoff",
                          BACKOFF[:1], "done"),
    "html-200-forever": Row("html", ATTEMPTS, 200, "non-JSON body (HTML?): text/html", "backoff",
                            BACKOFF, "failed"),
}  # fmt: skip


@pytest.fixture
def baseline(tmp_path: Path, sandbox: SandboxServer) -> tuple[Settings, bytes, dict[str, Any]]:
    """A live DB from a clean run: the fault runs must leave it byte for byte (or replace it)."""
    settings = fault_settings(tmp_path, sandbox)
    first, _ = run(settings)
    assert first.exit_code == 0, first.message
    sandbox.reset_stats()
    return settings, settings.db_path.read_bytes(), snapshot_of(settings.db_path)


@pytest.mark.parametrize("row", list(MATRIX.values()), ids=list(MATRIX))
def test_fault_matrix(
    row: Row, sandbox: SandboxServer, baseline: tuple[Settings, bytes, dict[str, Any]]
) -> None:
    settings, live_before, snapshot_before = baseline
    settings = settings.replace(**row.changes)
    sandbox.set_faults(f"{row.spec}:path=user")
    result, rec = run(settings)
    sandbox.set_faults("")

    # attempts: what the server saw, and what the client reported
    seen = requests_by_kind(sandbox)
    assert seen["user"] == row.attempts
    faulted = [e for e in sandbox.request_log() if e["kind"] == "user" and e["fault"]]
    failed_attempts = row.attempts - (1 if row.outcome == "done" else 0)
    assert len(faulted) == failed_attempts
    retried = [e for e in rec.of(RequestRetried) if e.endpoint == "user"]
    assert [e.attempt for e in retried] == list(range(1, min(failed_attempts, ATTEMPTS - 1) + 1))
    assert {e.max_attempts for e in retried} == {ATTEMPTS}
    assert all(e.status == row.status for e in retried), retried
    assert all(row.cause in e.error for e in retried), retried
    assert all(e.reason == row.reason for e in retried), retried
    if row.approx:
        assert all(0 < e.wait_s <= w for e, w in zip(retried, row.waits, strict=True)), retried
    else:
        assert [e.wait_s for e in retried] == pytest.approx(list(row.waits))
    # only /v2/user was hit: every other endpoint went through on its first try
    assert not [e for e in rec.of(RequestRetried) if e.endpoint != "user"]

    last = history(settings)[-1]
    assert last["run_tag"] == result.run_tag
    if row.outcome == "done":
        assert (result.status, result.exit_code) == ("done", 0), result.message
        assert last["status"] == "done" and last["error_count"] == 0
        assert snapshot_of(settings.db_path) == snapshot_before
        assert manifest_errors(settings.db_path) == {t: [] for t in SNAPSHOT_TABLES}
        return
    assert (result.status, result.exit_code) == ("failed", 1)
    assert settings.db_path.read_bytes() == live_before
    assert last["status"] == "failed" and last["error_count"] == 1
    (error,) = last["errors"]
    assert error.startswith("user: max_retries_exceeded: GET /user after 4 attempts")
    assert row.cause in error
    errors = manifest_errors(Path(result.temp_db_path or ""))
    assert errors["user"] == [error]
    assert all(errors[t] == [] for t in SNAPSHOT_TABLES if t != "user")
    log = Path(result.log_path or "").read_text(encoding="utf-8")
    assert log.count("retry user attempt") == ATTEMPTS - 1
    # the failed run resumes to completion once the API recovers, re-reading only /v2/user
    sandbox.reset_stats()
    resumed, _ = run(settings.replace(resume_run_tag=result.run_tag))
    assert resumed.exit_code == 0 and resumed.run_tag == result.run_tag
    assert requests_by_kind(sandbox)["user"] == 1
    assert snapshot_of(settings.db_path) == snapshot_before


@pytest.mark.parametrize("fault", ["500", "503", "reset", "truncate", "html", "429", "hang"])
def test_every_page_of_a_paginated_endpoint_fails_once(
    fault: str, sandbox: SandboxServer, baseline: tuple[Settings, bytes, dict[str, Any]]
) -> None:
    """burst=1 on lead: each page (request key = path + cursor) fails exactly once."""
    settings, _live, snapshot_before = baseline
    run(settings)
    clean = requests_by_kind(sandbox)["lead"]
    assert clean >= 3
    sandbox.reset_stats()
    sandbox.set_faults(f"{fault}:1:burst=1:path=lead")
    result, rec = run(settings)
    sandbox.set_faults("")
    assert result.exit_code == 0, result.message
    assert requests_by_kind(sandbox)["lead"] == 2 * clean
    retried = [e for e in rec.of(RequestRetried) if e.endpoint == "lead"]
    assert [e.attempt for e in retried] == [1] * clean
    assert snapshot_of(settings.db_path) == snapshot_before


# --- 401 mid-run ---------------------------------------------------------------------------------


def test_token_revoked_mid_run_exits_2_and_resumes_once_restored(tmp_path: Path) -> None:
    cfg = SandboxConfig(seed=3, scale=150, forms=3, rate_limit=100_000, token=SECRET,
                        latency_ms=2)  # fmt: skip
    with SandboxServer(cfg) as server:
        settings = fault_settings(tmp_path, server, concurrency=2, checkpoint_interval=1)
        first, _ = run(settings)
        assert first.exit_code == 0
        live_before = settings.db_path.read_bytes()
        server.reset_stats()
        rec = Recorder()
        pages = {"n": 0}

        def sink(event: Any) -> None:
            rec(event)
            if isinstance(event, EndpointProgress) and event.state == "fetching" and event.pages:
                pages["n"] += 1
                if pages["n"] == 4:
                    server.revoke_token()

        result = run_snapshot(settings, sink, threading.Event())
        assert (result.status, result.exit_code) == ("failed", 2), result.message
        assert "token rejected" in result.message and "live DB is untouched" in result.message
        assert settings.db_path.read_bytes() == live_before
        # a 401 is never retried: one refused request per endpoint in flight at most
        rejected = [e for e in server.request_log() if e["status"] == 401]
        assert 1 <= len(rejected) <= settings.concurrency
        assert not [e for e in rec.of(RequestRetried) if e.status == 401]
        last = history(settings)[-1]
        assert last["run_tag"] == result.run_tag and last["status"] == "failed"
        assert any("token rejected" in e for e in last["errors"])
        (info,) = [i for i in list_checkpoints(settings) if i.run_tag == result.run_tag]
        assert info.problem is None and info.checkpoint is not None
        assert not info.checkpoint.done
        saved = sum(ep.pages for ep in info.checkpoint.endpoints.values())
        assert saved >= 4  # the committed pages are kept
        # still revoked: resuming fails the same way, nothing changes
        again, _ = run(settings.replace(resume_run_tag=result.run_tag))
        assert again.exit_code == 2 and settings.db_path.read_bytes() == live_before
        server.restore_token()
        resumed, _ = run(settings.replace(resume_run_tag=result.run_tag))
        assert resumed.exit_code == 0 and resumed.run_tag == result.run_tag
        data = dataset_of(cfg)
        for table in SNAPSHOT_TABLES:
            assert table_records(settings.db_path, table) == expected_records(data, table)
        statuses = [r["status"] for r in history(settings) if r["run_tag"] == result.run_tag]
        assert statuses == ["running", "failed", "running", "failed", "running", "done"]


def test_token_revoked_mid_run_through_the_cli(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("SALESMAP_TOKEN", SECRET)
    args = ["snapshot", "--db-path", str(tmp_path / "live.db"), "--log-dir", str(tmp_path / "l"),
            "--backup-dir", str(tmp_path / "b"), "--base-url", sandbox.base_url,
            "--min-interval", "0", "--max-wait", "0.05"]  # fmt: skip
    assert main(args) == 0
    before = (tmp_path / "live.db").read_bytes()
    sandbox.revoke_token()
    assert main(args) == 2
    out = capsys.readouterr()
    assert "token rejected" in out.err  # a failed run's summary goes to stderr (issue 12)
    assert (tmp_path / "live.db").read_bytes() == before


# --- a cursor that repeats -----------------------------------------------------------------------


def test_cursor_loop_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    cfg = SandboxConfig(seed=3, scale=120, forms=3, rate_limit=100_000, token=SECRET)
    with SandboxServer(cfg) as server:
        settings = fault_settings(tmp_path, server)
        first, _ = run(settings)
        assert first.exit_code == 0
        live_before = settings.db_path.read_bytes()
        server.reset_stats()
        server.set_faults("loop:1:path=deal")
        result, rec = run(settings)
        assert (result.status, result.exit_code) == ("failed", 1)
        assert settings.db_path.read_bytes() == live_before
        # page 1 (no cursor) is fine; page 2 answers with its own cursor: no third request
        deal = [e for e in server.request_log() if e["kind"] == "deal"]
        assert len(deal) == 2 and deal[0]["cursor"] is None
        assert deal[1]["fault"] == "loop"
        assert not [e for e in rec.of(RequestRetried) if e.endpoint == "deal"]
        (error,) = history(settings)[-1]["errors"]
        assert error.startswith("deal: cursor loop on /deal: nextCursor ")
        assert f"repeated (requested with cursor {deal[1]['cursor']!r})" in error
        assert manifest_errors(Path(result.temp_db_path or ""))["deal"] == [error]
        # the other endpoints completed: only deal is missing
        done = {e.endpoint for e in rec.of(EndpointProgress) if e.state == "done"}
        assert done == set(SNAPSHOT_TABLES) - {"deal"}
