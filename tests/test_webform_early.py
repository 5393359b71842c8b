"""Long web forms start with the form list, not after its answer (issue 10: a long form's chain
can end the run, and waiting a response time for the list adds a turn to it). The list still
decides what goes into webform_history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from salesmap_tui.engine import webform
from salesmap_tui.engine.runs.webform_pass import EARLY_FORM_PAGES, SUBMISSIONS_PER_PAGE
from salesmap_tui.sandbox import SandboxConfig, SandboxServer
from tests.conftest import make_settings, run, webform_rows

LATENCY_MS = 300.0


def _config() -> SandboxConfig:
    # three forms of 300 submissions (six pages each; the history keeps those of people with
    # deals), answers 300 ms after arrival
    return SandboxConfig(
        seed=5, scale=60, forms=3, submissions=300, rate_limit=100_000, latency_ms=LATENCY_MS
    )


def _first(log: list[dict[str, object]], kind: str, field: str = "t") -> float:
    """When the first request of `kind` arrived (or, with `field="done"`, was answered)."""
    return min(float(str(e[field])) for e in log if e["kind"] == kind)


def test_long_forms_of_the_history_are_asked_before_the_list_answers(tmp_path: Path) -> None:
    with SandboxServer(_config()) as server:
        # paced as in the field: the pacer decides who goes first
        settings = make_settings(tmp_path, server, min_interval=0.12)
        first, _ = run(settings)
        assert first.exit_code == 0, first.message
        rows1 = webform_rows(settings.db_path)
        # the history shows long forms: the next run starts them with the list
        with sqlite3.connect(settings.db_path) as conn:
            counts = conn.execute(
                "SELECT COUNT(*) FROM webform_history GROUP BY webFormId"
            ).fetchall()
        assert max(c for (c,) in counts) >= EARLY_FORM_PAGES * SUBMISSIONS_PER_PAGE
        log1 = server.request_log()
        # first run: no history, so every form's first request waited for the list's answer
        assert _first(log1, "webFormSubmit") >= _first(log1, "webForm", "done")
        server.state.log.clear()
        second, _ = run(settings)
        assert second.exit_code == 0, second.message
        log2 = server.request_log()
        # second run: a long form's first page left right after the list's request, while
        # the list was still on its way back
        assert _first(log2, "webFormSubmit") < _first(log2, "webForm", "done")
        # and nothing else changed: the same rows, nothing new, no form fetched twice
        assert webform_rows(settings.db_path) == rows1
        assert second.webform is not None and second.webform.new_rows == 0
        pages = [(e["path"], e["cursor"]) for e in log2 if e["kind"] == "webFormSubmit"]
        assert len(pages) == len(set(pages))


def test_a_deleted_long_form_in_the_history_changes_nothing(tmp_path: Path) -> None:
    """A form the history shows as long but the server no longer has: started early, it answers
    400 once, is named by nobody, and the run's outcome is the one without it."""
    with SandboxServer(_config()) as server:
        settings = make_settings(tmp_path, server, min_interval=0.0)
        first, _ = run(settings)
        assert first.exit_code == 0, first.message
        gone = "form-deleted-last-week"
        with sqlite3.connect(settings.db_path) as conn:
            template = conn.execute(
                f"SELECT {', '.join(webform.COLUMNS)} FROM webform_history LIMIT 1"
            ).fetchone()
            cols = list(webform.COLUMNS)
            fake = []
            for i in range(EARLY_FORM_PAGES * SUBMISSIONS_PER_PAGE):
                row = list(template)
                row[cols.index("webFormId")] = gone
                row[cols.index("payload_hash")] = f"gone-{i}"
                fake.append(tuple(row))
            conn.executemany(webform.INSERT_SQL, fake)
        rows_before = webform_rows(settings.db_path)
        server.state.log.clear()
        second, _ = run(settings)
        assert second.exit_code == 0, second.message
        assert second.webform is not None
        assert second.webform.status == "done"
        assert first.webform is not None and second.webform.new_rows == 0
        # the same forms, skipped forms (people name deleted ones) and dropped submissions
        assert (second.webform.forms, second.webform.skipped_forms, second.webform.dropped) == (
            first.webform.forms,
            first.webform.skipped_forms,
            first.webform.dropped,
        )
        # the history keeps what it had, the deleted form's rows included
        assert webform_rows(settings.db_path) == rows_before
        asked = [e for e in server.request_log() if gone in str(e["path"])]
        assert [e["status"] for e in asked] == [400]
