"""Bad files on disk, through the CLI: one clear line, exit 2, nothing destroyed.

Corrupt or truncated checkpoints, history lines that are not JSON, backups that are truncated,
not gzip, or gzip of something that is not SQLite, a DB path that is a directory or a file that
is not SQLite. Every file present before a refused command is byte-identical afterwards (the run
history may only grow, its old bytes kept as they were).
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from salesmap_tui.cli import main
from salesmap_tui.sandbox import SandboxConfig, SandboxServer

from .conftest import SECRET

HISTORY = "run_history.jsonl"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=3, scale=30, forms=3, rate_limit=100_000, token=SECRET)


@dataclass
class Workspace:
    root: Path
    server: SandboxServer

    @property
    def db(self) -> Path:
        return self.root / "salesmap_latest.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.logs / "checkpoints"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def paths(self, db: Path | None = None) -> list[str]:
        return ["--db-path", str(db or self.db), "--log-dir", str(self.logs),
                "--backup-dir", str(self.backups)]  # fmt: skip

    def snapshot(self, *extra: str, db: Path | None = None) -> list[str]:
        return ["snapshot", *self.paths(db), "--base-url", self.server.base_url,
                "--min-interval", "0", "--max-wait", "0.02", *extra]  # fmt: skip

    def restore(self, backup: Path, db: Path | None = None) -> list[str]:
        return ["restore", str(backup), "--yes", *self.paths(db)]


@pytest.fixture
def ws(tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("SALESMAP_TOKEN", SECRET)
    return Workspace(tmp_path, sandbox)


def files_of(root: Path) -> dict[str, bytes]:
    """Every regular file under root (the lock file only holds the last holder's PID)."""
    out: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not name.endswith(".lock"):
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def assert_nothing_destroyed(before: dict[str, bytes], root: Path) -> None:
    after = files_of(root)
    for name, data in before.items():
        assert name in after, f"{name} was removed"
        if name.endswith(HISTORY):
            assert after[name].startswith(data), "the run history was rewritten"
        else:
            assert after[name] == data, f"{name} was changed"


def one_line_error(err: str) -> str:
    """The error a refused command printed: its own line, starting with the program's name."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("salesmap-tui: error: "), err
    return line


def refused(args: list[str], capsys: Any, root: Path, *, code: int = 2) -> str:
    before = files_of(root)
    assert main(args) == code
    out = capsys.readouterr()
    assert_nothing_destroyed(before, root)
    return one_line_error(out.err)


def good_run(ws: Workspace, capsys: Any, *extra: str) -> None:
    assert main(ws.snapshot(*extra)) == 0
    capsys.readouterr()


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.fixture
def failed_run(ws: Workspace, capsys: Any) -> tuple[str, Path, dict[str, Any]]:
    """A live DB, then a failed run whose checkpoint would be resumable: (tag, path, JSON)."""
    good_run(ws, capsys)
    ws.server.set_faults("503:path=team")
    assert main(ws.snapshot()) == 1
    capsys.readouterr()
    ws.server.set_faults("")
    (path,) = [
        p
        for p in ws.checkpoints.glob("checkpoint_*.json")
        if not json.loads(p.read_text(encoding="utf-8"))["done"]
    ]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert Path(data["temp_db_path"]).is_file()
    return data["run_tag"], path, data


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


CHECKPOINT_DAMAGE: dict[str, tuple[Callable[[bytes, dict[str, Any]], bytes], str]] = {
    "not-json": (lambda raw, d: b"this is not json {", "is not valid JSON"),
    "truncated": (lambda raw, d: raw[: len(raw) // 2], "is not valid JSON"),
    "empty": (lambda raw, d: b"", "is not valid JSON"),
    "binary": (lambda raw, d: b"\xff\xfe\x00\x80garbage", "cannot read checkpoint"),
    "json-array": (lambda raw, d: b"[1, 2, 3]", "expected a JSON object"),
    "missing-field": (lambda raw, d: _json({k: v for k, v in d.items() if k != "temp_db_path"}),
                      "no field 'temp_db_path'"),
    "wrong-type": (lambda raw, d: _json({**d, "endpoints": {"deal": {"pages": "3"}}}),
                   "field 'pages' has the wrong type"),
    "other-db": (lambda raw, d: _json({**d, "db_path": "/elsewhere/other.db"}),
                 "belongs to /elsewhere/other.db"),
    "temp-db-gone": (lambda raw, d: _json({**d, "temp_db_path": d["temp_db_path"] + ".gone"}),
                     "is gone"),
    "finished": (lambda raw, d: _json({**d, "done": True}), "already finished"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE), ids=list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_is_refused_and_kept(
    damage: str, ws: Workspace, failed_run: tuple[str, Path, dict[str, Any]], capsys: Any
) -> None:
    tag, path, data = failed_run
    make, expected = CHECKPOINT_DAMAGE[damage]
    path.write_bytes(make(path.read_bytes(), data))
    line = refused(ws.snapshot("--resume-run-tag", tag), capsys, ws.root)
    assert expected in line
    # the listing shows it without failing, and --resume passes over it to a fresh run
    assert main(["checkpoints", *ws.paths()]) == 0
    listing = capsys.readouterr().out
    assert tag in listing
    before = path.read_bytes()
    assert main(ws.snapshot("--resume")) in (0, 2)
    capsys.readouterr()
    assert path.read_bytes() == before


@pytest.mark.parametrize("what", ["garbage", "another-run"])
def test_checkpoint_whose_temp_db_is_not_its_own_is_refused(
    what: str, ws: Workspace, failed_run: tuple[str, Path, dict[str, Any]], capsys: Any
) -> None:
    tag, _path, data = failed_run
    temp = Path(data["temp_db_path"])
    if what == "garbage":
        temp.write_bytes(b"not a database at all" * 200)
    else:
        conn = sqlite3.connect(temp)
        conn.execute("UPDATE run_info SET run_tag = '20200101T000000Z-0000'")
        conn.commit()
        conn.close()
    line = refused(ws.snapshot("--resume-run-tag", tag), capsys, ws.root)
    assert f"cannot resume {tag}: temp DB" in line


def test_torn_checkpoint_tmp_next_to_a_good_checkpoint_does_not_matter(
    ws: Workspace, failed_run: tuple[str, Path, dict[str, Any]], capsys: Any
) -> None:
    """A kill while writing leaves `.json.tmp` half written: the renamed file is what counts."""
    tag, path, _data = failed_run
    torn = path.with_name(path.name + ".tmp")
    torn.write_bytes(path.read_bytes()[:40])
    assert main(ws.snapshot("--resume-run-tag", tag)) == 0
    capsys.readouterr()


# --- history --------------------------------------------------------------------------------------

HISTORY_GARBAGE = {
    "not-json": b"this is not json\n",
    "binary": b"\x00\xff\xfe\x80\x1b[31m\n",
    "json-array": b"[1, 2, 3]\n",
    "json-string": b'"done"\n',
    "torn-last-line": b'{"run_tag": "20250101T000000Z-ab',
}


@pytest.mark.parametrize("garbage", list(HISTORY_GARBAGE), ids=list(HISTORY_GARBAGE))
def test_history_lines_that_are_not_records_are_kept_and_skipped(
    garbage: str, ws: Workspace, capsys: Any
) -> None:
    good_run(ws, capsys)
    history = ws.logs / HISTORY
    with history.open("ab") as fh:
        fh.write(HISTORY_GARBAGE[garbage])
    before = history.read_bytes()
    good_run(ws, capsys)
    assert history.read_bytes().startswith(before)
    assert main(["history", *ws.paths(), "--json"]) == 0
    out = capsys.readouterr()
    records = json.loads(out.out)
    assert [r["status"] for r in records] == ["running", "done", "running", "done"]
    (warning,) = [line for line in out.err.splitlines() if line.strip()]
    assert "line 3 is not a history record" in warning
    assert main(["history", *ws.paths()]) == 0
    assert "done" in capsys.readouterr().out


# --- backups --------------------------------------------------------------------------------------


@pytest.fixture
def backup(ws: Workspace, capsys: Any) -> Path:
    good_run(ws, capsys)
    good_run(ws, capsys)
    (path,) = ws.backups.glob("*.db.gz")
    return path


def _sqlite_bytes(backup: Path) -> bytes:
    return gzip.decompress(backup.read_bytes())


def _flip_middle(raw: bytes) -> bytes:
    mid = len(raw) // 2
    return raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1 :]


def _wreck_middle_page(raw: bytes) -> bytes:
    """A SQLite file whose middle page is overwritten with 0xFF: a b-tree page no reader or
    integrity check can take (one flipped byte may land in a value, which no check sees)."""
    page_size = int.from_bytes(raw[16:18], "big") or 65536
    pages = len(raw) // page_size
    assert pages >= 3, "the backup is too small to damage a middle page"
    start = (pages // 2) * page_size
    return raw[:start] + b"\xff" * page_size + raw[start + page_size :]


BACKUP_DAMAGE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "truncated-gzip": (lambda b: b.read_bytes()[: b.stat().st_size // 2], "is truncated"),
    "not-gzip": (lambda b: b"SQLite? no, plain text\n" * 50, "is not a gzip file"),
    "plain-sqlite": (lambda b: _sqlite_bytes(b), "is not a gzip file"),
    "empty": (lambda b: b"", "does not hold a SQLite database"),
    "gzip-of-text": (lambda b: gzip.compress(b"hello world\n" * 100),
                     "does not hold a SQLite database"),
    "gzip-of-half-a-db": (lambda b: gzip.compress(_sqlite_bytes(b)[: len(_sqlite_bytes(b)) // 2]),
                          "not a usable SQLite database"),
    "gzip-of-header-only": (lambda b: gzip.compress(b"SQLite format 3\x00" + b"\x00" * 84),
                            "not a usable SQLite database"),
    "gzip-corrupt-middle": (lambda b: _flip_middle(b.read_bytes()), "backup"),
    "gzip-of-corrupt-db": (lambda b: gzip.compress(_wreck_middle_page(_sqlite_bytes(b))), "backup"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(BACKUP_DAMAGE), ids=list(BACKUP_DAMAGE))
def test_damaged_backup_is_refused_and_nothing_changes(
    damage: str, ws: Workspace, backup: Path, capsys: Any
) -> None:
    make, expected = BACKUP_DAMAGE[damage]
    bad = ws.root / f"bad-{damage}.db.gz"
    bad.write_bytes(make(backup))
    line = refused(ws.restore(bad), capsys, ws.root)
    assert expected in line and str(bad) in line
    # no verified copy left next to the live DB, no safety backup made
    assert not [p for p in ws.root.iterdir() if ".restore-" in p.name]
    assert list(ws.backups.iterdir()) == [backup]


def test_backup_that_is_missing_or_a_directory_is_refused(
    ws: Workspace, backup: Path, capsys: Any
) -> None:
    line = refused(ws.restore(ws.root / "nope.db.gz"), capsys, ws.root)
    assert "cannot read backup" in line
    line = refused(ws.restore(ws.backups), capsys, ws.root)
    assert str(ws.backups) in line


# --- the DB path ----------------------------------------------------------------------------------


def test_db_path_that_is_a_directory_is_refused_everywhere(
    ws: Workspace, backup: Path, capsys: Any
) -> None:
    folder = ws.root / "a-folder.db"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    for args in (
        ws.snapshot(db=folder),
        ws.snapshot("--webform-only", db=folder),
        ws.snapshot("--resume", db=folder),
        ws.restore(backup, db=folder),
    ):
        line = refused(args, capsys, ws.root)
        assert str(folder) in line and "directory" in line, args
        assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    assert not [p for p in ws.root.iterdir() if ".restore-" in p.name]


@pytest.mark.parametrize("extra", [(), ("--no-backup",), ("--webform-only",)])
def test_db_path_holding_something_else_is_never_replaced(
    extra: tuple[str, ...], ws: Workspace, capsys: Any
) -> None:
    """A --db-path pointing at someone's document: refused before anything is written."""
    doc = ws.root / "thesis.db"
    doc.write_bytes(b"%PDF-1.7 my only copy\n" * 500)
    line = refused(ws.snapshot(*extra, db=doc), capsys, ws.root)
    assert str(doc) in line and "not a SQLite database" in line
    assert not [p for p in ws.root.iterdir() if p.name.startswith("thesis.db.")]
