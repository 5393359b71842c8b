"""Durability as the kernel sees it: strace of real runs, and power cuts replayed from the trace.

The order test traces a first run in an empty folder, a snapshot that takes a backup, a
`--webform-only` pass and a restore (real `salesmap-tui` processes under `strace -f -y`) and checks
every file the tool publishes: data fsync → rename → folder fsync, a new file's or folder's
parent fsynced, and no checkpoint renamed into place while rows it covers are not yet fsynced.

The power-cut test traces one run with the bytes it writes, replays the trace on a model of the
workspace, and at 60 points takes what a power cut would leave (only what was fsynced, with
folders as last fsynced, or with every name change and half of each file's unsynced writes kept;
see `syscalls.FileSystem`), writes it back, resumes, and compares the live DB with an
uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.engine.api import run_snapshot
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from ..conftest import make_settings, workspace_options
from . import syscalls
from .conftest import SECRET
from .killharness import dump_db, integrity

CUTS = 60
CLI = [sys.executable, "-c", "import sys; from salesmap_tui.cli import main; sys.exit(main())"]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=11, scale=30, forms=2, rate_limit=0, token=SECRET)


def cli_args(root: Path, server: SandboxServer, *extra: str) -> list[str]:
    return [
        *CLI,
        *extra,
        *workspace_options(root, server),
        "--checkpoint-interval",
        "2",
        "--concurrency",
        "1",
        "--quiet",
    ]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SALESMAP_")}
    out["SALESMAP_TOKEN"] = SECRET
    return out


def tree(root: Path) -> set[str]:
    out = {str(root)}
    for dirpath, dirs, files in os.walk(root):
        out.update(os.path.join(dirpath, n) for n in dirs + files)
    return out


def traced(tmp: Path, name: str, root: Path, args: list[str], data: bool = False) -> Any:
    existing = tree(root)
    done, calls = syscalls.trace(args, tmp / f"{name}.strace", env=env(), cwd=root, data=data)
    assert done.returncode == 0, (name, done.returncode, done.stderr[-2000:])
    ops = syscalls.reduce(calls, root, data=data)
    return existing, ops


def test_syscall_order_of_every_published_file(tmp_path: Path, sandbox: SandboxServer) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    steps = [
        ("first run in an empty folder", cli_args(root, sandbox, "snapshot")),
        ("snapshot with a backup", cli_args(root, sandbox, "snapshot")),
        ("--webform-only", cli_args(root, sandbox, "snapshot", "--webform-only")),
    ]
    tally: dict[str, Any] = {}
    for name, args in steps:
        if name == "--webform-only":
            sandbox.set_day(2)  # new submissions: the pass writes
        existing, ops = traced(tmp_path, name.replace(" ", "_"), root, args)
        problems = syscalls.order_violations(ops, root, existing)
        tally[name] = _counts(ops, root)
        assert problems == [], (name, problems[:20])
    backups = sorted((root / "backups").glob("*.db.gz"))
    assert backups, "the second run made no backup"
    paths = cli_args(root, sandbox)[len(CLI) : len(CLI) + 6]  # --db-path, --log-dir, --backup-dir
    restore = [*CLI, "restore", str(backups[0]), "--yes", *paths]
    existing, ops = traced(tmp_path, "restore", root, restore)
    problems = syscalls.order_violations(ops, root, existing)
    tally["restore"] = _counts(ops, root)
    assert problems == [], ("restore", problems[:20])
    print(f"syscall order: 0 violations; {tally}")
    for name, counts in tally.items():
        assert counts["fsync"] > 0, name
    assert tally["snapshot with a backup"]["rename"] >= 3  # backup, checkpoints, the swap


def _counts(ops: list[syscalls.Op], root: Path) -> dict[str, int]:
    inside = [op for op in ops if op.path.startswith(str(root))]
    return {
        k: sum(1 for op in inside if op.kind == k) for k in ("rename", "fsync", "mkdir", "create")
    }


def test_power_cut_at_60_points_resumes_to_the_same_db(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    template = tmp_path / "template"
    template.mkdir()
    assert run_snapshot(make_settings(template, sandbox)).exit_code == 0  # the live DB, day 1
    shutil.rmtree(template / "logs")
    sandbox.set_day(2)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    assert run_snapshot(make_settings(reference, sandbox)).exit_code == 0
    expected = dump_db(reference / "salesmap_latest.db")

    root = tmp_path / "ws"
    shutil.copytree(template, root)
    model = syscalls.FileSystem(root)
    _existing, ops = traced(tmp_path, "powercut", root, cli_args(root, sandbox, "snapshot"), True)
    assert dump_db(root / "salesmap_latest.db") == expected, "the traced run itself differs"
    inside = [i for i, op in enumerate(ops) if op.path.startswith(str(root))]
    cuts = sorted({inside[round(k * (len(inside) - 1) / (CUTS - 1))] for k in range(CUTS)})
    states: list[tuple[str, dict[str, bytes | None]]] = []
    at = 0
    for pos, op in enumerate(ops):
        while at < len(cuts) and cuts[at] == pos:  # the power fails before this call
            states.append((f"#{op.index}, folders as fsynced", model.durable_tree()))
            states.append((f"#{op.index}, half written back", model.durable_tree(writeback=0.5)))
            at += 1
        model.apply(op)
    with_checkpoint = 0
    for label, state in states:
        model.write_tree(state)
        db = root / "salesmap_latest.db"
        where = f"power cut before call {label}"
        assert db.is_file() and integrity(db) == "ok", where
        result = run_snapshot(make_settings(root, sandbox, resume=True))
        assert result.exit_code == 0, (where, result.message)
        assert integrity(db) == "ok", where
        assert dump_db(db) == expected, f"{where}: the resumed DB differs from an uninterrupted run"
        names = [os.path.basename(p) for p in state]
        with_checkpoint += any(n.startswith("checkpoint_") and n.endswith(".json") for n in names)
    print(
        f"power cuts: {len(cuts)} points x 2 file-system models over {len(ops)} file calls, "
        f"{with_checkpoint} states with a durable checkpoint to resume; every resumed DB "
        "value-identical to an uninterrupted run"
    )
    assert len(cuts) >= 50 and with_checkpoint >= 50
