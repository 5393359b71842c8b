"""Secrets and privacy: the token never leaves the request header; CRM files are owner-only;
plain http:// only to loopback.

The leak scan of every written file and every printed line runs after each test of this
directory (conftest.py); the tests here add servers that echo the token back in every place an
answer can carry text, and check file modes under a umask of 0 (so nothing is private by luck).
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesmap_tui.cli import main
from salesmap_tui.cli.printer import EventPrinter
from salesmap_tui.config import Settings
from salesmap_tui.engine.api import restore_backup, verify_backup
from salesmap_tui.engine.runs.snapshot import run_snapshot
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import Recorder, make_settings, run
from .conftest import SECRET, TALLY, leaks_in_tree


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=3, scale=30, forms=3, rate_limit=100_000, token=SECRET)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: a file created without an explicit mode would come out world-writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def modes_under(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def assert_private(root: Path) -> None:
    modes = modes_under(root)
    wrong = {}
    for name, mode in modes.items():
        want = "0o700" if (root / name).is_dir() else "0o600"
        if mode != want:
            wrong[name] = mode
    TALLY["modes"] += len(modes)
    assert not wrong, wrong


# --- file modes ----------------------------------------------------------------------------------


def test_everything_a_run_writes_is_owner_only(
    tmp_path: Path, sandbox: SandboxServer, open_umask: None
) -> None:
    root = tmp_path / "work"
    root.mkdir(mode=0o700)
    settings = make_settings(root, sandbox, checkpoint_interval=1)
    assert run(settings)[0].exit_code == 0  # creates logs/, checkpoints/, the live DB
    assert run(settings)[0].exit_code == 0  # a backup in backups/
    sandbox.set_faults("503:path=team")
    failed, _ = run(settings)  # a kept temp DB and an unfinished checkpoint
    sandbox.set_faults("")
    assert failed.exit_code == 1 and Path(failed.temp_db_path or "").is_file()
    assert run(settings.replace(webform_only=True))[0].exit_code == 0
    names = set(modes_under(root))
    assert {"logs", "logs/checkpoints", "backups", "salesmap_latest.db"} <= names
    assert any(n.endswith(".tmp") for n in names)
    assert any(n.endswith(".db.gz") for n in names)
    assert any(n.startswith("logs/snapshot_") for n in names)
    assert "logs/run_history.jsonl" in names
    assert_private(root)
    # a restore: the verified copy and the safety backup are private too
    (backup, *_) = sorted(settings.backup_dir.glob("*.db.gz"))
    restore_backup(settings, verify_backup(settings, backup))
    assert_private(root)


def test_nested_missing_directories_are_created_0700(
    tmp_path: Path, sandbox: SandboxServer, open_umask: None
) -> None:
    settings = make_settings(
        tmp_path,
        sandbox,
        log_dir=tmp_path / "a" / "b" / "logs",
        checkpoint_dir_option=tmp_path / "c" / "d",
        backup_dir=tmp_path / "e" / "f" / "g",
    )
    assert run(settings)[0].exit_code == 0
    assert run(settings)[0].exit_code == 0
    assert (tmp_path / "e" / "f" / "g").is_dir()
    assert_private(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o600, 0o660])
def test_replaced_live_db_keeps_its_mode(
    mode: int, tmp_path: Path, sandbox: SandboxServer, open_umask: None
) -> None:
    settings = make_settings(tmp_path, sandbox)
    assert run(settings)[0].exit_code == 0
    os.chmod(settings.db_path, mode)
    inode = settings.db_path.stat().st_ino
    result, _ = run(settings)
    assert result.exit_code == 0 and result.replaced
    assert settings.db_path.stat().st_ino != inode  # really a new file, swapped in
    assert stat.S_IMODE(settings.db_path.stat().st_mode) == mode
    # the web-form pass in place, and a restore, keep it as well
    assert run(settings.replace(webform_only=True))[0].exit_code == 0
    assert stat.S_IMODE(settings.db_path.stat().st_mode) == mode
    (backup, *_) = sorted(settings.backup_dir.glob("*.db.gz"))
    restore_backup(settings, verify_backup(settings, backup))
    assert stat.S_IMODE(settings.db_path.stat().st_mode) == mode
    # the backups of a group-readable DB are still owner-only
    assert_private(settings.backup_dir)
    TALLY["modes"] += 1


# --- the token -----------------------------------------------------------------------------------

ECHO = f"Bearer {SECRET}"


def echoing_transport(status: int, body: bytes, headers: dict[str, str]) -> httpx.MockTransport:
    """A server that answers every request with the caller's own Authorization header in it."""

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        assert auth == ECHO  # the token does travel, in the header, as it must
        text = body.replace(b"{AUTH}", auth.encode())
        hdrs = {k: v.replace("{AUTH}", auth) for k, v in headers.items()}
        return httpx.Response(status, content=text, headers=hdrs)

    return httpx.MockTransport(handler)


def _env(reason: str) -> bytes:
    return json.dumps({"success": False, "message": "Error", "reason": reason}).encode()


ECHOES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "400-reason": (400, _env("bad header {AUTH}"), {}),
    "401-reason": (401, _env("유효하지 않은 토큰입니다: {AUTH}"), {}),
    "403-reason-list": (403, json.dumps({"success": False, "reason": ["plan", "{AUTH}"]}).encode(),
                        {}),
    "404-html": (404, b"<html><body>no route for {AUTH}</body></html>", {}),
    "429-reason": (429, _env("0.001초 후 재시도해주세요. {AUTH}"), {"Retry-After": "{AUTH}"}),
    "500-message": (500, json.dumps({"message": "{AUTH}"}).encode(), {}),
    "503-error-key": (503, json.dumps({"error": "x" * 480 + "{AUTH}"}).encode(), {}),
    "200-html": (200, b"<html>{AUTH}</html>", {"content-type": "text/html"}),
    "200-error-envelope": (200, _env("{AUTH}"), {}),
    "200-not-envelope": (200, json.dumps({"token": "{AUTH}"}).encode(), {}),
    "302-redirect": (302, b"moved: {AUTH}", {"Location": "http://evil.example/?t={AUTH}"}),
    "200-bad-cursor-type": (200, json.dumps({"success": True, "data": {
        "organizationList": [{"id": "1"}], "nextCursor": {"echo": "{AUTH}"}}}).encode(), {}),
}  # fmt: skip


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_a_server_echoing_the_token_never_gets_it_written_or_printed(
    echo: str, tmp_path: Path
) -> None:
    status, body, headers = ECHOES[echo]
    settings = Settings(
        db_path=tmp_path / "live.db",
        log_dir=tmp_path / "logs",
        backup_dir=tmp_path / "backups",
        base_url="https://salesmap.invalid/api/v2",
        token=SECRET,
        min_interval=0,
        max_wait=0.01,
        backoff_base=0.001,
        backoff_429=0.001,
    )
    printed = io.StringIO()
    printer = EventPrinter(out=printed)
    rec = Recorder()

    def sink(event: Any) -> None:
        rec(event)
        printer(event)

    result = run_snapshot(
        settings,
        sink,
        threading.Event(),
        transport_factory=lambda: echoing_transport(status, body, headers),
    )
    assert result.exit_code in (1, 2)
    assert result.errors
    everything = printed.getvalue() + repr(rec.events) + repr(result) + result.message
    assert SECRET not in everything
    assert leaks_in_tree(tmp_path) == []


def test_the_leak_scan_finds_a_planted_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The scan that runs after every test can fail: plain, gzip, UTF-16 and escaped copies."""
    import gzip

    planted = tmp_path_factory.mktemp("planted")
    (planted / "clean.log").write_text("nothing here")
    (planted / "plain.log").write_text(f"x {SECRET} y")
    (planted / "b.db.gz").write_bytes(gzip.compress(b"SQLite " + SECRET.encode()))
    (planted / "wide.txt").write_bytes(SECRET.encode("utf-16-le"))
    found = sorted(Path(p).name for p in leaks_in_tree(planted))
    assert found == ["b.db.gz", "plain.log", "wide.txt"]


def test_settings_and_client_reprs_hide_the_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sandbox)
    assert SECRET not in repr(settings) and SECRET not in str(settings.public_dict())
    assert SECRET not in repr(sandbox) and SECRET not in repr(sandbox.config)


# --- plain http only to loopback -----------------------------------------------------------------

REFUSED = [
    "http://example.com/api/v2",
    "http://10.0.0.1/v2",
    "http://[::2]/v2",
    "http://192.168.1.10:8765/v2",
    "http://0.0.0.0:8765/v2",
    "http://127.0.0.1.nip.io/v2",
    "http://localhost.evil.example/v2",
    "http://127.0.0.1@evil.example/v2",
    "http://evil.example#@127.0.0.1/v2",
    "ftp://127.0.0.1/v2",
    "127.0.0.1:8765/v2",
]


@pytest.mark.parametrize("url", REFUSED)
def test_plain_http_to_anything_but_loopback_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("SALESMAP_TOKEN", SECRET)
    args = ["snapshot", "--db-path", str(tmp_path / "x.db"), "--log-dir", str(tmp_path / "logs"),
            "--backup-dir", str(tmp_path / "b")]  # fmt: skip
    assert main([*args, "--base-url", url]) == 2
    err = capsys.readouterr().err
    assert "--base-url" in err or "in clear" in err, err
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
    # the environment variable is held to the same rule
    monkeypatch.setenv("SALESMAP_BASE_URL", url)
    assert main(args) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("bind", "url_host"),
    [("127.0.0.1", "localhost"), ("127.0.0.5", "127.0.0.5"), ("::1", "[::1]")],
)
def test_plain_http_to_loopback_is_accepted(
    bind: str, url_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    cfg = SandboxConfig(seed=3, scale=30, forms=2, rate_limit=100_000, token=SECRET)
    with SandboxServer(cfg, host=bind) as server:
        monkeypatch.setenv("SALESMAP_TOKEN", SECRET)
        url = f"http://{url_host}:{server.port}/v2"
        code = main(["snapshot", "--db-path", str(tmp_path / "x.db"), "--log-dir",
                     str(tmp_path / "logs"), "--backup-dir", str(tmp_path / "b"),
                     "--base-url", url, "--min-interval", "0"])  # fmt: skip
        out = capsys.readouterr()
        assert code == 0, out.err
        assert url in out.out
        assert server.stats()["requests"] > 0
