"""File helpers: private files/dirs, fsync, atomic writes, lock-holder lookup, and the DB swap.

`replace_file_with_retry` is the seed's name for the tmp → live DB swap (CONTRACT.md "Swap and
readers"): a rename (`os.replace`, retried) or an in-place copy through SQLite's backup API,
then a fallback file next to the live DB; never a half-written live DB, never an old
`-wal`/`-shm`/`-journal` beside a new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal
from urllib.request import pathname2url

from salesmap_tui.config import DIR_MODE, FILE_MODE, INPLACE_BUSY_TIMEOUT, REPLACE_TRIES, Settings
from salesmap_tui.engine.crashpoints import crashpoint


def ensure_private_dir(path: Path) -> None:
    """Create `path` and its missing parents; the directories created here get 0700.

    Each new directory's parent is fsynced, so a folder made here survives a power loss (a file
    published into it later would otherwise vanish with it).
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):  # outermost first: its parent existed already
        # mkdir's mode is filtered by the umask; chmod makes it exact
        with contextlib.suppress(OSError):
            os.chmod(created, DIR_MODE)
        fsync_dir(created.parent)


# O_NOFOLLOW: a symlink planted in a shared folder is refused instead of writing through it
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def create_private_fd(path: Path, flags: int) -> tuple[int, bool]:
    """`os.open(path, flags | O_CREAT | O_NOFOLLOW, 0600)`; also says whether it created the file.

    A file created here has its folder fsynced, so its name is as durable as its content.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | NOFOLLOW, FILE_MODE)
        created = True
    except FileExistsError:
        fd = os.open(path, (flags & ~os.O_EXCL) | NOFOLLOW)
        created = False
    if created:
        fsync_dir(path.parent)
    return fd, created


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
    fd = os.open(path, flags | NOFOLLOW, FILE_MODE)
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


def remove_planted_links(db: Path) -> None:
    """Before SQLite opens our own DB (a temp DB, under the lock): no symlink in its place.

    SQLite follows symlinks for the DB and for its `-wal`/`-shm`/`-journal`; a link planted in a
    shared folder would have it write into the link's target. A link where a sidecar goes is
    removed (the name is ours); one where the DB itself is refuses the run.
    """
    if db.is_symlink():
        raise OSError(errno.ELOOP, f"{db} is a symbolic link; refusing to write through it")
    for suffix in ("-wal", "-shm", "-journal"):
        side = db.with_name(db.name + suffix)
        if side.is_symlink():
            side.unlink()


def sync_sqlite_files(db: Path) -> None:
    """fsync a SQLite DB, its `-wal` and its folder: what it committed survives a power loss.

    The temp DB runs with synchronous=NORMAL (a commit is written, not fsynced); this is the
    barrier before a checkpoint that covers those commits is published.
    """
    for path in (db.with_name(db.name + "-wal"), db):
        try:
            fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(db.parent)


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


SwapMode = Literal["auto", "rename", "in-place"]
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def resolve_db_path(settings: Settings) -> Settings:
    """`settings` with --db-path absolute and its symlinks followed. A symlinked live DB has
    its target replaced (the link stays a link), and a DB has one lock, one temp DB and one
    history identity however its path is spelled."""
    resolved = Path(os.path.realpath(settings.db_path))
    return settings if resolved == settings.db_path else settings.replace(db_path=resolved)


def swap_mode(value: str) -> SwapMode:
    """The `--swap` setting as a `SwapMode` (anything unknown is `auto`)."""
    if value == "rename":
        return "rename"
    if value == "in-place":
        return "in-place"
    return "auto"


def sidecars(path: Path) -> list[Path]:
    """The `-wal`/`-shm`/`-journal` files that exist beside `path`."""
    return [p for p in with_sidecars(path)[1:] if p.exists()]


def with_sidecars(path: Path) -> list[Path]:
    """`path` and the names of its `-wal`/`-shm`/`-journal` (whether they exist or not)."""
    return [path, *(path.with_name(path.name + s) for s in SIDECAR_SUFFIXES)]


def remove_quietly(*paths: Path) -> None:
    """Unlink each of `paths` that exists; one that cannot be removed is left (cleanup only)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _uri(path: Path, mode: str) -> str:
    return f"file:{pathname2url(str(path.absolute()))}?mode={mode}"


def recover_db(path: Path, timeout_s: float = 5.0) -> list[Path]:
    """Let SQLite itself recover what a killed writer left beside `path`; returns what is left.

    A hot `-journal` holds the only copy of the pages that make the DB consistent again: it is
    never deleted by hand. Opening the DB read-write and reading rolls it back (a read-only
    reader cannot, and fails with "attempt to write a readonly database" until then). In
    rollback-journal mode, sidecars SQLite did not use (a journal whose header never reached
    the disk, an empty `-wal`, a `-shm`) are removed while holding an exclusive lock: every
    WAL-mode connection holds a shared lock, so the lock proves nobody uses them. In WAL mode
    the `-wal`/`-shm` are SQLite's (the last connection to close removes them).
    """
    if not path.is_file() or not sidecars(path):
        return sidecars(path)
    try:
        conn = sqlite3.connect(_uri(path, "rw"), uri=True, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error:
        return sidecars(path)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode != "wal" and sidecars(path):
            conn.execute("BEGIN EXCLUSIVE")
            try:
                # with the lock held SQLite has rolled back any hot journal: what is left
                # belongs to no transaction and no connection
                for leftover in sidecars(path):
                    leftover.unlink(missing_ok=True)
            finally:
                conn.execute("COMMIT")
    except (sqlite3.Error, OSError):
        pass
    finally:
        conn.close()
    return sidecars(path)


class InPlaceFailed(OSError):
    """The in-place copy did not happen; the live DB is as it was (SQLite rolled it back)."""


def copy_in_place(
    src: Path,
    dst: Path,
    *,
    busy_timeout_s: float = INPLACE_BUSY_TIMEOUT,
    steps: int = 8,
) -> None:
    """Copy the SQLite DB `src` over the live DB `dst` in one write transaction (backup API).

    Connections held open on `dst` see the new snapshot on their next query, in rollback-journal
    and in WAL mode alike; `dst` keeps its inode, mode and journal mode, and an open file (as on
    Windows) is no obstacle. Readers in the middle of a query are waited for up to
    `busy_timeout_s`. A kill midway leaves SQLite's own journal (or uncommitted WAL frames):
    the next connection rolls it back to the old snapshot.
    """
    try:
        source = sqlite3.connect(_uri(src, "ro"), uri=True)
    except sqlite3.Error as exc:
        raise InPlaceFailed(f"cannot open {src}: {exc}") from None
    try:
        target = sqlite3.connect(_uri(dst, "rw"), uri=True, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        source.close()
        raise InPlaceFailed(f"cannot open {dst} to copy into it: {exc}") from None
    try:
        target.execute("PRAGMA synchronous=FULL")
        total = int(source.execute("PRAGMA page_count").fetchone()[0])
        deadline = time.monotonic() + busy_timeout_s

        def progress(status: int, remaining: int, _total: int) -> None:
            if remaining:
                # inside the one write transaction: the journal holds the old pages
                crashpoint("inplace_step")
            if status in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() > deadline:
                raise InPlaceFailed(
                    f"{dst} stayed busy for {busy_timeout_s:.0f} s (a reader holds a "
                    "transaction open)"
                )

        crashpoint("inplace_begin")
        source.backup(
            target, pages=max(1, -(-total // max(steps, 1))), progress=progress, sleep=0.05
        )
        crashpoint("inplace_copied")
        if str(target.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            # the new pages into the file itself; readers that still need old frames keep them
            target.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        raise InPlaceFailed(f"could not copy {src} into {dst}: {exc}") from None
    finally:
        target.close()
        source.close()
    fsync_file(dst)


@dataclass(frozen=True)
class ReplaceOutcome:
    replaced: bool
    final_path: Path  # always the live DB's path
    fallback_path: Path | None  # where the new file went when the swap failed
    holders: list[str] = field(default_factory=list)
    error: str | None = None
    method: Literal["rename", "in-place"] | None = None  # how the new DB went live


def replace_file_with_retry(
    src: Path,
    dst: Path,
    fallback: Path | None,
    *,
    mode: SwapMode = "rename",
    tries: int = REPLACE_TRIES,
    delay_s: float = 0.5,
    replace: Callable[[Path, Path], None] = os.replace,
    copy: Callable[[Path, Path], object] = shutil.copy2,
    in_place: Callable[[Path, Path], None] = copy_in_place,
    holders_of: Callable[[Path], list[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> ReplaceOutcome:
    """Swap `src` into `dst` (CONTRACT.md "Swap and readers"); else park it at `fallback`.

    `rename`: `os.replace` up to `tries` times, refused while `dst` has sidecars SQLite cannot
    clear (an old `-wal` beside a renamed-in file would be applied to it). `in-place`:
    `copy_in_place`. `auto`: in place when `dst` is open in another process or has sidecars,
    else a rename, and in place when the rename fails. On failure `dst` is left as it was and
    any OSError (a Windows share lock, EACCES, EBUSY, ...) takes the next way; with no
    `fallback` the new DB stays at `src`.
    """
    find_holders = holders_of or find_lock_holders
    errors: list[str] = []
    holders: list[str] = []
    if not dst.exists():
        mode = "rename"  # nothing to copy into, and nobody can have it open
    else:
        left = recover_db(dst)
        if mode == "auto":
            holders = find_holders(dst)
            if holders or left:
                why = f"open in {', '.join(holders)}" if holders else "has " + _names(left)
                _say(log, f"swap in place: {dst} {why}")
                mode = "in-place"
        if mode == "rename" and left:
            errors.append(
                f"{dst} has {_names(left)} that SQLite could not clear (another process has it "
                "open in WAL mode?): renaming a new DB beside them would corrupt it"
            )
    if mode in ("rename", "auto") and not errors:
        _match_mode(src, dst)
        failure = _rename(src, dst, tries, delay_s, replace, sleep)
        if failure is None:
            crashpoint("replaced")
            fsync_dir(dst.parent)
            return ReplaceOutcome(True, dst, None, method="rename")
        errors.append(f"could not replace {dst} after {tries} tries: {failure}")
        if mode == "auto" and dst.is_file():
            mode = "in-place"
    if mode == "in-place":
        if not dst.is_file():
            errors.append(f"cannot copy into {dst}: it is not a file")
        else:
            try:
                in_place(src, dst)
            except OSError as exc:
                errors.append(str(exc))
            else:
                with contextlib.suppress(OSError):
                    src.unlink()
                fsync_dir(src.parent)
                return ReplaceOutcome(True, dst, None, method="in-place")

    holders = holders or find_holders(dst)
    parked = None if fallback is None else _park(src, fallback, replace, copy, errors)
    error = "; ".join(errors)
    who = ", ".join(holders) if holders else "no process found holding it"
    where = f"new DB kept at {parked}" if parked else f"new DB left at {src}"
    _say(log, f"{error}; {where}; live DB left as it was; holders of {dst}: {who}")
    return ReplaceOutcome(
        replaced=False, final_path=dst, fallback_path=parked, holders=holders, error=error
    )


def park_fallback(src: Path, fallback: Path) -> Path:
    """Move a held-back or unswappable snapshot to `fallback` (rename, else copy); its path."""
    errors: list[str] = []
    parked = _park(src, fallback, os.replace, shutil.copy2, errors)
    if parked is None:
        raise OSError(errors[-1])
    return parked


def _park(
    src: Path,
    fallback: Path,
    replace: Callable[[Path, Path], None],
    copy: Callable[[Path, Path], object],
    errors: list[str],
) -> Path | None:
    try:
        # the injected `replace` again: a lock on dst usually does not stop a rename elsewhere
        replace(src, fallback)
    except OSError as rename_exc:
        try:
            copy(src, fallback)
            fsync_file(fallback)
            with contextlib.suppress(OSError):
                src.unlink()
        except OSError as copy_exc:
            errors.append(
                f"could not move it to {fallback} either "
                f"(rename: {rename_exc}; copy: {copy_exc}); the new DB is still at {src}"
            )
            return None
    fsync_dir(fallback.parent)
    return fallback


def _rename(
    src: Path,
    dst: Path,
    tries: int,
    delay_s: float,
    replace: Callable[[Path, Path], None],
    sleep: Callable[[float], None],
) -> OSError | None:
    last_error: OSError | None = None
    for attempt in range(1, max(tries, 1) + 1):
        try:
            replace(src, dst)
            return None
        except OSError as exc:
            last_error = exc
            if attempt < tries:
                sleep(delay_s)
    return last_error


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


def _match_mode(src: Path, dst: Path) -> None:
    """Give `src` the permission bits `dst` has (0600 if there is no `dst`), and its group."""
    try:
        st = dst.stat()
    except OSError:
        with contextlib.suppress(OSError):
            os.chmod(src, FILE_MODE)
        return
    match_owner(src, st)


def match_owner(path: Path, old: os.stat_result) -> None:
    """Give `path` the group (and owner, where allowed) and mode bits of a file it replaces.

    A dashboard user reading the live DB through its group keeps access after a swap or a
    restore. The group is set first: chown may clear setgid bits, chmod then puts them back.
    A process without the right (another user's group) keeps its own: nothing else to do.
    """
    try:
        st = path.stat()
    except OSError:
        return
    if (st.st_uid, st.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.chown(path, old.st_uid, old.st_gid)
        except OSError:
            with contextlib.suppress(OSError):
                os.chown(path, -1, old.st_gid)
    with contextlib.suppress(OSError):
        os.chmod(path, stat.S_IMODE(old.st_mode))
