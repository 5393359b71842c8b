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
    assert f"(exit {code})" in out, out
    last = history(tmp_path)[-1]
    assert (last["status"], last["exit_code"]) == ("interrupted", code)
    checkpoints = list((tmp_path / "logs" / "checkpoints").glob("checkpoint_*.json"))
    assert len(checkpoints) == 1
    assert json.loads(checkpoints[0].read_text())["done"] is False
