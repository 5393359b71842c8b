"""CheckpointManager: atomic JSON checkpoints (`.json.tmp` then rename), listing, loading.

A checkpoint names its workspace: the base URL and a keyed fingerprint of the token
(HMAC-SHA256 under a random salt of its own, never the token), so a resume can refuse a
checkpoint of another workspace. A restore marks the open checkpoints of its DB `superseded`.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from salesmap_tui.config import CHECKPOINT_RENAME_TRIES, FILE_MODE, checkpoint_file_name
from salesmap_tui.engine.crashpoints import crashpoint
from salesmap_tui.engine.errors import BadCheckpoint
from salesmap_tui.engine.files import (
    ensure_private_dir,
    fsync_dir,
    fsync_file,
    open_private,
    sync_sqlite_files,
)
from salesmap_tui.engine.runtag import is_run_tag, utc_now_iso


@dataclass
class EndpointCheckpoint:
    """Where one endpoint stands: the cursor after the last *committed* page."""

    cursor: str | None = None
    pages: int = 0
    rows: int = 0
    done: bool = False


@dataclass
class Checkpoint:
    run_tag: str
    temp_db_path: str
    db_path: str
    settings: dict[str, Any]  # Settings.public_dict(): never the token
    backup_path: str | None
    phase: str
    started_at: str
    saved_at: str = ""
    done: bool = False
    endpoints: dict[str, EndpointCheckpoint] = field(default_factory=dict)
    version: int = 1
    # {base_url, salt, token_fingerprint}: see `workspace_of`; None in older checkpoints
    workspace: dict[str, str] | None = None
    superseded: str | None = None  # why it must never be resumed (a restore replaced the DB)


def normalize_base_url(url: str) -> str:
    """The base URL as compared between runs: scheme and host lower-case, no trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def _fingerprint(token: str, salt: str) -> str:
    return hmac.new(bytes.fromhex(salt), token.encode("utf-8"), hashlib.sha256).hexdigest()


def workspace_of(base_url: str, token: str) -> dict[str, str]:
    """The workspace a run works on, as a checkpoint stores it (never the token itself)."""
    salt = secrets.token_hex(16)
    return {
        "base_url": normalize_base_url(base_url),
        "salt": salt,
        "token_fingerprint": _fingerprint(token, salt),
    }


def workspace_problem(
    cp: Checkpoint, base_url: str, token: str | None, *, check_token: bool = True
) -> str | None:
    """Why `cp` is not of the workspace (`base_url`, `token`), or None when it is.

    `check_token=False` (a listing made without the token) compares the base URL only."""
    ws = cp.workspace
    if not ws or not isinstance(ws.get("salt"), str) or not ws.get("token_fingerprint"):
        return (
            "it was written by an older version that did not record its workspace, so it "
            "cannot be told apart from another workspace's"
        )
    if ws.get("base_url") != normalize_base_url(base_url):
        return f"it is of another workspace (base URL {ws.get('base_url')}, not {base_url})"
    if not check_token:
        return None
    try:
        same = token is not None and hmac.compare_digest(
            _fingerprint(token, ws["salt"]), str(ws["token_fingerprint"])
        )
    except ValueError:
        same = False
    if not same:
        return "it is of another workspace (it was made with another API token)"
    return None


def age_hours(cp: Checkpoint, now: datetime | None = None) -> float | None:
    """Hours since the checkpoint's run started (its oldest data), None if unreadable."""
    try:
        started = datetime.fromisoformat(cp.started_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - started).total_seconds() / 3600


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint file as the resume screen / `checkpoints` command lists it."""

    path: Path
    run_tag: str | None
    checkpoint: Checkpoint | None  # None when the file could not be read
    problem: str | None  # why it cannot be resumed (unreadable, finished, temp DB missing, ...)
    temp_db_exists: bool
    temp_db_size: int | None
    mtime: float


def checkpoint_to_dict(cp: Checkpoint) -> dict[str, Any]:
    return dataclasses.asdict(cp)


def checkpoint_from_dict(data: object) -> Checkpoint:
    """Build a Checkpoint from parsed JSON; ValueError says which field is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    _require(data, "run_tag", str)
    _require(data, "temp_db_path", str)
    _require(data, "db_path", str)
    _require(data, "settings", dict)
    _require(data, "backup_path", (str, type(None)))
    _require(data, "phase", str)
    _require(data, "started_at", str)
    _require(data, "saved_at", str, optional=True)
    _require(data, "done", bool, optional=True)
    _require(data, "endpoints", dict, optional=True)
    _require(data, "version", int, optional=True)
    _require(data, "workspace", (dict, type(None)), optional=True)
    _require(data, "superseded", (str, type(None)), optional=True)
    endpoints: dict[str, EndpointCheckpoint] = {}
    for name, ep in (data.get("endpoints") or {}).items():
        if not isinstance(ep, dict):
            raise ValueError(f"endpoint {name!r} is not an object")
        _require(ep, "cursor", (str, type(None)), optional=True, where=f"endpoint {name!r}")
        _require(ep, "pages", int, optional=True, where=f"endpoint {name!r}")
        _require(ep, "rows", int, optional=True, where=f"endpoint {name!r}")
        _require(ep, "done", bool, optional=True, where=f"endpoint {name!r}")
        endpoints[name] = EndpointCheckpoint(
            cursor=ep.get("cursor"),
            pages=ep.get("pages", 0),
            rows=ep.get("rows", 0),
            done=ep.get("done", False),
        )
    return Checkpoint(
        run_tag=data["run_tag"],
        temp_db_path=data["temp_db_path"],
        db_path=data["db_path"],
        settings=data["settings"],
        backup_path=data["backup_path"],
        phase=data["phase"],
        started_at=data["started_at"],
        saved_at=data.get("saved_at", ""),
        done=data.get("done", False),
        endpoints=endpoints,
        version=data.get("version", 1),
        workspace=data.get("workspace"),
        superseded=data.get("superseded"),
    )


def _require(
    data: dict[str, Any],
    key: str,
    types: type | tuple[type, ...],
    *,
    optional: bool = False,
    where: str = "checkpoint",
) -> None:
    if key not in data:
        if optional:
            return
        raise ValueError(f"{where} has no field {key!r}")
    value = data[key]
    allowed = types if isinstance(types, tuple) else (types,)
    # bool is an int in Python; a count of `true` is still wrong
    wrong_bool = isinstance(value, bool) and bool not in allowed
    if wrong_bool or not isinstance(value, allowed):
        raise ValueError(f"{where} field {key!r} has the wrong type ({type(value).__name__})")


def check_own_paths(cp: Checkpoint, db_path: Path) -> None:
    """A checkpoint may only name this DB and this DB's own temp name for its run tag.

    A checkpoint is a file in a folder others may write to: one naming another SQLite file as
    its temp DB would have the run write into that file and move it over the live DB.
    """
    if not is_run_tag(cp.run_tag):
        raise BadCheckpoint(f"checkpoint run tag {cp.run_tag!r} is not a run tag")
    if Path(cp.db_path).absolute() != db_path.absolute():
        raise BadCheckpoint(f"checkpoint {cp.run_tag} belongs to {cp.db_path}, not {db_path}")
    own = db_path.absolute().with_name(f"{db_path.name}.{cp.run_tag}.tmp")
    if Path(cp.temp_db_path).absolute() != own:
        raise BadCheckpoint(
            f"checkpoint {cp.run_tag} names {cp.temp_db_path} as its temp DB, not {own}; "
            "refusing to write into another file"
        )


class CheckpointManager:
    """Checkpoints in one directory: `checkpoint_<run_tag>.json`, written via `.json.tmp`."""

    def __init__(
        self,
        directory: Path,
        *,
        rename: Callable[[Path, Path], None] = os.replace,
        copy: Callable[[Path, Path], object] = shutil.copyfile,
        sleep: Callable[[float], None] = time.sleep,
        retry_delay_s: float = 0.2,
    ) -> None:
        self.directory = directory
        self._rename = rename
        self._copy = copy
        self._sleep = sleep
        self._retry_delay_s = retry_delay_s

    def path_for(self, run_tag: str) -> Path:
        return self.directory / checkpoint_file_name(run_tag)

    def save(self, cp: Checkpoint) -> Path:
        """Write `cp` (setting `saved_at`): `.json.tmp`, fsync, rename (3 tries), else copy."""
        cp.saved_at = utc_now_iso()
        ensure_private_dir(self.directory)
        final = self.path_for(cp.run_tag)
        tmp = final.with_name(final.name + ".tmp")
        data = json.dumps(checkpoint_to_dict(cp), ensure_ascii=False, indent=1)
        # the rows a checkpoint covers are durable before the checkpoint is: a power cut can
        # never leave a checkpoint whose cursor is past rows the temp DB lost
        try:
            sync_sqlite_files(Path(cp.temp_db_path))
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot sync the temp DB {cp.temp_db_path}: {exc.strerror or exc}"
            ) from None
        try:
            self._write_tmp(tmp, data.encode("utf-8"))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(
                exc.errno, f"cannot write the checkpoint {tmp}: {exc.strerror or exc}"
            ) from None
        crashpoint("checkpoint_write")
        last: OSError | None = None
        for attempt in range(1, CHECKPOINT_RENAME_TRIES + 1):
            try:
                self._rename(tmp, final)
            except OSError as exc:
                last = exc
                if attempt < CHECKPOINT_RENAME_TRIES:
                    self._sleep(self._retry_delay_s)
                continue
            fsync_dir(self.directory)
            return final
        # the seed's fallback: copy the temp file over the real one (tmp stays for manual repair)
        try:
            self._copy(tmp, final)
            os.chmod(final, FILE_MODE)
            fsync_file(final)
        except OSError as exc:
            raise OSError(
                f"could not save checkpoint {final}: rename failed ({last}) and copy failed "
                f"({exc}); the checkpoint is in {tmp}"
            ) from exc
        fsync_dir(self.directory)
        return final

    @staticmethod
    def _write_tmp(tmp: Path, data: bytes) -> None:
        # a `.json.tmp` is ours (the lock is held): a leftover, or a symlink planted in a shared
        # folder, is unlinked (never followed) and the file created anew
        tmp.unlink(missing_ok=True)
        with open_private(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def load(self, run_tag: str) -> Checkpoint:
        path = self.path_for(run_tag)
        if not path.exists():
            raise BadCheckpoint(f"no checkpoint for run tag {run_tag} in {self.directory}")
        return self._read(path)

    def _read(self, path: Path) -> Checkpoint:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadCheckpoint(f"cannot read checkpoint {path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadCheckpoint(f"checkpoint {path} is not valid JSON: {exc}") from None
        try:
            return checkpoint_from_dict(data)
        except ValueError as exc:
            raise BadCheckpoint(f"checkpoint {path} is unusable: {exc}") from None

    def _files(self) -> list[tuple[Path, float]]:
        try:
            paths = list(self.directory.glob("checkpoint_*.json"))
        except OSError:
            return []
        out: list[tuple[Path, float]] = []
        for p in paths:
            try:
                out.append((p, p.stat().st_mtime))
            except OSError:
                continue
        return out

    def list(self) -> list[CheckpointInfo]:
        """Every checkpoint, newest first (by run tag, then mtime), each with its `problem`."""
        infos: list[CheckpointInfo] = []
        for path, mtime in self._files():
            tag_from_name = path.name[len("checkpoint_") : -len(".json")]
            cp: Checkpoint | None = None
            problem: str | None = None
            try:
                cp = self._read(path)
            except BadCheckpoint as exc:
                problem = f"unreadable: {exc}"
            temp_exists = False
            temp_size: int | None = None
            if cp is not None:
                temp = Path(cp.temp_db_path)
                try:
                    temp_size = temp.stat().st_size
                    temp_exists = True
                except OSError:
                    pass
                if cp.done:
                    problem = "finished"
                elif cp.superseded:
                    problem = f"superseded: {cp.superseded}"
                elif not temp_exists:
                    problem = f"temp DB missing: {temp}"
            infos.append(
                CheckpointInfo(
                    path=path,
                    run_tag=cp.run_tag if cp is not None else (tag_from_name or None),
                    checkpoint=cp,
                    problem=problem,
                    temp_db_exists=temp_exists,
                    temp_db_size=temp_size,
                    mtime=mtime,
                )
            )
        # a tag's random suffix does not sort by time: within one second, the later start wins
        infos.sort(
            key=lambda i: (
                (i.run_tag or "")[:16],
                i.checkpoint.started_at if i.checkpoint is not None else "",
                i.mtime,
            ),
            reverse=True,
        )
        return infos

    def mark_superseded(self, db_path: Path, reason: str) -> builtins.list[str]:
        """Mark every open checkpoint of `db_path` superseded (a restore replaced the live DB:
        their data is older than it, whatever the live DB's `started_at` says). Returns tags."""
        marked: builtins.list[str] = []
        target = _same_file_key(db_path)
        for info in self.list():
            cp = info.checkpoint
            if cp is None or cp.done or cp.superseded:
                continue
            if _same_file_key(Path(cp.db_path)) != target:
                continue
            cp.superseded = reason
            self.save(cp)
            marked.append(cp.run_tag)
        return marked

    def clear_superseded(self, run_tags: Iterable[str]) -> None:
        """Undo `mark_superseded` for `run_tags` (the restore did not happen after all)."""
        for tag in run_tags:
            try:
                cp = self.load(tag)
            except BadCheckpoint:
                continue
            cp.superseded = None
            self.save(cp)


def _same_file_key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())
