"""Strict answers (issue 9, item 2): a success without its page never truncates a table.

A loopback sandbox answers success without the list key (`"data": {}`), with `data: null`, or
with a list that is not a list, on the first page or a later one; or with records carrying `_id`
instead of `id`. Each is retried like a 5xx (MAX_RETRIES=3) and then fails the run with exit 1:
the live DB stays byte-identical, nothing is swapped, the history says why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from salesmap_tui.engine.history import HistoryEntry, read_history

from ..conftest import SNAPSHOT_TABLES, dataset_of, expected_records, run, table_records


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(db: Path) -> list[str]:
    return [x for x in ("-wal", "-shm", "-journal") if db.with_name(db.name + x).exists()]


def last_record(settings) -> dict:
    return [e.record for e in read_history(settings.history_path) if isinstance(e, HistoryEntry)][
        -1
    ]


@pytest.fixture
def live(settings, sandbox):
    """A good first snapshot: the live DB the bad answers must not touch."""
    first, _ = run(settings)
    assert first.exit_code == 0, first.message
    return first


# the sandbox serves 120 organizations (3 pages), 30 users, 5 teams
@pytest.mark.parametrize(
    ("spec", "endpoint", "fragment"),
    [
        ("nolist:1:path=organization", "organization", "a success without organizationList"),
        ("nolist:1:path=organization:after=2", "organization", "without organizationList"),
        ("nulldata:1:path=people:after=1", "people", "data is null"),
        ("notlist:1:path=lead:after=5", "lead", "leadList is dict, not a list"),
        ("nolist:1:path=user", "user", "a success without userList"),
        ("nulldata:1:path=team", "team", "data is null"),
    ],
)
def test_bad_answer_fails_the_run_and_leaves_the_live_db_byte_identical(
    settings, sandbox, live, spec, endpoint, fragment
):
    db = settings.db_path
    before = digest(db)
    sandbox.reset_stats()
    sandbox.set_faults(spec)
    result, _ = run(settings)
    sandbox.set_faults("")
    assert result.exit_code == 1, result.message
    assert result.status == "failed" and not result.replaced
    assert digest(db) == before, "the live DB changed"
    assert sidecars(db) == []
    message = " ".join(result.errors)
    assert f"{endpoint}: max_retries_exceeded:" in message
    assert fragment in message
    # retried like a 5xx: 4 attempts of the bad page
    faults = sandbox.stats()["faults"]
    assert sum(faults.values()) == 4, faults
    record = last_record(settings)
    assert record["status"] == "failed" and record["replaced"] is False
    assert record["run_tag"] == result.run_tag != live.run_tag


def test_a_bad_answer_that_clears_within_the_retries_loses_nothing(
    settings, sandbox, sandbox_config
):
    # every page of /deal after the first answers twice without its list, then properly
    sandbox.set_faults("nolist:1:burst=2:path=deal:after=1")
    result, _ = run(settings)
    sandbox.set_faults("")
    assert result.exit_code == 0, result.message
    data = dataset_of(sandbox_config)
    for table in SNAPSHOT_TABLES:
        assert table_records(settings.db_path, table).keys() == expected_records(data, table).keys()


@pytest.mark.parametrize("after", [0, 1])
def test_records_with_underscore_id_fail_the_run_naming_the_endpoint(
    settings, sandbox, live, after
):
    # as /v2/pipeline does: `_id` instead of `id`; they used to be dropped (deal 200 -> 0, exit 0)
    db = settings.db_path
    before = digest(db)
    sandbox.set_faults(f"underscore_id:1:path=deal:after={after}")
    result, _ = run(settings)
    sandbox.set_faults("")
    assert result.exit_code == 1, result.message
    assert digest(db) == before
    message = " ".join(result.errors)
    assert "deal: GET /deal: record 1 of a page has no usable id" in message
    assert "carry `_id` instead of `id`" in message
    assert last_record(settings)["error_count"] >= 1
