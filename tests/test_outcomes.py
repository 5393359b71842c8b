"""Truthful outcomes (issue 9, item 6): the exit code, the summary and the history record agree,
every error is counted, and a signal stops a run at once even while a request hangs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .test_cli import cli_args


def history(root: Path) -> list[dict[str, object]]:
    path = root / "logs" / "run_history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_hanging_request_at_once(tmp_path: Path, sig: int, code: int) -> None:
    """Every deal request hangs; --request-timeout is 60 s. The signal must end the run with a
    checkpoint long before that, and the summary and the record must carry the signal's code."""
    cfg = SandboxConfig(seed=5, scale=60, forms=2, rate_limit=0, faults="hang:1:path=deal")
    with SandboxServer(cfg) as server:
        args = cli_args(tmp_path, server, "--request-timeout", "60", "--checkpoint-interval", "1")
        env = {**os.environ, "SALESMAP_TOKEN": server.token}
        proc = subprocess.Popen(
            [sys.executable, "-m", "salesmap_tui.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        log: Path | None = None
        while time.monotonic() < deadline:
            log = next(iter((tmp_path / "logs").glob("snapshot_*.log")), None)
            if log and "organization: done" in log.read_text():
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise AssertionError("the run never got going")
        time.sleep(0.5)  # the deal request is in flight, hanging
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    print(f"signal {sig}: exit {proc.returncode} {took:.2f} s after the signal")
    assert proc.returncode == code, err
    assert took < 10, f"took {took:.1f} s: the run waited for the hanging request"
    assert f"(exit {code})" in out + err, out + err
    last = history(tmp_path)[-1]
    assert (last["status"], last["exit_code"]) == ("interrupted", code)
    checkpoints = list((tmp_path / "logs" / "checkpoints").glob("checkpoint_*.json"))
    assert len(checkpoints) == 1
    assert json.loads(checkpoints[0].read_text())["done"] is False


def test_exit_4_and_every_failure_are_counted(tmp_path: Path) -> None:
    """Ten web forms whose submissions all fail: exit 4 counts each one as an error."""
    from salesmap_tui.engine import api

    from .conftest import make_settings

    cfg = SandboxConfig(seed=6, scale=60, forms=10, rate_limit=0, faults="500:1:path=webFormSubmit")
    with SandboxServer(cfg) as server:
        result = api.run_snapshot(make_settings(tmp_path, server))
    assert (result.exit_code, result.status, result.replaced) == (4, "done", True)
    wf = result.webform
    assert wf is not None and wf.status == "failed"
    assert len(wf.errors) >= 6, wf.errors  # one per form that has submissions
    assert wf.error and wf.error.startswith(f"{len(wf.errors)} web forms failed")
    last = history(tmp_path)[-1]
    assert last["exit_code"] == 4 and last["error_count"] == len(wf.errors)
    assert last["errors"] == list(wf.errors)
    assert "web-form pass failed" in str(last["reason"])
    assert len(last["webform"]["errors"]) == len(wf.errors)  # type: ignore[index]


def test_one_error_per_failed_endpoint(tmp_path: Path) -> None:
    from salesmap_tui.engine import api

    from .conftest import make_settings

    faults = "500:1:path=deal,500:1:path=lead,500:1:path=memo"
    cfg = SandboxConfig(seed=6, scale=30, forms=2, rate_limit=0, faults=faults)
    with SandboxServer(cfg) as server:
        result = api.run_snapshot(make_settings(tmp_path, server))
    assert (result.exit_code, result.status) == (1, "failed")
    last = history(tmp_path)[-1]
    assert last["error_count"] == 3, last["errors"]
    errors = [str(e) for e in last["errors"]]  # type: ignore[union-attr]
    assert sorted(e.split(":")[0] for e in errors) == ["deal", "lead", "memo"]
    assert last["exit_code"] == 1 and last["reason"]


def test_a_killed_run_is_closed_however_the_path_was_spelled(tmp_path: Path) -> None:
    """Killed with a relative --db-path; the next run spells it absolute (and via a symlink)."""
    from salesmap_tui.engine import api
    from salesmap_tui.engine.crashpoints import KILL_ENV

    from .conftest import make_settings

    cfg = SandboxConfig(seed=6, scale=30, forms=2, rate_limit=0)
    with SandboxServer(cfg) as server:
        env = {**os.environ, "SALESMAP_TOKEN": server.token, KILL_ENV: "page:deal:1"}
        args = [
            "snapshot", "--db-path", "salesmap_latest.db", "--log-dir", "logs",
            "--base-url", server.base_url, "--min-interval", "0",
        ]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "salesmap_tui.cli", *args], env=env, cwd=tmp_path, check=False
        )
        assert proc.returncode == -signal.SIGKILL
        killed = history(tmp_path)[-1]
        assert killed["status"] == "running" and killed["db_path"] == str(
            tmp_path / "salesmap_latest.db"
        )
        (tmp_path / "link.db").symlink_to(tmp_path / "salesmap_latest.db")
        result = api.run_snapshot(make_settings(tmp_path, server, db_path=tmp_path / "link.db"))
    assert result.exit_code == 0
    last = {str(r["run_tag"]): r for r in history(tmp_path)}
    assert last[str(killed["run_tag"])]["status"] == "interrupted"


def test_one_lock_per_file_however_spelled(tmp_path: Path, sandbox: SandboxServer) -> None:
    from salesmap_tui.engine import api
    from salesmap_tui.engine.errors import LockHeld
    from salesmap_tui.engine.lock import RunLock

    from .conftest import make_settings

    target = make_settings(tmp_path, sandbox)
    (tmp_path / "dash.db").symlink_to(target.db_path)
    held = RunLock(target.lock_path)
    held.acquire()
    try:
        with pytest.raises(LockHeld):
            api.run_snapshot(make_settings(tmp_path, sandbox, db_path=tmp_path / "dash.db"))
    finally:
        held.release()


@pytest.mark.parametrize("swap", ["auto", "rename", "in-place"])
def test_a_symlinked_db_path_has_its_target_replaced(
    tmp_path: Path, sandbox: SandboxServer, swap: str
) -> None:
    """README: `--db-path` may be a symlink; the run replaces the file it points to."""
    import sqlite3

    from salesmap_tui.engine import api

    from .conftest import make_settings

    real = tmp_path / "data" / "crm.db"
    real.parent.mkdir()
    link = tmp_path / "salesmap_latest.db"
    link.symlink_to(real)
    settings = make_settings(tmp_path, sandbox, swap=swap)
    assert settings.db_path == link
    tags = [api.run_snapshot(settings).run_tag for _ in range(2)]
    assert link.is_symlink() and os.readlink(link) == str(real)
    conn = sqlite3.connect(f"file:{link}?mode=ro", uri=True)
    assert conn.execute("SELECT run_tag FROM run_info").fetchone()[0] == tags[-1]
    conn.close()
    last = history(tmp_path)[-1]
    assert last["exit_code"] == 0 and last["db_path"] == str(real)
    assert sorted(p.name for p in real.parent.iterdir()) == ["crm.db", "crm.db.lock"]
