"""Outcomes as values (issue 13): exit codes, failure kinds, and what a run's result carries."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import get_args

import pytest

from salesmap_tui.engine import api, errors
from salesmap_tui.engine.events import (
    CheckpointSaved,
    EngineEvent,
    RunFinished,
    RunResult,
    event_from_json,
    event_to_json,
)
from salesmap_tui.engine.outcome import (
    FAILURE_TITLES,
    ExitCode,
    Failure,
    FailureKind,
    describe,
    exit_code_for,
    kind_of,
    stopped_by,
    where,
)
from salesmap_tui.sandbox import SandboxServer

from .conftest import make_settings

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "CONTRACT.md"


def test_exit_codes_are_the_contracts() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    table = text[text.index("## Exit codes") :].split("\n## ", 1)[0]
    documented = set()
    for cell in re.findall(r"^\| ([0-9 /]+) \|", table, flags=re.M):
        documented |= {int(c) for c in cell.split("/")}
    assert documented == {int(c) for c in ExitCode}


@pytest.mark.parametrize(
    ("exc", "code", "kind"),
    [
        (errors.MissingToken("x"), ExitCode.USAGE, "token_missing"),
        (errors.TokenRejected("x"), ExitCode.USAGE, "token_rejected"),
        (errors.LockHeld("x", pid=1), ExitCode.USAGE, "lock_held"),
        (errors.BadCheckpoint("x"), ExitCode.USAGE, "bad_checkpoint"),
        (errors.BadBackup("x"), ExitCode.USAGE, "bad_backup"),
        (errors.UsageError("x"), ExitCode.USAGE, "usage"),
        (errors.ApiError("x", 404), ExitCode.FAILED, "api"),
        (errors.MaxRetriesExceeded("x", 3), ExitCode.FAILED, "retries"),
        (errors.RunCancelled("x"), ExitCode.SIGINT, "cancelled"),
        (errors.SalesmapTuiError("x"), ExitCode.FAILED, "failed"),
        (OSError(28, "No space left on device"), ExitCode.FAILED, "local_io"),
        (sqlite3.OperationalError("database or disk is full"), ExitCode.FAILED, "local_io"),
        (ValueError("bug"), ExitCode.FAILED, "failed"),
    ],
)
def test_each_error_maps_to_its_code_and_kind(exc: BaseException, code: int, kind: str) -> None:
    assert exit_code_for(exc) == code
    assert kind_of(exc) == kind
    assert Failure(kind_of(exc), "m").title == FAILURE_TITLES[kind_of(exc)]


def test_a_cancel_exits_with_its_signals_code() -> None:
    cancel = errors.CancelEvent()
    cancel.cancel(143)
    assert exit_code_for(errors.RunCancelled("x"), cancel) == ExitCode.SIGTERM
    assert exit_code_for(errors.RunCancelled("x"), threading.Event()) == ExitCode.SIGINT
    assert stopped_by(143) == "stopped by SIGTERM" and stopped_by(130).startswith("stopped (")


def test_where_names_the_file_sqlite_does_not() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    assert where(full, "phase crawl", "/x/live.db.tmp") == (
        "phase crawl: writing /x/live.db.tmp failed: database or disk is full"
    )
    gone = FileNotFoundError(2, "No such file or directory", "/x/a")
    assert where(gone, "phase swap") == "phase swap: No such file or directory (/x/a)"
    assert describe(errors.ApiError("404 Not Found")) == "404 Not Found"


def test_a_failure_survives_the_events_file() -> None:
    result = _result_with(Failure("held_back", "deal 100 → 10 rows", "kept at x.db", "let it in"))
    back = event_from_json(event_to_json(RunFinished(result)))
    assert isinstance(back, RunFinished) and back.result == result


def test_a_rejected_token_is_a_token_failure_not_a_guess_from_the_text(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    result = api.run_snapshot(make_settings(tmp_path, sandbox, token="not-the-token"))
    assert (result.exit_code, result.status) == (2, "failed")
    assert result.failure is not None and result.failure.kind == "token_rejected"
    assert result.failure.kept == "the live DB is untouched"
    ok = api.run_snapshot(make_settings(tmp_path, sandbox))
    assert ok.exit_code == ExitCode.DONE and ok.failure is None


def test_a_cancelled_run_says_what_was_kept_and_what_next(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = make_settings(tmp_path, sandbox, checkpoint_interval=1)
    cancel = errors.CancelEvent()

    def stop_after_a_page(event: EngineEvent) -> None:
        if isinstance(event, CheckpointSaved) and any(e["pages"] for e in event.endpoints.values()):
            cancel.cancel(143)

    result = api.run_snapshot(settings, stop_after_a_page, cancel)
    assert (result.exit_code, result.status) == (143, "interrupted")
    assert result.failure is not None and result.failure.kind == "cancelled"
    assert result.failure.next_step == f"resume with --resume-run-tag {result.run_tag}"
    assert result.failure.next_step in result.message


def _result_with(failure: Failure) -> RunResult:
    return RunResult(
        run_tag="20261202T000000Z-abcd",
        kind="snapshot",
        status="fallback",
        exit_code=5,
        started_at="2026-12-02T00:00:00.000Z",
        finished_at="2026-12-02T00:01:00.000Z",
        duration_s=60.0,
        db_path="/x/live.db",
        final_db_path="/x/live.db",
        temp_db_path=None,
        backup_path=None,
        log_path=None,
        replaced=False,
        fallback_path="/x/live_20261202T000000Z-abcd.db",
        tables={"deal": {"rows": 10, "cols": 3}},
        errors=(),
        webform=None,
        message="held back",
        failure=failure,
    )


def test_the_contract_lists_every_failure_kind() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    listed = text[text.index("`kind` one of") + len("`kind`") : text.index("`failed`).") + 8]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == set(get_args(FailureKind))
    assert set(FAILURE_TITLES) == set(get_args(FailureKind))
