"""Which checkpoint a run continues (issue 13: the resume policy tested alone, without a run)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import Checkpoint, CheckpointManager
from salesmap_tui.engine.errors import BadCheckpoint
from salesmap_tui.engine.runs import resume
from salesmap_tui.engine.snapshot_db import start_run_info

BASE = "https://api.salesmap.kr"


def settings_in(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {"db_path": tmp_path / "live.db", "token": "t-1", "base_url": BASE}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def iso(hours_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unfinished(settings: Settings, hours_ago: float, **changes: object) -> Checkpoint:
    """A checkpoint of `settings`' DB and workspace with its temp DB, saved."""
    cp = resume.new_checkpoint(settings)
    cp.started_at = iso(hours_ago)
    cp.phase = "crawl"
    for key, value in changes.items():
        setattr(cp, key, value)
    conn = sqlite3.connect(cp.temp_db_path)
    start_run_info(conn, cp.run_tag, cp.started_at, BASE, "test")
    conn.close()
    CheckpointManager(settings.checkpoint_dir).save(cp)
    return cp


def live_db(settings: Settings, hours_ago: float) -> None:
    conn = sqlite3.connect(settings.db_path)
    start_run_info(conn, "20260101T000000Z-live", iso(hours_ago), BASE, "test")
    conn.close()


def choose(settings: Settings) -> resume.ResumeChoice:
    return resume.choose(settings, CheckpointManager(settings.checkpoint_dir))


def test_without_resume_a_fresh_run_even_with_checkpoints(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    unfinished(s, 1)
    choice = choose(s)
    assert not choice.resumed and choice.warnings == []
    assert choice.checkpoint.phase == "start"
    assert choice.checkpoint.workspace is not None
    assert "t-1" not in str(choice.checkpoint.workspace)  # a fingerprint, never the token


def test_resume_with_nothing_to_resume_starts_fresh_and_says_so(tmp_path: Path) -> None:
    choice = choose(settings_in(tmp_path, resume=True))
    assert not choice.resumed
    assert choice.warnings == ["nothing to resume: no unfinished checkpoint; starting a fresh run"]


def test_resume_takes_the_newest_usable_checkpoint(tmp_path: Path) -> None:
    s = settings_in(tmp_path, resume=True)
    unfinished(s, 3)
    newest = unfinished(s, 1)
    choice = choose(s)
    assert choice.resumed and choice.checkpoint.run_tag == newest.run_tag


def test_resume_never_mixes_two_workspaces(tmp_path: Path) -> None:
    s = settings_in(tmp_path, resume=True)
    other = unfinished(s.replace(token="t-2"), 1)
    choice = choose(s)
    assert not choice.resumed
    assert any(other.run_tag in w and "workspaces" in w for w in choice.warnings)
    with pytest.raises(BadCheckpoint, match="never mixes two workspaces"):
        choose(s.replace(resume=False, resume_run_tag=other.run_tag))


def test_resume_never_puts_older_data_live(tmp_path: Path) -> None:
    s = settings_in(tmp_path, resume=True)
    old = unfinished(s, 5)
    live_db(s, 2)  # a newer snapshot went live after that run stopped
    choice = choose(s)
    assert not choice.resumed
    assert any(f"not resuming {old.run_tag}" in w for w in choice.warnings)
    # named, it is still reachable (the operator's choice)
    assert choose(s.replace(resume=False, resume_run_tag=old.run_tag)).resumed


def test_resume_skips_a_checkpoint_older_than_max_age(tmp_path: Path) -> None:
    s = settings_in(tmp_path, resume=True, resume_max_age=12.0)
    stale = unfinished(s, 13)
    choice = choose(s)
    assert not choice.resumed and any("--resume-max-age" in w for w in choice.warnings)
    assert stale.run_tag in " ".join(choice.warnings)


def test_a_finished_or_superseded_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    done = unfinished(s, 1, done=True)
    with pytest.raises(BadCheckpoint, match="already finished"):
        choose(s.replace(resume_run_tag=done.run_tag))
    gone = unfinished(s, 1, superseded="restored")
    with pytest.raises(BadCheckpoint, match="superseded"):
        choose(s.replace(resume_run_tag=gone.run_tag))


def test_a_temp_db_of_another_run_is_refused(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    a = unfinished(s, 1)
    b = unfinished(s, 1)
    Path(a.temp_db_path).write_bytes(Path(b.temp_db_path).read_bytes())
    with pytest.raises(BadCheckpoint, match=f"belongs to run {b.run_tag}"):
        choose(s.replace(resume_run_tag=a.run_tag))
