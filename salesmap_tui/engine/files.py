"""File helpers: private files/dirs, fsync, atomic writes, lock-holder lookup, and the DB swap.

`replace_file_with_retry` is the seed's name for the tmp → live DB swap: retried `os.replace`,
then a fallback file next to the live DB, never a half-written live DB.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from salesmap_tui.config import DIR_MODE, FILE_MODE, REPLACE_TRIES
from salesmap_tui.engine.crashpoints import crashpoint


def ensure_private_dir(path: Path) -> None:
    """Create `path` and its missing parents; the directories created here get 0700."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        # mkdir's mode is filtered by the umask; chmod makes it exact
        with contextlib.suppress(OSError):
            os.chmod(created, DIR_MODE)


def open_private(path: Path, mode: str = "w", encoding: str | None = None) -> IO[Any]:
    """`open()` that creates a missing file with 0600 (never a moment with wider rights)."""
    flags = os.O_CREAT
    if "a" in mode:
        flags |= os.O_APPEND | os.O_WRONLY
    elif "w" in mode:
        flags |= os.O_TRUNC | os.O_WRONLY
    elif "x" in mode:
        flags |= os.O_EXCL | os.O_WRONLY
    else:
        raise ValueError(f"open_private is for writing, not mode {mode!r}")
    if "+" in mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    fd = os.open(path, flags, FILE_MODE)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding=encoding or "utf-8")
    except BaseException:
        os.close(fd)
        raise


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is still done
    finally:
        os.close(fd)


def tmp_sibling(path: Path) -> Path:
    """A unique temp name next to `path` (same directory, so os.replace stays atomic)."""
    return path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")


def write_private_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: 0600 temp sibling, fsync, rename, fsync the dir."""
    tmp = tmp_sibling(path)
    try:
        with open_private(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def find_lock_holders(path: Path) -> list[str]:
    """Processes that have `path` open, as "name (PID n)"; [] if psutil cannot tell."""
    try:
        import psutil
    except ImportError:
        return []
    try:
        target = os.path.realpath(path)
        holders: list[str] = []
        for proc in psutil.process_iter(["pid", "name"]):
            try:
                files = proc.open_files()
            except (psutil.Error, OSError):
                continue
            if any(os.path.realpath(f.path) == target for f in files):
                holders.append(f"{proc.info.get('name') or '?'} (PID {proc.pid})")
        return holders
    except (psutil.Error, OSError):
        return []


@dataclass(frozen=True)
class ReplaceOutcome:
    replaced: bool
    final_path: Path  # always the live DB's path
    fallback_path: Path | None  # where the new file went when the swap failed
    holders: list[str] = field(default_factory=list)
    error: str | None = None


def replace_file_with_retry(
    src: Path,
    dst: Path,
    fallback: Path,
    *,
    tries: int = REPLACE_TRIES,
    delay_s: float = 0.5,
    replace: Callable[[Path, Path], None] = os.replace,
    copy: Callable[[Path, Path], object] = shutil.copy2,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> ReplaceOutcome:
    """Swap `src` into `dst` with up to `tries` attempts; else park it at `fallback`.

    On failure `dst` is left untouched. Any OSError (a Windows share lock, EACCES, EBUSY, ...)
    takes the retry path.
    """
    _match_mode(src, dst)
    last_error: OSError | None = None
    for attempt in range(1, max(tries, 1) + 1):
        try:
            replace(src, dst)
        except OSError as exc:
            last_error = exc
            if attempt < tries:
                sleep(delay_s)
            continue
        crashpoint("replaced")
        fsync_dir(dst.parent)
        return ReplaceOutcome(replaced=True, final_path=dst, fallback_path=None)

    holders = find_lock_holders(dst)
    error = f"could not replace {dst} after {tries} tries: {last_error}"
    parked: Path | None = None
    try:
        # the injected `replace` again: a lock on dst usually does not stop a rename elsewhere
        replace(src, fallback)
        parked = fallback
    except OSError as rename_exc:
        try:
            copy(src, fallback)
            fsync_file(fallback)
            parked = fallback
            with contextlib.suppress(OSError):
                src.unlink()
        except OSError as copy_exc:
            error += (
                f"; could not move it to {fallback} either "
                f"(rename: {rename_exc}; copy: {copy_exc}); the new DB is still at {src}"
            )
    if parked is not None:
        fsync_dir(fallback.parent)
    if log is not None:
        who = ", ".join(holders) if holders else "no process found holding it"
        where = f"new DB kept at {parked}" if parked else f"new DB left at {src}"
        log(f"{error}; {where}; live DB left as it was; holders of {dst}: {who}")
    return ReplaceOutcome(
        replaced=False, final_path=dst, fallback_path=parked, holders=holders, error=error
    )


def _match_mode(src: Path, dst: Path) -> None:
    """Give `src` the permission bits `dst` has (0600 if there is no `dst`)."""
    try:
        mode = stat.S_IMODE(dst.stat().st_mode)
    except OSError:
        mode = FILE_MODE
    with contextlib.suppress(OSError):
        os.chmod(src, mode)
