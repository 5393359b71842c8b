"""Shared fixtures: a loopback sandbox API and settings pointing into a temp dir."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine.events import EngineEvent, RunResult
from salesmap_tui.sandbox import Dataset, SandboxConfig, SandboxServer

SNAPSHOT_TABLES = ("organization", "people", "deal", "lead", "memo", "user", "team")


DB_NAME = "salesmap_latest.db"  # the seed's default live DB name


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # the real limit (100 per 10 s) is exercised in its own tests; here runs follow each other
    return SandboxConfig(seed=3, scale=120, forms=5, rate_limit=100_000)


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config) as server:
        yield server


def make_settings(root: Path, server: SandboxServer, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "db_path": root / "salesmap_latest.db",
        "log_dir": root / "logs",
        "backup_dir": root / "backups",
        "base_url": server.base_url,
        "token": server.token,
        "min_interval": 0.0,
        "max_wait": 0.05,
        "backoff_base": 0.01,
        "backoff_429": 0.01,
        "request_timeout": 5.0,
    }
    values.update(changes)
    return Settings(**values)


def workspace_options(root: Path, server: SandboxServer, db_name: str = DB_NAME) -> list[str]:
    """The options of a headless command on a workspace in `root` against `server`: its DB,
    log and backup folders, the sandbox's base URL, unpaced (tests of the CLI as a process)."""
    return [
        "--db-path",
        str(root / db_name),
        "--log-dir",
        str(root / "logs"),
        "--backup-dir",
        str(root / "backups"),
        "--base-url",
        server.base_url,
        "--min-interval",
        "0",
    ]


@pytest.fixture
def settings(tmp_path: Path, sandbox: SandboxServer) -> Settings:
    return make_settings(tmp_path, sandbox)


class Recorder:
    """An event sink that keeps every event (thread-safe enough for one engine thread)."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def run(settings: Settings, cancel: threading.Event | None = None) -> tuple[RunResult, Recorder]:
    from salesmap_tui.engine.api import run_snapshot

    rec = Recorder()
    result = run_snapshot(settings, rec, cancel)
    return result, rec


def _normalise(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, ensure_ascii=False, sort_keys=True))
    return value


def table_records(db: Path, table: str) -> dict[str, dict[str, Any]]:
    """Read a snapshot table back into {id: record}, values normalised for comparison."""
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cur.description]
        out: dict[str, dict[str, Any]] = {}
        for row in cur:
            rec: dict[str, Any] = {}
            for name, value in zip(names, row, strict=True):
                if name == "payload":
                    continue
                if name == "_extra":
                    if value is not None:
                        for k, v in json.loads(value).items():
                            rec[k] = _normalise(v)
                    continue
                if value is None:
                    continue
                if isinstance(value, str) and value[:1] in "[{":
                    with contextlib.suppress(ValueError):
                        value = _normalise(json.loads(value))
                rec[name] = value
            out[str(rec["id"])] = rec
        return out
    finally:
        conn.close()


def expected_records(dataset: Dataset, table: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for record in dataset.iter_records(table):
        out[str(record["id"])] = {k: _normalise(v) for k, v in record.items() if v is not None}
    return out


def dataset_of(config: SandboxConfig, day: int = 1) -> Dataset:
    return Dataset(config.seed, config.scale, day=day, forms=config.forms)


def snapshot_of(db: Path) -> dict[str, dict[str, dict[str, Any]]]:
    return {t: table_records(db, t) for t in SNAPSHOT_TABLES}


def webform_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(
            conn.execute(
                "SELECT webFormId, peopleId, createdAt, payload_hash, contents FROM webform_history"
            ).fetchall()
        )
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer's own config file or environment must never change what a test sees."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    for name in (
        "SALESMAP_TUI_CONFIG",
        "SALESMAP_PROFILE",
        "SALESMAP_TOKEN_FILE",
        "SALESMAP_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
