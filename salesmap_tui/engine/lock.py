"""RunLock: one run per DB at a time, on `<db>.lock`, naming the holder's PID. Portable.

Which lock the platform gets:
- POSIX: `fcntl.flock`. The kernel drops it when its process dies (even on SIGKILL), so a stale
  lock file on disk never blocks the next run; only a live holder does.
- Windows: `msvcrt.locking` on one byte far past the PID (a locked range cannot be read by other
  processes there, and the next run must read the PID to name the holder). Windows drops it when
  the process dies, too.
- Neither (a platform or an interpreter without both): the lock file itself is the lock, created
  with O_EXCL; a file whose PID is no longer alive is stale and taken over.

The lock file is opened without following symlinks (O_NOFOLLOW where the platform has it; a
symlink is refused elsewhere), so a planted `<db>.lock -> somefile` is never truncated or
written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from types import ModuleType

from salesmap_tui.config import FILE_MODE
from salesmap_tui.engine.errors import LockHeld, UsageError
from salesmap_tui.engine.files import ensure_private_dir

fcntl: ModuleType | None
msvcrt: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows, or an interpreter without it
    fcntl = None
try:
    import msvcrt
except ImportError:  # everywhere but Windows
    msvcrt = None

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation on the PID
# msvcrt locks this byte (past any PID text), so the PID at offset 0 stays readable
_WINDOWS_LOCK_OFFSET = 1 << 20
_PID_BYTES = 64
_FRESH_S = 10.0  # an exclusive lock file without a PID yet, younger than this, is live


class LockFileUnusable(UsageError):
    """`<db>.lock` is a symlink or not a regular file: refused (exit 2), never written through."""


def lock_kind() -> str:
    """Which lock this process uses: "flock", "msvcrt" or "exclusive-file"."""
    if fcntl is not None:
        return "flock"
    if msvcrt is not None:
        return "msvcrt"
    return "exclusive-file"


class RunLock:
    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._fd: int | None = None
        self._kind = lock_kind()

    def acquire(self) -> None:
        """Take the lock or raise `LockHeld` naming the holder's PID."""
        if self._fd is not None:
            return
        ensure_private_dir(self.lock_path.parent)
        if self._kind == "exclusive-file":
            self._fd = self._acquire_exclusive_file()
            return
        fd = self._open(os.O_RDWR | os.O_CREAT)
        try:
            _try_lock(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise self._held(pid) from None
        _write_pid(fd)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._kind == "exclusive-file":
            # remove it while it is still ours (a taker only removes a file whose PID is dead)
            with contextlib.suppress(OSError):
                self.lock_path.unlink()
            os.close(fd)
            return
        with contextlib.suppress(OSError):
            _unlock(fd)
        os.close(fd)

    # --- helpers ----------------------------------------------------------------------------------
    def _open(self, flags: int) -> int:
        if not _NOFOLLOW:
            # no O_NOFOLLOW here: refuse a symlink before opening (a race remains, at worst
            # the lock byte of another file is locked; its content is never truncated)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(self.lock_path).st_mode):
                    raise self._unusable("is a symlink")
        try:
            fd = os.open(self.lock_path, flags | _NOFOLLOW | _BINARY, FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._unusable("is a symlink") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._unusable("is not a regular file")
        return fd

    def _acquire_exclusive_file(self) -> int:
        for _ in range(3):
            try:
                fd = self._open(os.O_RDWR | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                try:
                    fd = self._open(os.O_RDONLY)
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                pid = _read_pid(fd)
                age = _age_s(fd)
                os.close(fd)
                if pid is not None and (pid == os.getpid() or _pid_alive(pid)):
                    raise self._held(pid) from None
                if pid is None and age < _FRESH_S:
                    raise self._held(None) from None  # just created: its PID is coming
                # its holder is gone (or never wrote its PID): a stale file, taken over
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
                continue
            _write_pid(fd)
            return fd
        raise self._held(None)

    def _held(self, pid: int | None) -> LockHeld:
        who = f"PID {pid}" if pid is not None else "PID unknown"
        return LockHeld(
            f"another salesmap-tui run ({who}) holds {self.lock_path}; "
            "wait for it to finish or stop it",
            pid=pid,
        )

    def _unusable(self, why: str) -> LockFileUnusable:
        return LockFileUnusable(
            f"the lock file {self.lock_path} {why}: refusing to use it (remove it if no "
            "salesmap-tui run is going on)"
        )


def _try_lock(fd: int) -> None:
    """Take the platform's non-blocking exclusive lock on `fd`; OSError when it is held."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif msvcrt is not None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _write_pid(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
    except OSError:
        pass  # the lock is what matters; the PID is only for the message


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, _PID_BYTES).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _age_s(fd: int) -> float:
    import time

    try:
        return time.time() - os.fstat(fd).st_mtime
    except OSError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:
        return True  # cannot tell: never take over a lock that may be live
    return bool(psutil.pid_exists(pid))
