"""webform_history through real processes (issue 9, items 4 and 5): a live DB made by the
previous version migrated by `--webform-only`, with SIGKILLs during the migration; counts that
are true after a kill and a resume; rows a `--webform-only` pass added while a run was
interrupted kept when that run goes live."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.engine import webform
from salesmap_tui.engine.crashpoints import KILL_ENV
from salesmap_tui.engine.history import HistoryEntry, read_history

from ..legacy_webform import downgrade, legacy_insert
from .killharness import DB_NAME, HarnessConfig, cli_args, finish, spawn

IDENTITY = "webFormId, peopleId, createdAt, contents"


def records(root: Path) -> list[dict[str, Any]]:
    path = root / "logs" / "run_history.jsonl"
    return [e.record for e in read_history(path) if isinstance(e, HistoryEntry)]


def submissions(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)  # read-write: a hot journal a kill left is rolled back
    try:
        return sorted(conn.execute(f"SELECT {IDENTITY} FROM webform_history").fetchall(), key=repr)
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def current(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        return webform.is_current(conn)
    finally:
        conn.close()


def runs_tag_rows(db: Path, tag: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM webform_history WHERE run_tag = ?", (tag,)
            ).fetchone()[0]
        )
    finally:
        conn.close()


def cli(root: Path, server: Any, *extra: str, kill: str | None = None) -> tuple[int, str]:
    root.mkdir(exist_ok=True)
    args = [*cli_args(root, server, HarnessConfig()), *extra]
    return finish(spawn(args, server.token, {KILL_ENV: kill} if kill else None))


@pytest.fixture
def legacy_live(tmp_path: Path, sandbox: Any) -> tuple[Path, list[tuple[Any, ...]]]:
    """A live DB whose webform_history is what the previous version left after the API added a
    top-level key to its submissions: every submission twice (the old hash covered the whole
    answer)."""
    root = tmp_path / "template"
    code, err = cli(root, sandbox)
    assert code == 0, err
    db = root / DB_NAME
    distinct = submissions(db)
    assert len(distinct) > 20
    downgrade(db)
    conn = sqlite3.connect(db)
    payloads = conn.execute(
        "SELECT webFormId, webFormName, payload FROM webform_history"
    ).fetchall()
    for form_id, name, payload in payloads:
        legacy_insert(conn, form_id, name, [dict(json.loads(payload), formVersion=2)], "old-2")
    n = conn.execute("SELECT COUNT(*) FROM webform_history").fetchone()[0]
    conn.close()
    assert n == 2 * len(distinct)
    assert not current(db)
    return root, distinct


@pytest.mark.parametrize(
    "kill", [None, "webform_migrate:1", "webform_migrate_rows:1", "webform_migrated:1"]
)
def test_webform_only_migrates_a_legacy_live_db_even_when_killed_during_it(
    tmp_path: Path, sandbox: Any, legacy_live: tuple[Path, list[tuple[Any, ...]]], kill: str | None
) -> None:
    template, distinct = legacy_live
    root = tmp_path / "case"
    shutil.copytree(template, root)
    db = root / DB_NAME
    legacy_rows = submissions(db)
    if kill:
        code, err = cli(root, sandbox, "--webform-only", kill=kill)
        assert code == -signal.SIGKILL, err
        assert integrity(db) == "ok"
        # the migration is one transaction: the old table, whole, as it was
        assert not current(db)
        assert submissions(db) == legacy_rows
    code, err = cli(root, sandbox, "--webform-only")
    assert code == 0, err
    assert integrity(db) == "ok" and current(db)
    assert submissions(db) == distinct  # nothing lost, no submission twice
    assert records(root)[-1]["webform"]["new_rows"] == 0  # same day: nothing new
    # a full run afterwards keeps them all too
    code, err = cli(root, sandbox)
    assert code == 0, err
    assert submissions(db) == distinct


@pytest.mark.parametrize("kill", ["webform_page:2", "webform_commit:1", "finalize:1"])
def test_new_rows_are_true_after_a_kill_and_a_resume(
    tmp_path: Path, sandbox: Any, kill: str
) -> None:
    # issue 9: after a kill the resumed run reported new_rows 50 having added 150
    ref = tmp_path / "ref"
    code, err = cli(ref, sandbox)
    assert code == 0, err
    want = records(ref)[-1]["webform"]["new_rows"]
    assert want == len(submissions(ref / DB_NAME)) > 20
    root = tmp_path / "case"
    code, err = cli(root, sandbox, kill=kill)
    assert code == -signal.SIGKILL, err
    code, err = cli(root, sandbox, "--resume")
    assert code == 0, err
    last = records(root)[-1]
    assert last["status"] == "done"
    assert last["webform"]["new_rows"] == want
    assert runs_tag_rows(root / DB_NAME, last["run_tag"]) == want
    assert submissions(root / DB_NAME) == submissions(ref / DB_NAME)


def test_rows_a_webform_pass_added_while_a_run_was_interrupted_are_kept(
    tmp_path: Path, sandbox: Any
) -> None:
    # issue 9: 130 -> 100; the live DB's rows were carried over only at the run's start
    root = tmp_path / "ws"
    code, err = cli(root, sandbox)
    assert code == 0, err
    db = root / DB_NAME
    day1 = submissions(db)
    sandbox.set_day(2)
    code, err = cli(root, sandbox, kill="page:deal:1")
    assert code == -signal.SIGKILL, err
    code, err = cli(root, sandbox, "--webform-only")
    assert code == 0, err
    after_pass = submissions(db)
    assert len(after_pass) > len(day1)
    # the resumed run's own pass cannot fetch them again (the forms answer 500): the rows come
    # from the live DB or nowhere
    sandbox.set_faults("500:1:path=webFormSubmit")
    code, err = cli(root, sandbox, "--resume")
    sandbox.set_faults("")
    assert code == 4, err  # swapped; its web-form pass failed
    assert records(root)[-1]["replaced"] is True
    final = submissions(db)
    assert final == after_pass
    # and with a working pass: nothing twice, nothing lost
    code, err = cli(root, sandbox, kill="page:deal:1")
    assert code == -signal.SIGKILL, err
    code, err = cli(root, sandbox, "--webform-only")
    assert code == 0, err
    after_second = submissions(db)  # the live DB's day-2 people now: more forms than before
    assert set(after_pass) <= set(after_second)
    code, err = cli(root, sandbox, "--resume")
    assert code == 0, err
    assert submissions(db) == after_second


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_counts_are_true_after_a_kill_right_after_a_forms_last_page(
    tmp_path: Path, sandbox: Any, nth: int
) -> None:
    # a kill after a form's last page was committed but before the form was marked done: the
    # resumed run fetched that page again (the last page keeps the cursor before it) and
    # counted its dropped submissions twice (rows deduplicate, counts did not)
    ref = tmp_path / "ref"
    code, err = cli(ref, sandbox)
    assert code == 0, err
    want = records(ref)[-1]["webform"]
    assert want["dropped"] > 0  # the sandbox's forms have submissions without a person
    root = tmp_path / "case"
    code, err = cli(root, sandbox, kill=f"webform_page:{nth}")
    assert code == -signal.SIGKILL, err
    code, err = cli(root, sandbox, "--resume")
    assert code == 0, err
    got = records(root)[-1]["webform"]
    assert (got["new_rows"], got["dropped"]) == (want["new_rows"], want["dropped"])
    assert submissions(root / DB_NAME) == submissions(ref / DB_NAME)
