"""CheckpointManager: atomic save with the seed's rename-then-copy fallback, tolerant load/list."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from salesmap_tui.engine.checkpoint import (
    Checkpoint,
    CheckpointManager,
    EndpointCheckpoint,
    checkpoint_to_dict,
)
from salesmap_tui.engine.errors import BadCheckpoint


def make_cp(tmp_path: Path, tag: str, *, temp_exists: bool = True) -> Checkpoint:
    temp = tmp_path / f"live.db.{tag}.tmp"
    if temp_exists:
        temp.write_bytes(b"x" * 10)
    return Checkpoint(
        run_tag=tag,
        temp_db_path=str(temp),
        db_path=str(tmp_path / "live.db"),
        settings={"db_path": "live.db", "keep_backups": 30, "이름": "값"},
        backup_path=None,
        phase="crawl",
        started_at="2026-01-01T00:00:00.000Z",
        endpoints={
            "deal": EndpointCheckpoint(cursor="c2", pages=2, rows=200),
            "user": EndpointCheckpoint(cursor=None, pages=1, rows=5, done=True),
        },
    )


def test_save_load_round_trip_exact(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path / "cps")
    cp = make_cp(tmp_path, "20260101T000000Z-aaaa")
    path = mgr.save(cp)
    assert path == mgr.path_for(cp.run_tag) == tmp_path / "cps" / f"checkpoint_{cp.run_tag}.json"
    assert cp.saved_at  # set by save
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.with_name(path.name + ".tmp").exists()
    loaded = mgr.load(cp.run_tag)
    assert loaded == cp
    assert checkpoint_to_dict(loaded) == json.loads(path.read_text(encoding="utf-8"))


def test_rename_retries_then_copies(tmp_path: Path) -> None:
    calls: list[tuple[Path, Path]] = []
    sleeps: list[float] = []

    def denied(a: Path, b: Path) -> None:
        calls.append((a, b))
        raise PermissionError(13, "Access is denied")

    mgr = CheckpointManager(tmp_path, rename=denied, sleep=sleeps.append)
    cp = make_cp(tmp_path, "20260101T000000Z-bbbb")
    path = mgr.save(cp)
    assert len(calls) == 3 and len(sleeps) == 2
    assert calls[0] == (path.with_name(path.name + ".tmp"), path)
    assert mgr.load(cp.run_tag) == cp  # the copy is the checkpoint
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rename_succeeds_on_second_try(tmp_path: Path) -> None:
    n = {"calls": 0}

    def flaky(a: Path, b: Path) -> None:
        n["calls"] += 1
        if n["calls"] == 1:
            raise OSError(16, "busy")
        os.replace(a, b)

    copies: list[object] = []
    mgr = CheckpointManager(
        tmp_path, rename=flaky, copy=lambda a, b: copies.append(a), sleep=lambda s: None
    )
    cp = make_cp(tmp_path, "20260101T000000Z-cccc")
    path = mgr.save(cp)
    assert n["calls"] == 2 and copies == []
    assert not path.with_name(path.name + ".tmp").exists()


def test_save_fails_clearly_when_copy_fails_too(tmp_path: Path) -> None:
    def fail(a: Path, b: Path) -> None:
        raise PermissionError(13, "denied")

    mgr = CheckpointManager(tmp_path, rename=fail, copy=fail, sleep=lambda s: None)
    with pytest.raises(OSError, match=r"could not save checkpoint .*json\.tmp"):
        mgr.save(make_cp(tmp_path, "20260101T000000Z-dddd"))


def test_load_errors_are_bad_checkpoint(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path)
    with pytest.raises(BadCheckpoint, match=f"no checkpoint for run tag NOPE in {tmp_path}"):
        mgr.load("NOPE")
    mgr.path_for("bad").write_text("{not json", encoding="utf-8")
    with pytest.raises(BadCheckpoint, match=r"checkpoint_bad\.json is not valid JSON"):
        mgr.load("bad")
    mgr.path_for("arr").write_text("[1]", encoding="utf-8")
    with pytest.raises(BadCheckpoint, match="expected a JSON object"):
        mgr.load("arr")
    data = checkpoint_to_dict(make_cp(tmp_path, "x"))
    del data["temp_db_path"]
    mgr.path_for("miss").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BadCheckpoint, match="no field 'temp_db_path'"):
        mgr.load("miss")
    data = checkpoint_to_dict(make_cp(tmp_path, "y"))
    data["endpoints"]["deal"]["pages"] = "two"
    mgr.path_for("type").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BadCheckpoint, match="endpoint 'deal' field 'pages'"):
        mgr.load("type")
    mgr.path_for("bin").write_bytes(b"\xff\xfe")
    with pytest.raises(BadCheckpoint, match="cannot read checkpoint"):
        mgr.load("bin")


def test_list_newest_first_with_problems(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path / "cps")
    old = make_cp(tmp_path, "20260101T000000Z-0001")
    mid = make_cp(tmp_path, "20260102T000000Z-0002", temp_exists=False)
    new = make_cp(tmp_path, "20260103T000000Z-0003")
    for cp in (old, mid, new):
        mgr.save(cp)
    (tmp_path / "cps" / "checkpoint_20260104T000000Z-0004.json").write_text("garbage")
    # a .json.tmp alone (a rename that never happened) is not listed
    (tmp_path / "cps" / "checkpoint_20260105T000000Z-0005.json.tmp").write_text("{}")
    assert mgr.load(new.run_tag) == new
    new.done = True
    mgr.save(new)
    assert mgr.load(new.run_tag).done is True
    infos = mgr.list()
    assert [i.run_tag for i in infos] == [
        "20260104T000000Z-0004",
        new.run_tag,
        mid.run_tag,
        old.run_tag,
    ]
    assert infos[0].checkpoint is None and infos[0].problem is not None
    assert infos[0].problem.startswith("unreadable: ")
    assert infos[1].problem == "finished"
    assert infos[2].problem == f"temp DB missing: {mid.temp_db_path}"
    assert not infos[2].temp_db_exists and infos[2].temp_db_size is None
    assert infos[3].problem is None and infos[3].temp_db_exists and infos[3].temp_db_size == 10


def test_list_of_missing_dir_is_empty(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path / "none")
    assert mgr.list() == []
