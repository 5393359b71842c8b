"""Disk full and I/O errors: fail the Nth write (N = 1, 2, … until a small run completes).

Kinds: the temp DB (SQLITE_FULL by stepping `PRAGMA max_page_count`), and ENOSPC on write / EIO
on fsync of the checkpoint, the backup, the run log and the history file (injected by wrapping
the functions those modules write with). The engine runs in-process via `api.run_snapshot`.

Each step: a clear outcome (a RunResult, or a `UsageError` — never another exception), the live DB
and the existing backups byte-identical unless the run finished, and then a `--resume` without
faults finishes with the same tables as a clean run, every history record terminal.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from salesmap_tui.config import Settings
from salesmap_tui.engine import backup, checkpoint, history, runlog
from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.engine.errors import SalesmapTuiError, UsageError
from salesmap_tui.engine.events import RunResult
from salesmap_tui.engine.runs import snapshot
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import make_settings
from .conftest import SECRET
from .killharness import TERMINAL, dump_db, integrity

MAX_STEPS = 400


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=5, scale=15, forms=2, rate_limit=0, token=SECRET)


class Injector:
    """Raises an OSError at the Nth operation it is told about."""

    def __init__(self, nth: int, code: int = errno.ENOSPC) -> None:
        self.nth = nth
        self.code = code
        self.count = 0
        self.fired = False

    def hit(self, code: int | None = None) -> None:
        self.count += 1
        if self.count == self.nth:
            self.fired = True
            c = code or self.code
            raise OSError(c, f"{os.strerror(c)} (injected)")


class FaultyFile:
    """A file whose writes go through an Injector."""

    def __init__(self, fh: IO[Any], inj: Injector) -> None:
        self._fh = fh
        self._inj = inj

    def write(self, data: Any) -> int:
        self._inj.hit(errno.ENOSPC)
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _os_proxy(
    inj: Injector, wrap_fdopen: bool = False, wrap_write: bool = False
) -> types.SimpleNamespace:
    """The `os` module as one engine module sees it, with fsync (and fdopen, write) faulty."""
    proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})

    def fsync(fd: int) -> None:
        inj.hit(errno.EIO)
        os.fsync(fd)

    def write(fd: int, data: bytes) -> int:
        inj.hit(errno.ENOSPC)
        return os.write(fd, data)

    proxy.fsync = fsync
    if wrap_write:
        proxy.write = write
    if wrap_fdopen:
        proxy.fdopen = lambda *a, **k: FaultyFile(os.fdopen(*a, **k), inj)
    return proxy


def _faulty_open_private(inj: Injector, real: Callable[..., IO[Any]]) -> Callable[..., Any]:
    return lambda *a, **k: FaultyFile(real(*a, **k), inj)


def install(kind: str, inj: Injector, mp: pytest.MonkeyPatch) -> None:
    if kind == "sqlite":
        real = snapshot.prepare_connection

        def limited(path: Path) -> sqlite3.Connection:
            conn = real(path)
            # pages the file already has always fit; the Nth new page does not
            have = int(conn.execute("PRAGMA page_count").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {have + inj.nth}")
            inj.count = inj.nth  # the limit is the fault; `fired` comes from the outcome
            return conn

        mp.setattr(snapshot, "prepare_connection", limited)
        return
    module = {"checkpoint": checkpoint, "backup": backup, "history": history, "log": runlog}[kind]
    if kind == "log":
        mp.setattr(runlog, "os", _os_proxy(inj, wrap_fdopen=True))
        return
    if kind == "history":  # one os.write per record
        mp.setattr(history, "os", _os_proxy(inj, wrap_write=True))
        return
    mp.setattr(module, "open_private", _faulty_open_private(inj, module.open_private))
    mp.setattr(module, "os", _os_proxy(inj))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class World:
    template: Path
    server: SandboxServer
    reference: dict[str, Any]
    tried: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def world(tmp_path: Path, sandbox: SandboxServer) -> Iterator[World]:
    template = tmp_path / "template"
    template.mkdir()
    for _ in range(2):  # a live DB and one real backup
        assert _run(settings_for(template, sandbox)).status == "done"
    shutil.rmtree(template / "logs")
    sandbox.set_day(2)
    ref = tmp_path / "reference"
    shutil.copytree(template, ref)
    assert _run(settings_for(ref, sandbox)).status == "done"
    yield World(template, sandbox, dump_db(ref / "salesmap_latest.db"))


def settings_for(root: Path, server: SandboxServer, **changes: Any) -> Settings:
    return make_settings(
        root, server, checkpoint_interval=1, concurrency=1, token=server.token, **changes
    )


def _run(settings: Settings) -> RunResult:
    return run_snapshot(settings, lambda event: None)


def last_statuses(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in history.read_history(root / "logs" / "run_history.jsonl"):
        if isinstance(item, history.HistoryEntry):
            out[str(item.record["run_tag"])] = str(item.record["status"])
    return out


def step(world: World, root: Path, kind: str, n: int, mp: pytest.MonkeyPatch) -> bool:
    """One fault at write N; returns whether it fired (False: the run needed fewer writes)."""
    shutil.copytree(world.template, root)
    db = root / "salesmap_latest.db"
    before = {p: sha(p) for p in [db, *(root / "backups").iterdir()]}
    inj = Injector(n)
    where = f"{kind} fault at write {n}"
    with mp.context() as m:
        install(kind, inj, m)
        try:
            result: RunResult | None = _run(settings_for(root, world.server))
        except SalesmapTuiError as exc:  # refused before the run started: exit 2, or 1 for I/O
            result = None
            assert exc.exit_code == (2 if isinstance(exc, UsageError) else 1), where
            assert str(exc) and SECRET not in str(exc), where
    fired = inj.fired
    if kind == "sqlite":
        fired = result is None or result.status != "done"
    if result is not None and result.status in ("failed", "interrupted"):
        assert result.exit_code == 1, (where, result)
        assert result.errors, where
        assert SECRET not in result.message, where
    if result is None or result.status != "done":
        for path, digest in before.items():
            assert path.is_file() and sha(path) == digest, f"{where}: {path.name} changed"
    else:
        # a fault the run tolerated (the log never stops a run): it must be the new snapshot
        assert dump_db(db) == world.reference, where
    for path, digest in before.items():
        if path != db:
            assert sha(path) == digest, f"{where}: backup {path.name} changed"
    # then a resume without faults completes, equal to a clean run
    resumed = _run(settings_for(root, world.server, resume=True))
    assert (resumed.status, resumed.exit_code) == ("done", 0), (where, resumed.message)
    assert integrity(db) == "ok", where
    assert dump_db(db) == world.reference, where
    for path, digest in before.items():
        if path != db:
            assert sha(path) == digest, f"{where}: backup {path.name} changed"
    statuses = last_statuses(root)
    assert set(statuses.values()) <= TERMINAL, (where, statuses)
    return fired


@pytest.mark.parametrize("kind", ["sqlite", "checkpoint", "backup", "log", "history"])
def test_nth_write_fails(world: World, tmp_path: Path, kind: str) -> None:
    mp = pytest.MonkeyPatch()
    try:
        for n in range(1, MAX_STEPS):
            if not step(world, tmp_path / f"{kind}-{n}", kind, n, mp):
                break
        else:
            raise AssertionError(f"{kind}: the run never completed within {MAX_STEPS} faults")
    finally:
        mp.undo()
    print(f"{kind}: fault points tried {n - 1} (+1 clean)")
    assert n > 1, f"{kind}: no write was ever faulted"
