"""files.py: private files and dirs, atomic writes, and replace_file_with_retry."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from salesmap_tui.engine.files import (
    ReplaceOutcome,
    ensure_private_dir,
    find_lock_holders,
    open_private,
    replace_file_with_retry,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_private_dir_makes_created_dirs_0700(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    ensure_private_dir(existing / "a" / "b")
    assert mode(existing / "a") == 0o700
    assert mode(existing / "a" / "b") == 0o700
    assert mode(existing) == 0o755  # not ours to change
    ensure_private_dir(existing / "a" / "b")  # idempotent


def test_open_private_creates_0600_and_appends(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    old = os.umask(0)
    try:
        with open_private(p, "w") as fh:
            fh.write("가")
        with open_private(p, "a") as fh:
            fh.write("b")
    finally:
        os.umask(old)
    assert mode(p) == 0o600
    assert p.read_text(encoding="utf-8") == "가b"


def test_replace_success_keeps_dst_mode(tmp_path: Path) -> None:
    src, dst = tmp_path / "new.tmp", tmp_path / "live.db"
    src.write_bytes(b"new")
    os.chmod(src, 0o600)
    dst.write_bytes(b"old")
    os.chmod(dst, 0o640)  # a dashboard user was granted read
    out = replace_file_with_retry(src, dst, tmp_path / "live_TAG.db", sleep=lambda s: None)
    assert out == ReplaceOutcome(replaced=True, final_path=dst, fallback_path=None, method="rename")
    assert dst.read_bytes() == b"new" and not src.exists()
    assert mode(dst) == 0o640


def test_replace_without_dst_gets_0600(tmp_path: Path) -> None:
    src, dst = tmp_path / "new.tmp", tmp_path / "live.db"
    src.write_bytes(b"new")
    os.chmod(src, 0o644)
    out = replace_file_with_retry(src, dst, tmp_path / "fb.db", sleep=lambda s: None)
    assert out.replaced and mode(dst) == 0o600


def test_replace_retries_then_succeeds(tmp_path: Path) -> None:
    src, dst = tmp_path / "new.tmp", tmp_path / "live.db"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    calls: list[tuple[Path, Path]] = []
    sleeps: list[float] = []

    def flaky(a: Path, b: Path) -> None:
        calls.append((a, b))
        if len(calls) < 3:
            raise PermissionError(13, "locked by another process")
        os.replace(a, b)

    out = replace_file_with_retry(src, dst, tmp_path / "fb.db", replace=flaky, sleep=sleeps.append)
    assert out.replaced and out.fallback_path is None
    assert len(calls) == 3 and sleeps == [0.5, 0.5]
    assert dst.read_bytes() == b"new"


def test_replace_falls_back_to_rename(tmp_path: Path) -> None:
    src, dst, fb = tmp_path / "new.tmp", tmp_path / "live.db", tmp_path / "live_TAG.db"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    attempts: list[Path] = []
    logs: list[str] = []

    def locked_dst(a: Path, b: Path) -> None:
        attempts.append(b)
        if b == dst:
            raise PermissionError(13, "Access is denied")
        os.replace(a, b)

    out = replace_file_with_retry(
        src, dst, fb, tries=5, replace=locked_dst, sleep=lambda s: None, log=logs.append
    )
    assert not out.replaced
    assert out.final_path == dst and out.fallback_path == fb
    assert attempts.count(dst) == 5
    assert dst.read_bytes() == b"old"  # live DB untouched
    assert fb.read_bytes() == b"new" and not src.exists()
    assert out.error is not None and "Access is denied" in out.error
    assert len(logs) == 1 and str(fb) in logs[0] and "holders" in logs[0]


def test_replace_falls_back_to_copy_when_rename_fails_too(tmp_path: Path) -> None:
    src, dst, fb = tmp_path / "new.tmp", tmp_path / "live.db", tmp_path / "live_TAG.db"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    copies: list[tuple[Path, Path]] = []

    def always_fails(a: Path, b: Path) -> None:
        raise OSError(16, "Device or resource busy")

    def copy(a: Path, b: Path) -> object:
        copies.append((a, b))
        b.write_bytes(a.read_bytes())
        return b

    out = replace_file_with_retry(
        src, dst, fb, tries=2, replace=always_fails, copy=copy, sleep=lambda s: None
    )
    assert not out.replaced and out.fallback_path == fb
    assert copies == [(src, fb)]
    assert fb.read_bytes() == b"new" and dst.read_bytes() == b"old"


def test_replace_when_everything_fails_reports_where_the_new_db_is(tmp_path: Path) -> None:
    src, dst, fb = tmp_path / "new.tmp", tmp_path / "live.db", tmp_path / "live_TAG.db"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")

    def fails(a: Path, b: Path) -> object:
        raise PermissionError(13, "denied")

    out = replace_file_with_retry(
        src, dst, fb, tries=1, replace=fails, copy=fails, sleep=lambda s: None
    )
    assert not out.replaced and out.fallback_path is None
    assert out.error is not None and str(src) in out.error
    assert src.read_bytes() == b"new" and dst.read_bytes() == b"old" and not fb.exists()


def test_find_lock_holders_names_a_process_holding_the_file(tmp_path: Path) -> None:
    target = tmp_path / "held.db"
    target.write_bytes(b"x")
    code = (
        "import sys, time\n"
        "f = open(sys.argv[1], 'rb')\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        holders = []
        for _ in range(50):
            holders = find_lock_holders(target)
            if holders:
                break
            time.sleep(0.05)
        assert any(f"(PID {proc.pid})" in h for h in holders), holders
    finally:
        proc.kill()
        proc.wait()
    assert find_lock_holders(tmp_path / "nobody-has-this") == []
