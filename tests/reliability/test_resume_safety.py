"""Resume safety (issue 9, item 4): a checkpoint continues only for its own workspace, while it is
younger than --resume-max-age, and never once a restore superseded it.

`--resume` skips any other checkpoint with a warning and starts a fresh run; `--resume-run-tag`
of one exits 2 with the reason. Two loopback sandboxes with different data and tokens stand for
two workspaces.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine import api
from salesmap_tui.engine.checkpoint import (
    CheckpointManager,
    normalize_base_url,
    workspace_of,
    workspace_problem,
)
from salesmap_tui.engine.errors import BadCheckpoint
from salesmap_tui.engine.events import CheckpointSaved, EngineWarning
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import Recorder, dataset_of, expected_records, make_settings, run, table_records


def interrupted(settings: Settings) -> Any:
    """A run stopped once a few pages are committed: an open checkpoint and its temp DB."""
    cancel = threading.Event()
    rec = Recorder()

    def sink(event: Any) -> None:
        rec(event)
        if (
            isinstance(event, CheckpointSaved)
            and sum(e["pages"] for e in event.endpoints.values()) >= 2
        ):
            cancel.set()

    result = api.run_snapshot(settings.replace(checkpoint_interval=1), sink, cancel)
    assert result.status == "interrupted", result.message
    assert CheckpointManager(settings.checkpoint_dir).load(result.run_tag).done is False
    return result


def warnings(rec: Recorder) -> str:
    return " | ".join(e.message for e in rec.of(EngineWarning))


def run_info(db: Path) -> tuple[Any, ...]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return tuple(conn.execute("SELECT run_tag, base_url, status FROM run_info").fetchone())
    finally:
        conn.close()


@pytest.fixture
def other_workspace() -> Iterator[SandboxServer]:
    """Another workspace: other data (seed), another token, another address."""
    config = SandboxConfig(seed=11, scale=60, forms=2, rate_limit=100_000, token="other-ws-token")
    with SandboxServer(config) as server:
        yield server


def test_resume_against_another_workspace_starts_fresh_and_resume_run_tag_exits_2(
    tmp_path: Path, sandbox: SandboxServer, other_workspace: SandboxServer
) -> None:
    # issue 9: --resume with another token and base URL continued the first workspace's run
    first = make_settings(tmp_path, sandbox)
    stopped = interrupted(first)
    second = make_settings(tmp_path, other_workspace)
    result, rec = run(second.replace(resume=True))
    assert result.exit_code == 0, result.message
    assert result.run_tag != stopped.run_tag
    assert f"skipping checkpoint {stopped.run_tag}" in warnings(rec)
    assert "another workspace" in warnings(rec)
    # the DB holds the second workspace only, and says so
    want = dataset_of(SandboxConfig(seed=11, scale=60, forms=2))
    for table in ("organization", "deal", "memo"):
        assert table_records(second.db_path, table).keys() == expected_records(want, table).keys()
    assert run_info(second.db_path) == (result.run_tag, other_workspace.base_url, "done")
    # asked for by tag: exit 2, the reason named, nothing run
    with pytest.raises(BadCheckpoint, match="another workspace") as info:
        run(second.replace(resume_run_tag=stopped.run_tag))
    assert info.value.exit_code == 2
    # the first workspace's checkpoint is still there for its own workspace
    assert CheckpointManager(first.checkpoint_dir).load(stopped.run_tag).done is False


def test_the_same_base_url_with_another_token_is_another_workspace(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = make_settings(tmp_path, sandbox)
    stopped = interrupted(settings)
    with pytest.raises(BadCheckpoint, match="made with another API token"):
        run(settings.replace(token="someone-elses-token", resume_run_tag=stopped.run_tag))
    cp_text = CheckpointManager(settings.checkpoint_dir).path_for(stopped.run_tag).read_text()
    assert sandbox.token not in cp_text  # a fingerprint, never the token
    resumed, _ = run(settings.replace(resume=True))  # its own token: continues
    assert resumed.exit_code == 0 and resumed.run_tag == stopped.run_tag
    assert run_info(settings.db_path) == (stopped.run_tag, sandbox.base_url, "done")


def test_workspace_fingerprint() -> None:
    ws = workspace_of("https://Salesmap.kr/api/v2/", "tok-1")
    assert ws["base_url"] == "https://salesmap.kr/api/v2" == normalize_base_url(ws["base_url"])
    assert "tok-1" not in json.dumps(ws)
    assert workspace_of("https://salesmap.kr/api/v2", "tok-1")["salt"] != ws["salt"]  # per cp

    class Cp:
        workspace: dict[str, str] | None = ws

    cp: Any = Cp()
    assert workspace_problem(cp, "https://salesmap.kr/api/v2", "tok-1") is None
    assert "another API token" in (workspace_problem(cp, "https://salesmap.kr/api/v2", "x") or "")
    assert "base URL" in (workspace_problem(cp, "https://other.example/api/v2", "tok-1") or "")
    cp.workspace = None  # a checkpoint of an older version
    assert "older version" in (workspace_problem(cp, "https://salesmap.kr/api/v2", "tok-1") or "")


def _age(settings: Settings, tag: str, hours: float) -> None:
    manager = CheckpointManager(settings.checkpoint_dir)
    cp = manager.load(tag)
    started = datetime.now(UTC) - timedelta(hours=hours)
    cp.started_at = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    manager.save(cp)


def test_a_checkpoint_older_than_resume_max_age_is_not_continued(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    # issue 9: one failed night gave organization and people from Monday, memos from Wednesday
    settings = make_settings(tmp_path, sandbox)
    stopped = interrupted(settings)
    _age(settings, stopped.run_tag, 13)
    with pytest.raises(BadCheckpoint, match=r"longer ago than --resume-max-age 12 h") as info:
        run(settings.replace(resume_run_tag=stopped.run_tag))
    assert info.value.exit_code == 2
    result, rec = run(settings.replace(resume=True))
    assert result.exit_code == 0 and result.run_tag != stopped.run_tag
    assert f"skipping checkpoint {stopped.run_tag}" in warnings(rec)
    assert "--resume-max-age" in warnings(rec)


def test_resume_max_age_is_the_users_to_set(tmp_path: Path, sandbox: SandboxServer) -> None:
    settings = make_settings(tmp_path, sandbox)
    stopped = interrupted(settings)
    _age(settings, stopped.run_tag, 13)
    result, _ = run(settings.replace(resume=True, resume_max_age=24))
    assert result.exit_code == 0 and result.run_tag == stopped.run_tag


def test_a_restore_supersedes_open_checkpoints(tmp_path: Path, sandbox: SandboxServer) -> None:
    # issue 9: after a restore the next nightly --resume revived a run interrupted two days
    # earlier (its checkpoint was only "stale" against the live DB's rolled-back started_at)
    settings = make_settings(tmp_path, sandbox)
    for _ in range(2):
        done, _ = run(settings)
        assert done.exit_code == 0
    backups = api.list_backups(settings)
    assert backups
    sandbox.set_day(2)
    stopped = interrupted(settings)
    verified = api.verify_backup(settings, backups[-1].path)
    api.restore_backup(settings, verified)
    cp = CheckpointManager(settings.checkpoint_dir).load(stopped.run_tag)
    assert cp.superseded and "restored from" in cp.superseded
    listed = {i.run_tag: i.problem for i in api.list_checkpoints(settings)}
    assert (listed[stopped.run_tag] or "").startswith("superseded: the live DB was restored")
    with pytest.raises(BadCheckpoint, match="superseded") as info:
        run(settings.replace(resume_run_tag=stopped.run_tag))
    assert info.value.exit_code == 2
    result, rec = run(settings.replace(resume=True))
    assert result.exit_code == 0 and result.run_tag != stopped.run_tag
    assert "superseded" in warnings(rec)
