"""`python -m salesmap_tui.sandbox`: the printed lines, serving, clean exits, a busy port."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from salesmap_tui.sandbox.cli import add_arguments


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "salesmap_tui.sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_lines_serves_and_exits_zero(sig: signal.Signals) -> None:
    proc = start("--port", "0", "--scale", "12", "--token", "tok-123", "--seed", "4")
    try:
        assert proc.stdout is not None
        base_line = proc.stdout.readline().strip()
        token_line = proc.stdout.readline().strip()
        assert base_line.startswith("base_url: http://127.0.0.1:") and base_line.endswith("/v2")
        assert token_line == "token: tok-123"
        base = base_line.removeprefix("base_url: ")
        r = httpx.get(f"{base}/people", headers={"Authorization": "Bearer tok-123"})
        assert r.status_code == 200 and len(r.json()["data"]["peopleList"]) == 12
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_busy_port_exits_two_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = start("--port", str(port))
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "in use" in lines[0]


def test_bad_fault_spec_exits_two() -> None:
    proc = start("--port", "0", "--faults", "600:1")
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2 and "faults" in err


def test_every_option_has_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, action.dest
    args = parser.parse_args(["--faults", "500:1:burst=2", "--rate-window", "0.5"])
    assert args.faults == "500:1:burst=2" and args.rate_window == 0.5 and args.port == 8765
    text = parser.format_help()
    assert "burst=K" in text and "retry_after" in text


def test_non_loopback_host_needs_allow_remote() -> None:
    proc = start("--port", "0", "--host", "0.0.0.0")
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 2 and out == ""
    assert "--allow-remote" in err and "0.0.0.0" in err


def test_allow_remote_serves_with_a_warning() -> None:
    proc = start("--port", "0", "--host", "0.0.0.0", "--allow-remote", "--scale", "3")
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().removeprefix("base_url: ")
        proc.stdout.readline()
        port = base.rsplit(":", 1)[1].split("/")[0]
        r = httpx.post(f"http://127.0.0.1:{port}/_sandbox/revoke")
        assert r.status_code == 401  # the controls still need the token
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert "warning" in err and "reachable from other machines" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
