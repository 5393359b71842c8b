"""The headless CLI: exit codes, messages, kill-and-resume of a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salesmap_tui.cli import main
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import (
    SNAPSHOT_TABLES,
    dataset_of,
    expected_records,
    snapshot_of,
    table_records,
    workspace_options,
)


def cli_args(root: Path, server: SandboxServer, *extra: str) -> list[str]:
    return ["snapshot", *workspace_options(root, server), "--max-wait", "0.05", *extra]


@pytest.fixture
def env_token(monkeypatch, sandbox):
    monkeypatch.setenv("SALESMAP_TOKEN", sandbox.token)
    return sandbox.token


def test_snapshot_command_runs_and_prints_lines(tmp_path, sandbox, env_token, capsys):
    code = main(cli_args(tmp_path, sandbox))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "snapshot run" in out.out and "done" in out.out
    assert env_token not in out.out + out.err
    assert (tmp_path / "salesmap_latest.db").is_file()


def test_quiet_prints_errors_only(tmp_path, sandbox, env_token, capsys):
    assert main([*cli_args(tmp_path, sandbox), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    sandbox.set_faults("503:1:burst=99:path=team")
    assert main([*cli_args(tmp_path, sandbox), "--quiet"]) == 1
    printed = capsys.readouterr()
    # errors go to stderr (issue 12): stdout stays empty, the failure is said once
    assert printed.out == ""
    err = printed.err
    assert "phase:" not in err and "checkpoint saved" not in err
    assert "max_retries_exceeded" in err and "failed" in err
    assert err.count("max_retries_exceeded") == 1
    # the summary is several real lines (it printed a literal "\n" between its parts)
    assert "\\n" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) >= 3 and "(exit 1)" in lines[0]
    assert all(line.startswith("  ") for line in lines[1:])


def test_no_token_exits_2(tmp_path, sandbox, monkeypatch, capsys):
    monkeypatch.delenv("SALESMAP_TOKEN", raising=False)
    assert main(cli_args(tmp_path, sandbox)) == 2
    err = capsys.readouterr().err
    assert "SALESMAP_TOKEN" in err and "Traceback" not in err
    assert not (tmp_path / "salesmap_latest.db").exists()


def test_rejected_token_exits_2_and_names_no_token(tmp_path, sandbox, monkeypatch, capsys):
    monkeypatch.setenv("SALESMAP_TOKEN", "wrong-secret-token-123")
    assert main(cli_args(tmp_path, sandbox)) == 2
    out = capsys.readouterr()
    assert "token rejected" in (out.out + out.err).lower()
    assert "wrong-secret-token-123" not in out.out + out.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"wrong-secret-token-123" not in path.read_bytes(), path


def test_unknown_resume_run_tag_exits_2(tmp_path, sandbox, env_token, capsys):
    code = main([*cli_args(tmp_path, sandbox), "--resume-run-tag", "20260101T000000Z-abcd"])
    assert code == 2
    assert "20260101T000000Z-abcd" in capsys.readouterr().err


def test_resume_with_nothing_to_resume_starts_fresh(tmp_path, sandbox, env_token, capsys):
    assert main([*cli_args(tmp_path, sandbox), "--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().out


def test_corrupt_checkpoint_exits_2_and_is_kept(tmp_path, sandbox, env_token, capsys):
    cp_dir = tmp_path / "logs" / "checkpoints"
    cp_dir.mkdir(parents=True)
    bad = cp_dir / "checkpoint_20260101T000000Z-abcd.json"
    bad.write_text('{"run_tag": "20260101T000000Z-ab')
    code = main([*cli_args(tmp_path, sandbox), "--resume-run-tag", "20260101T000000Z-abcd"])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert bad.read_text() == '{"run_tag": "20260101T000000Z-ab'


def test_garbage_history_line_is_tolerated(tmp_path, sandbox, env_token, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run_history.jsonl").write_text("this is not json\n")
    assert main(cli_args(tmp_path, sandbox)) == 0
    capsys.readouterr()
    assert main(["history", "--log-dir", str(logs), "--json"]) == 0
    out = capsys.readouterr()
    records = json.loads(out.out)
    assert [r["status"] for r in records] == ["running", "done"]
    assert "line 1" in out.err
    assert (logs / "run_history.jsonl").read_text().startswith("this is not json\n")


def test_negative_keep_backups_exits_2(tmp_path, sandbox, env_token, capsys):
    assert main([*cli_args(tmp_path, sandbox), "--keep-backups", "-1"]) == 2
    assert "keep-backups" in capsys.readouterr().err


def test_db_path_in_missing_directory_exits_2(tmp_path, sandbox, env_token, capsys):
    args = cli_args(tmp_path, sandbox)
    args[args.index("--db-path") + 1] = str(tmp_path / "nope" / "x.db")
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_plain_http_to_remote_host_is_refused(tmp_path, sandbox, env_token, capsys):
    args = cli_args(tmp_path, sandbox)
    args[args.index("--base-url") + 1] = "http://example.com/api/v2"
    assert main(args) == 2
    assert "in clear" in capsys.readouterr().err


def test_second_run_while_lock_held_exits_2_naming_pid(tmp_path, sandbox, env_token, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(tmp_path / "salesmap_latest.db.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert main(cli_args(tmp_path, sandbox)) == 2
        assert str(holder.pid) in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


# --- a real process, SIGKILLed mid-crawl, then resumed ----------------------------------------


def _spawn(args: list[str], token: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SALESMAP_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-m", "salesmap_tui.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after_checkpoint(root: Path, proc: subprocess.Popen[str], checkpoints: int) -> None:
    cp_dir = root / "logs" / "checkpoints"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {proc.stderr.read()}")
        log = next(iter((root / "logs").glob("snapshot_*.log")), None)
        if log and cp_dir.exists() and log.read_text().count("checkpoint saved") >= checkpoints:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_resume_then_resume_run_tag(tmp_path):
    cfg = SandboxConfig(seed=11, scale=300, forms=3, latency_ms=8, rate_limit=100_000)
    with SandboxServer(cfg) as server:
        base = cli_args(tmp_path, server, "--checkpoint-interval", "2", "--concurrency", "2")
        first = _spawn(base, server.token)
        _kill_after_checkpoint(tmp_path, first, 3)
        assert not (tmp_path / "salesmap_latest.db").exists()
        resumed = _spawn([*base, "--resume"], server.token)
        assert resumed.wait(120) == 0, resumed.stderr.read() if resumed.stderr else ""
        data = dataset_of(cfg)
        db = tmp_path / "salesmap_latest.db"
        for table in SNAPSHOT_TABLES:
            assert table_records(db, table) == expected_records(data, table), table
        history = [
            json.loads(line)
            for line in (tmp_path / "logs" / "run_history.jsonl").read_text().splitlines()
        ]
        tags = {r["run_tag"] for r in history}
        assert len(tags) == 1
        assert [r["status"] for r in history] == ["running", "interrupted", "running", "done"]

        # another killed run, this time resumed by its tag, after the seed's manual recovery:
        # the checkpoint's .json is lost but its .json.tmp is copied back
        second = _spawn(base, server.token)
        _kill_after_checkpoint_of_new_run(tmp_path, second, tags)
        new_tag = _newest_unfinished_tag(tmp_path)
        cp = tmp_path / "logs" / "checkpoints" / f"checkpoint_{new_tag}.json"
        tmp_copy = cp.with_name(cp.name + ".tmp")
        shutil.copyfile(cp, tmp_copy)
        cp.unlink()
        shutil.copyfile(tmp_copy, cp)
        again = _spawn([*base, "--resume-run-tag", new_tag], server.token)
        assert again.wait(120) == 0, again.stderr.read() if again.stderr else ""
        for table in SNAPSHOT_TABLES:
            assert table_records(db, table) == expected_records(data, table), table
        # one backup, of the first run's snapshot, named by its run tag (the data it holds)
        backups = sorted((tmp_path / "backups").glob("*.db.gz"))
        assert [b.name for b in backups] == [f"salesmap_latest_{next(iter(tags))}.db.gz"]


def _kill_after_checkpoint_of_new_run(root: Path, proc, old_tags: set[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        for log in (root / "logs").glob("snapshot_*.log"):
            tag = log.stem.removeprefix("snapshot_")
            if tag not in old_tags and log.read_text().count("checkpoint saved") >= 3:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def _newest_unfinished_tag(root: Path) -> str:
    for cp in sorted((root / "logs" / "checkpoints").glob("checkpoint_*.json"), reverse=True):
        data = json.loads(cp.read_text())
        if not data.get("done"):
            return str(data["run_tag"])
    raise AssertionError("no unfinished checkpoint")


def test_history_text_shows_last_state_per_run(tmp_path, sandbox, env_token, capsys):
    assert main(cli_args(tmp_path, sandbox)) == 0
    capsys.readouterr()
    assert main(["history", "--log-dir", str(tmp_path / "logs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # header + one run
    assert " done " in lines[1] and "running" not in lines[1]


def test_restore_command_round_trip(tmp_path, sandbox, env_token, capsys, monkeypatch):
    paths = ["--db-path", str(tmp_path / "salesmap_latest.db"), "--log-dir", str(tmp_path / "logs")]
    paths += ["--backup-dir", str(tmp_path / "backups")]
    assert main(cli_args(tmp_path, sandbox)) == 0
    db = tmp_path / "salesmap_latest.db"
    first = snapshot_of(db)
    sandbox.set_day(2)
    assert main(cli_args(tmp_path, sandbox)) == 0
    assert snapshot_of(db) != first
    backup = next((tmp_path / "backups").glob("*.db.gz"))
    capsys.readouterr()
    # not at a terminal and no --yes: refused, nothing changed
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    before = (tmp_path / "salesmap_latest.db").read_bytes()
    assert main(["restore", str(backup), *paths]) == 2
    assert (tmp_path / "salesmap_latest.db").read_bytes() == before
    assert main(["restore", str(backup), "--yes", *paths]) == 0
    assert snapshot_of(db) == first
    # the DB it replaced was backed up first
    assert len(list((tmp_path / "backups").glob("*.db.gz"))) == 2
    records = [
        json.loads(x)
        for x in (tmp_path / "logs" / "run_history.jsonl").read_text().split("\n")
        if x
    ]
    assert records[-1]["kind"] == "restore" and records[-1]["status"] == "done"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_checkpoint_and_exits_with_its_code(tmp_path, sig, code):
    cfg = SandboxConfig(seed=5, scale=300, forms=2, latency_ms=8, rate_limit=100_000)
    with SandboxServer(cfg) as server:
        base = cli_args(tmp_path, server, "--checkpoint-interval", "2", "--concurrency", "2")
        proc = _spawn(base, server.token)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = next(iter((tmp_path / "logs").glob("snapshot_*.log")), None)
            if log and log.read_text().count("checkpoint saved") >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(sig)
        assert proc.wait(60) == code
        assert "checkpoint" in (proc.stderr.read() if proc.stderr else "")
        assert not (tmp_path / "salesmap_latest.db").exists()
        history = [
            json.loads(line)
            for line in (tmp_path / "logs" / "run_history.jsonl").read_text().splitlines()
        ]
        assert history[-1]["status"] == "interrupted"
        resumed = _spawn([*base, "--resume"], server.token)
        assert resumed.wait(120) == 0
        data = dataset_of(cfg)
        for table in SNAPSHOT_TABLES:
            assert table_records(tmp_path / "salesmap_latest.db", table) == expected_records(
                data, table
            )


def test_checkpoints_lists_another_workspaces_run_as_not_resumable_here(
    tmp_path, sandbox, env_token, capsys, monkeypatch
):
    import sqlite3

    from salesmap_tui.config import Settings
    from salesmap_tui.engine.checkpoint import CheckpointManager
    from salesmap_tui.engine.runs.resume import new_checkpoint
    from salesmap_tui.engine.snapshot_db import start_run_info

    base = Settings(db_path=tmp_path / "salesmap_latest.db", log_dir=tmp_path / "logs")
    mine = base.replace(base_url=sandbox.base_url, token=sandbox.token)
    others = {
        "token": base.replace(base_url=sandbox.base_url, token="someone-else"),
        "url": base.replace(base_url="https://api.example.invalid/v2", token=sandbox.token),
    }
    tags = {}
    for label, s in [("mine", mine), *others.items()]:
        cp = new_checkpoint(s)
        cp.phase = "crawl"
        conn = sqlite3.connect(cp.temp_db_path)
        start_run_info(conn, cp.run_tag, cp.started_at, s.base_url, "test")
        conn.close()
        CheckpointManager(s.checkpoint_dir).save(cp)
        tags[label] = cp.run_tag
    monkeypatch.setenv("SALESMAP_BASE_URL", sandbox.base_url)
    listing = ["checkpoints", "--log-dir", str(tmp_path / "logs")]
    assert main(listing) == 0
    lines = {
        line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()
    }
    assert "resumable: salesmap-tui snapshot --resume-run-tag" in lines[tags["mine"]]
    assert (
        "not resumable here" in lines[tags["token"]] and "another API token" in lines[tags["token"]]
    )
    assert "not resumable here" in lines[tags["url"]] and "base URL" in lines[tags["url"]]
    # without the token only the base URL can be told apart (and nothing is guessed)
    monkeypatch.delenv("SALESMAP_TOKEN")
    assert main(listing) == 0
    lines = {
        line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()
    }
    assert "resumable:" in lines[tags["token"]] and "base URL" in lines[tags["url"]]
