"""Shared helpers for the benchmarks: a sandbox in its own process, run settings, machine facts."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from salesmap_tui.config import Settings


class SandboxProcess:
    """`python -m salesmap_tui.sandbox` in a subprocess, so its CPU is not the engine's."""

    def __init__(self, *args: str) -> None:
        self.cmd = [sys.executable, "-m", "salesmap_tui.sandbox", "--port", "0", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.token = ""

    def __enter__(self) -> SandboxProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip().removeprefix("base_url: ")
        self.token = self.proc.stdout.readline().strip().removeprefix("token: ")
        if not self.base_url.startswith("http"):
            raise RuntimeError(f"sandbox did not start: {shlex.join(self.cmd)}")
        # the /_sandbox controls answer to the sandbox's token only
        auth = {"Authorization": f"Bearer {self.token}"}
        self.http = httpx.Client(base_url=self.root_url, timeout=60, headers=auth)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v2")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def set_latency(self, ms: float) -> None:
        self.http.post("/_sandbox/latency", params={"ms": ms}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.http.get("/_sandbox/stats").json()
        return out

    def log(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        since = 0
        while True:
            data = self.http.get("/_sandbox/log", params={"since": since}).json()
            entries.extend(data["entries"])
            if since == data["next"] or not data["entries"]:
                return entries
            since = data["next"]


def settings_for(sandbox: SandboxProcess, workdir: Path, **changes: Any) -> Settings:
    workdir.mkdir(parents=True, exist_ok=True)
    base = Settings(
        db_path=workdir / "salesmap_latest.db",
        log_dir=workdir / "logs",
        backup_dir=workdir / "backups",
        base_url=sandbox.base_url,
        token=sandbox.token,
        quiet=True,
    )
    return base.replace(**changes)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def rerun_line(script: str) -> str:
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"rerun: python {script}" + (f" {args}" if args else "")


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
