"""Cron and monitoring, the way a crontab runs them: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.engine.history import append_history, make_record
from salesmap_tui.sandbox import SandboxServer

SCRIPT = shutil.which("salesmap-tui", path=str(Path(sys.executable).parent))
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX shell and mode bits")


def cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the salesmap-tui console script is not installed in this venv"
    cwd.mkdir(parents=True, exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("SALESMAP_")}
    full.update(env or {})
    return subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fast(server: SandboxServer) -> list[str]:
    return ["--base-url", server.base_url, "--min-interval", "0", "--max-wait", "0.05"]


def config_text(server: SandboxServer) -> str:
    return (
        'db_path = "data/crm.db"\n'
        'log_dir = "data/logs"\n'
        'backup_dir = "data/backups"\n'
        'token_file = "token"\n'
        f'base_url = "{server.base_url}"\n'
        "min_interval = 0\n"
        "max_wait = 0.05\n"
    )


def test_options_before_the_subcommand_are_honoured(tmp_path, sandbox):
    work = tmp_path / "work"
    (work / "dash").mkdir(parents=True)
    paths = ["--db-path", "dash/crm.db", "--log-dir", "dash/logs", "--backup-dir", "dash/bk"]
    done = cli(
        [*paths, *fast(sandbox), "--quiet", "snapshot"],
        work,
        {"SALESMAP_TOKEN": sandbox.token},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # --quiet before the subcommand counts too
    assert (work / "dash" / "crm.db").is_file()
    assert (work / "dash" / "logs" / "run_history.jsonl").is_file()
    assert not (work / "salesmap_latest.db").exists() and not (work / "logs").exists()


@posix_only
def test_config_file_from_another_working_directory(tmp_path, sandbox):
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "salesmap-tui.toml").write_text(config_text(sandbox))
    token = conf / "token"
    token.write_text(sandbox.token + "\n")
    token.chmod(0o600)
    env = {"SALESMAP_TUI_CONFIG": str(conf / "salesmap-tui.toml")}
    done = cli(["snapshot"], tmp_path / "cron-home", env)
    assert done.returncode == 0, done.stderr
    assert (conf / "data" / "crm.db").is_file()
    assert not (tmp_path / "cron-home" / "salesmap_latest.db").exists()
    # history and status from a third folder, naming the file with --config, see the same run
    other = tmp_path / "elsewhere"
    hist = cli(["history", "--json", "--config", str(conf / "salesmap-tui.toml")], other)
    assert hist.returncode == 0, hist.stderr
    records = json.loads(hist.stdout)
    assert records[-1]["status"] == "done"
    assert Path(records[-1]["db_path"]) == (conf / "data" / "crm.db").resolve()
    status = cli(["--config", str(conf / "salesmap-tui.toml"), "status"], other)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("OK:")


@posix_only
def test_a_world_readable_token_file_is_refused_before_any_request(tmp_path, sandbox):
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "salesmap-tui.toml").write_text(config_text(sandbox))
    token = conf / "token"
    token.write_text(sandbox.token + "\n")
    token.chmod(0o644)
    sandbox.reset_stats()
    done = cli(["snapshot"], conf)  # ./salesmap-tui.toml is found in the working directory
    assert done.returncode == 2
    assert str(token.resolve()) in done.stderr and "chmod 600" in done.stderr
    assert sandbox.token not in done.stdout + done.stderr
    assert sandbox.stats()["requests"] == 0
    assert not (conf / "data" / "crm.db").exists()


def test_base_url_not_ending_in_v2_exits_2_before_any_request(tmp_path, sandbox):
    sandbox.reset_stats()
    v1 = sandbox.base_url.removesuffix("/v2") + "/v1"
    done = cli(["snapshot", "--base-url", v1], tmp_path, {"SALESMAP_TOKEN": sandbox.token})
    assert done.returncode == 2
    assert "/v2" in done.stderr and v1 in done.stderr
    assert sandbox.stats()["requests"] == 0
    assert not (tmp_path / "salesmap_latest.db").exists()


def test_status_after_a_good_and_after_a_failed_run(tmp_path, sandbox):
    env = {"SALESMAP_TOKEN": sandbox.token}
    nothing = cli(["status"], tmp_path, env)
    assert nothing.returncode == 1 and nothing.stdout.startswith("FAIL")
    assert cli(["snapshot", *fast(sandbox)], tmp_path, env).returncode == 0
    good = cli(["status", "--json"], tmp_path, env)
    assert good.returncode == 0, good.stdout
    report = json.loads(good.stdout)
    assert set(report) >= {
        "run_tag",
        "status",
        "exit_code",
        "finished_at",
        "age_s",
        "live_db",
        "tables",
    }
    assert report["status"] == "done" and report["exit_code"] == 0
    assert 0 <= report["age_s"] < 600
    live = report["live_db"]
    assert live["run_tag"] == report["run_tag"]
    assert live["bytes"] == (tmp_path / "salesmap_latest.db").stat().st_size
    assert report["tables"]["organization"]["rows"] > 0
    # the same good run is too old for --max-age 0
    assert cli(["status", "--max-age", "0"], tmp_path, env).returncode == 1

    sandbox.set_faults("503:1:burst=99:path=team")
    failed = cli(["snapshot", *fast(sandbox)], tmp_path, env)
    assert failed.returncode == 1
    assert "max_retries_exceeded" in failed.stderr  # errors on stderr
    assert failed.stderr.count("max_retries_exceeded") == 1  # said once
    bad = cli(["--json", "status"], tmp_path, env)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["status"] == "failed" and report["exit_code"] == 1
    assert report["live_db"]["run_tag"] != report["run_tag"]  # the good run is still live
    text = cli(["status"], tmp_path, env)
    assert text.returncode == 1 and text.stdout.startswith("FAIL") and "exit 1" in text.stdout


def test_status_reads_old_records_without_exit_code(tmp_path):
    history = tmp_path / "logs" / "run_history.jsonl"
    now = "2099-01-01T00:00:00+00:00"  # finished "in the future": age is negative, not too old
    webform_failed = {"status": "failed", "forms": 1, "new_rows": 0, "dropped": 0}
    record: dict[str, Any] = make_record(
        run_tag="20990101T000000Z-aaaa", status="done", finished_at=now, webform=webform_failed
    )
    record.pop("exit_code", None)
    append_history(history, record)
    done = cli(["status", "--json"], tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stdout)["exit_code"] == 4  # done, but the web-form pass failed


def test_history_text_shows_each_runs_exit_code(tmp_path):
    history = tmp_path / "logs" / "run_history.jsonl"
    wf_failed = {"status": "failed", "forms": 1, "new_rows": 0, "dropped": 0}
    append_history(history, make_record(run_tag="20260101T000000Z-aaaa", status="done"))
    append_history(
        history, make_record(run_tag="20260102T000000Z-bbbb", status="done", webform=wf_failed)
    )
    append_history(
        history, make_record(run_tag="20260103T000000Z-cccc", status="fallback", exit_code=3)
    )
    done = cli(["history"], tmp_path)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[-1] == "exit"
    assert [row.split()[-1] for row in rows] == ["0", "4", "3"]


def test_snapshot_json_prints_every_event_as_a_json_line(tmp_path, sandbox):
    env = {"SALESMAP_TOKEN": sandbox.token}
    done = cli(["--json", "snapshot", *fast(sandbox)], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(isinstance(x, dict) and "t" in x and "event" in x for x in lines)
    assert lines[0]["event"] == "run_started"
    assert lines[-1]["event"] == "run_finished"
    assert lines[-1]["result"]["exit_code"] == 0
    assert {"phase_changed", "endpoint_progress", "checkpoint_saved"} <= {x["event"] for x in lines}
    assert sandbox.token not in done.stdout
    # the same objects as the run's events file (each stamped with its own time)
    (events_file,) = (tmp_path / "logs").glob("snapshot_*.events.jsonl")
    in_file = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [{k: v for k, v in x.items() if k != "t"} for x in lines] == [
        {k: v for k, v in x.items() if k != "t"} for x in in_file
    ]


def _big_history(log_dir: Path, n: int = 3000) -> None:
    for i in range(n):
        append_history(
            log_dir / "run_history.jsonl",
            make_record(run_tag=f"20260101T{i:06d}Z-abcd", status="done", errors=["x" * 200]),
        )


@posix_only
@pytest.mark.parametrize("command", ["history --json", "history", "--json history"])
def test_a_closed_pipe_ends_quietly(tmp_path, command):
    _big_history(tmp_path / "logs")
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; '{SCRIPT}' {command} | head -c 1 >/dev/null"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stderr == ""
    assert done.returncode == 0


@posix_only
def test_snapshot_json_into_a_closed_pipe_still_finishes_the_run(tmp_path, sandbox):
    script = (
        f"'{SCRIPT}' snapshot --json {' '.join(fast(sandbox))} | head -1 >/dev/null; "
        'exit "${PIPESTATUS[0]}"'
    )
    env = {**os.environ, "SALESMAP_TOKEN": sandbox.token}
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "salesmap_latest.db").is_file()


def test_no_subcommand_without_a_terminal_exits_2_at_once(tmp_path):
    done = cli([], tmp_path, timeout=30)
    assert done.returncode == 2
    assert "salesmap-tui snapshot" in done.stderr


def test_doctor_passes_against_the_sandbox_and_names_what_fails(tmp_path, sandbox):
    env = {"SALESMAP_TOKEN": sandbox.token}
    good = cli(["doctor", "--base-url", sandbox.base_url], tmp_path, env)
    assert good.returncode == 0, good.stdout
    lines = good.stdout.splitlines()
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines]
    assert names == [
        "config",
        "options",
        "token",
        "db path",
        "log dir",
        "checkpoint dir",
        "backup dir",
        "lock",
        "disk",
    ]
    assert all(line.startswith("ok ") for line in lines)
    assert list(tmp_path.iterdir()) == []  # doctor creates nothing
    bad = cli(
        ["doctor", "--base-url", sandbox.base_url], tmp_path, {"SALESMAP_TOKEN": "wrong-token-x"}
    )
    assert bad.returncode == 2
    assert "FAIL token: rejected (401)" in bad.stdout
    assert "wrong-token-x" not in bad.stdout
    closed = sandbox.base_url.rsplit(":", 1)[0] + ":9/v2"
    refused = cli(["doctor", "--base-url", closed], tmp_path, env)
    assert refused.returncode == 2 and "connection refused" in refused.stdout
