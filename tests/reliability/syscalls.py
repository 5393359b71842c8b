"""strace traces of real runs: the order of data fsync → rename → folder fsync, and power cuts.

`trace(cmd, ...)` runs a command under `strace -f -y` and returns its file-system calls in order.
`order_violations` checks them against what durability needs. `FileSystem` replays them and can
say, at any call, what a power cut would have left on disk: for each folder, the entries it had
at its last fsync (or before the run), each file with the bytes it had at its last fsync — every
byte not yet fsynced is dropped (the POSIX minimum: nothing more is promised). A second model keeps
every name change (metadata written in order at once) and half of each file's unsynced writes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FS_CALLS = (
    "open,openat,creat,close,write,pwrite64,writev,pwritev,pwritev2,lseek,ftruncate,truncate,"
    "fsync,fdatasync,sync_file_range,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,"
    "rmdir,link,linkat,symlink,symlinkat,sendfile,copy_file_range,splice,fallocate,dup,dup2,dup3,"
    "fcntl"
)
_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:<(.*?)>)?(.*)$", re.S)
_FD = re.compile(r"^(-?\d+)<(.*)>$", re.S)


@dataclass(frozen=True)
class Call:
    index: int
    name: str
    args: list[str]
    ret: int
    ret_path: str | None


def strace_path() -> str:
    path = shutil.which("strace")
    if path is None:
        raise RuntimeError("strace is not installed (Debian: apt-get install -y strace)")
    return path


def trace(
    cmd: Sequence[str],
    out: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    data: bool = False,
    timeout: float = 300,
) -> tuple[subprocess.CompletedProcess[str], list[Call]]:
    """Run `cmd` under strace; its calls (with written bytes when `data`)."""
    size = str(1 << 22) if data else "0"
    args = [strace_path(), "-f", "-y", "-qq", "-s", size, "-e", f"trace={FS_CALLS}"]
    if data:
        args.append("-xx")
    args += ["-o", str(out), *cmd]
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done, parse(out.read_text(encoding="utf-8", errors="surrogateescape"))


def parse(text: str) -> list[Call]:
    """Calls in order of completion; `<unfinished ...>` halves joined with their resumption."""
    pending: dict[str, str] = {}
    calls: list[Call] = []
    for raw in text.split("\n"):
        m = _LINE.match(raw)
        if not m:
            continue
        pid, body = m.groups()
        if body.startswith("+++") or body.startswith("---"):
            continue
        if body.endswith("<unfinished ...>"):
            pending[pid] = body[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", body, re.S)
        if resumed:
            body = pending.pop(pid, resumed.group(1) + "(") + resumed.group(2)
        cm = _CALL.match(body)
        if not cm:
            continue
        name, argtext, ret, ret_path, _rest = cm.groups()
        path = None if ret_path is None else decode_path(ret_path)
        calls.append(
            Call(len(calls), name, split_args(argtext), -1 if ret == "?" else int(ret), path)
        )
    return calls


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments (quotes, brackets and <paths> respected)."""
    out: list[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "[{<(":
            depth += 1
        elif ch in "]}>)":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def unquote(arg: str) -> bytes:
    """A string argument as bytes (`-xx` hex or strace's C escapes); `...` means it was cut."""
    if arg.endswith("..."):
        raise ValueError("strace cut a buffer short: raise -s")
    if not arg.startswith('"'):
        raise ValueError(f"not a string argument: {arg[:40]}")
    body = arg[1:-1]
    if re.fullmatch(r"(\\x[0-9a-f]{2})*", body):
        return bytes.fromhex(body.replace("\\x", ""))
    return body.encode("latin-1", "surrogateescape").decode("unicode_escape").encode("latin-1")


def decode_path(text: str) -> str:
    """A `-y` path annotation as text (`-xx` shows it hex-escaped; a gone file is "(deleted)")."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    return raw.decode("utf-8", "surrogateescape").removesuffix(" (deleted)")


def fd_path(arg: str) -> tuple[int, str | None]:
    m = _FD.match(arg)
    if m:
        return int(m.group(1)), decode_path(m.group(2))
    try:
        return int(arg), None
    except ValueError:
        return -1, None


def path_arg(arg: str, cwd: Path) -> str:
    p = unquote(arg).decode("utf-8", "surrogateescape")
    return os.path.normpath(os.path.join(cwd, p))


def _dirfd_path(args: list[str], i: int, cwd: Path) -> str:
    """The path of `*at(dirfd, path)` arguments at i, i+1."""
    rel = unquote(args[i + 1]).decode("utf-8", "surrogateescape")
    if rel.startswith("/"):
        return os.path.normpath(rel)
    if args[i].startswith("AT_FDCWD"):
        return os.path.normpath(os.path.join(cwd, rel))
    _fd, base = fd_path(args[i])
    return os.path.normpath(os.path.join(base or str(cwd), rel))


@dataclass
class Op:
    """One call reduced to what durability is about."""

    index: int
    kind: str  # create, mkdir, write, truncate, fsync, rename, unlink, open
    path: str  # the file (or folder) concerned
    dest: str | None = None  # rename's target
    data: bytes | None = None
    offset: int | None = None  # None: at the descriptor's position
    fd: int | None = None
    append: bool = False
    length: int | None = None


O_CREAT = 0o100
O_TRUNC = 0o1000
O_APPEND = 0o2000


def _flags(text: str) -> tuple[bool, bool, bool]:
    return "O_CREAT" in text, "O_TRUNC" in text, "O_APPEND" in text


def reduce(calls: Iterable[Call], cwd: Path, *, data: bool = False) -> list[Op]:
    """The calls as file-system operations; a write the replay cannot model raises."""
    ops: list[Op] = []
    for c in calls:
        if c.ret < 0:
            continue
        a = c.args
        if c.name in ("open", "openat", "creat"):
            if c.ret_path is None:
                continue
            flags = a[2] if c.name == "openat" else (a[1] if len(a) > 1 else "O_CREAT|O_TRUNC")
            creat, trunc, append = _flags(flags)
            if c.name == "creat":
                creat, trunc = True, True
            ops.append(Op(c.index, "open", c.ret_path, fd=c.ret, append=append))
            if creat:
                ops.append(Op(c.index, "create", c.ret_path, fd=c.ret))
            if trunc:
                ops.append(Op(c.index, "truncate", c.ret_path, length=0))
        elif c.name in ("write", "pwrite64"):
            fd, path = fd_path(a[0])
            if path is None:
                continue
            payload = unquote(a[1])[: c.ret] if data else None
            offset = int(a[3]) if c.name == "pwrite64" else None
            ops.append(Op(c.index, "write", path, data=payload, offset=offset, fd=fd,
                          length=c.ret))  # fmt: skip
        elif c.name in ("writev", "pwritev", "pwritev2", "sendfile", "copy_file_range", "splice"):
            fd, path = fd_path(a[1] if c.name in ("sendfile", "copy_file_range") else a[0])
            if c.name == "sendfile":
                fd, path = fd_path(a[0])
            if path is not None and data:
                raise NotImplementedError(f"{c.name} into {path}: the replay cannot model it")
            if path is not None:
                ops.append(Op(c.index, "write", path, fd=fd, length=c.ret))
        elif c.name == "lseek":
            fd, path = fd_path(a[0])
            if path is not None:
                ops.append(Op(c.index, "seek", path, fd=fd, offset=c.ret))
        elif c.name == "ftruncate":
            _fd, path = fd_path(a[0])
            if path is not None:
                ops.append(Op(c.index, "truncate", path, length=int(a[1])))
        elif c.name == "truncate":
            ops.append(Op(c.index, "truncate", path_arg(a[0], cwd), length=int(a[1])))
        elif c.name in ("fsync", "fdatasync"):
            _fd, path = fd_path(a[0])
            if path is not None:
                ops.append(Op(c.index, "fsync", path))
        elif c.name == "rename":
            ops.append(Op(c.index, "rename", path_arg(a[0], cwd), dest=path_arg(a[1], cwd)))
        elif c.name in ("renameat", "renameat2"):
            ops.append(Op(c.index, "rename", _dirfd_path(a, 0, cwd), dest=_dirfd_path(a, 2, cwd)))
        elif c.name == "unlink":
            ops.append(Op(c.index, "unlink", path_arg(a[0], cwd)))
        elif c.name == "unlinkat":
            ops.append(Op(c.index, "unlink", _dirfd_path(a, 0, cwd)))
        elif c.name == "rmdir":
            ops.append(Op(c.index, "unlink", path_arg(a[0], cwd)))
        elif c.name == "mkdir":
            ops.append(Op(c.index, "mkdir", path_arg(a[0], cwd)))
        elif c.name == "mkdirat":
            ops.append(Op(c.index, "mkdir", _dirfd_path(a, 0, cwd)))
        elif c.name == "close":
            fd, path = fd_path(a[0])
            if path is not None:
                ops.append(Op(c.index, "close", path, fd=fd))
    return ops


# --- the order check ----------------------------------------------------------------------------
IGNORED_SUFFIXES = ("-shm", "-journal", ".lock")


def _ours(path: str, root: str) -> bool:
    return (path == root or path.startswith(root + os.sep)) and not path.endswith(IGNORED_SUFFIXES)


def order_violations(ops: Sequence[Op], root: Path, existing: set[str]) -> list[str]:
    """Every publication under `root` in a durable order, and no checkpoint ahead of its rows.

    - a rename into place: the source's last write is fsynced before the rename, and the
      target's folder is fsynced after it;
    - a file or folder created (and not gone again by the end): its folder fsynced after, and
      a new folder made durable before anything inside it is published;
    - a checkpoint renamed into place: every write to a temp DB (and its -wal) so far fsynced.
    """
    r = str(root)
    last_write: dict[str, int] = {}
    last_fsync: dict[str, int] = {}
    problems: list[str] = []
    created: dict[str, int] = {}  # path -> index of its creation, still to be made durable
    renamed: dict[str, int] = {}  # target folder -> index of a rename still to be made durable
    present = set(existing)
    for op in ops:
        if op.kind == "write" or op.kind == "truncate":
            if op.kind == "truncate" and op.path not in last_write and op.length == 0:
                pass  # O_TRUNC on a file being created: nothing to lose yet
            last_write[op.path] = op.index
        elif op.kind == "fsync":
            last_fsync[op.path] = op.index
            if op.path in created and any(os.path.dirname(p) == op.path for p in present):
                problems.append(
                    f"#{op.index} {op.path} publishes its entries while it is itself not durable "
                    f"(created #{created[op.path]}, its folder not fsynced since)"
                )
            for path in [p for p in created if os.path.dirname(p) == op.path]:
                del created[path]
            renamed.pop(op.path, None)
        elif op.kind in ("create", "mkdir"):
            if op.path not in present:
                present.add(op.path)
                if _ours(op.path, r):
                    created[op.path] = op.index
        elif op.kind == "unlink":
            present.discard(op.path)
            created.pop(op.path, None)
            last_write.pop(op.path, None)  # a file gone holds no rows a checkpoint could need
            last_fsync.pop(op.path, None)
        elif op.kind == "rename" and op.dest is not None:
            present.discard(op.path)
            present.add(op.dest)
            created.pop(op.path, None)
            if not _ours(op.dest, r):
                continue
            w = last_write.get(op.path, -1)
            if w >= 0 and last_fsync.get(op.path, -1) < w:
                problems.append(f"#{op.index} rename {op.path} -> {op.dest} before its data fsync")
            renamed[os.path.dirname(op.dest)] = op.index
            if os.path.dirname(op.dest) in created:
                problems.append(f"#{op.index} rename into {op.dest}: its folder is not durable")
            name = os.path.basename(op.dest)
            if name.startswith("checkpoint_") and name.endswith(".json"):
                for path, wi in last_write.items():
                    if _is_temp_db(path) and last_fsync.get(path, -1) < wi:
                        problems.append(
                            f"#{op.index} checkpoint {name} published with unsynced rows in "
                            f"{path} (write #{wi}, fsync #{last_fsync.get(path)})"
                        )
            for key in [k for k in last_write if k == op.path]:
                last_write[op.dest] = last_write.pop(key)
                if key in last_fsync:
                    last_fsync[op.dest] = last_fsync.pop(key)
    problems += [f"#{i} {p} created, its folder never fsynced after" for p, i in created.items()]
    problems += [f"#{i} rename into {d}, folder never fsynced after" for d, i in renamed.items()]
    return problems


def _is_temp_db(path: str) -> bool:
    name = os.path.basename(path).removesuffix("-wal")
    return bool(re.search(r"\.\d{8}T\d{6}Z-[0-9a-f]{4}\.tmp$", name))


# --- the power cut ------------------------------------------------------------------------------
@dataclass
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""
    is_dir: bool = False
    # writes since the last fsync, in order: (offset, bytes) or (length, None) for a truncate
    pending: list[tuple[int, bytes | None]] = field(default_factory=list)

    def written_back(self, fraction: float) -> bytes:
        """The content if writeback had flushed the first `fraction` of the unsynced writes."""
        out = bytearray(self.durable)
        for at, chunk in self.pending[: int(len(self.pending) * fraction)]:
            if chunk is None:
                del out[at:]
                out.extend(b"\0" * (at - len(out)))
            else:
                out.extend(b"\0" * (at - len(out)))
                out[at : at + len(chunk)] = chunk
        return bytes(out)


class FileSystem:
    """Replays ops on a model of `root`; `cut(i)` is what survives a power cut before op i."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._names: dict[str, int] = {}  # path -> inode, now
        self._durable_dirs: dict[str, dict[str, int]] = {}  # folder -> entries at its fsync
        self._inodes: dict[int, _Inode] = {}
        self._pos: dict[int, int] = {}  # fd -> position
        self._append: dict[int, bool] = {}
        self._add(self.root, _Inode(is_dir=True))
        for dirpath, dirs, files in os.walk(root):
            for d in dirs:
                self._add(os.path.join(dirpath, d), _Inode(is_dir=True))
            for f in files:
                p = os.path.join(dirpath, f)
                content = Path(p).read_bytes()
                self._add(p, _Inode(bytearray(content), content))
        for path, ino in self._names.items():
            if self._inodes[ino].is_dir:
                self._durable_dirs[path] = self._entries(path)

    def _add(self, path: str, inode: _Inode) -> int:
        ino = len(self._inodes) + 1
        self._inodes[ino] = inode
        self._names[path] = ino
        return ino

    def _entries(self, folder: str) -> dict[str, int]:
        return {p: i for p, i in self._names.items() if os.path.dirname(p) == folder}

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def apply(self, op: Op) -> None:
        if not self._inside(op.path):
            return
        kind = op.kind
        if kind == "open" and op.fd is not None:
            self._pos[op.fd] = 0
            self._append[op.fd] = op.append
        elif kind == "create" and op.path not in self._names:
            self._add(op.path, _Inode())
        elif kind == "mkdir":
            self._add(op.path, _Inode(is_dir=True))
        elif kind == "write":
            node = self._inodes[self._names[op.path]]
            assert op.data is not None, "trace the run with data=True"
            if op.offset is not None:
                at = op.offset
            elif op.fd is not None and self._append.get(op.fd):
                at = len(node.data)
            else:
                at = self._pos.get(op.fd or -1, 0)
            end = at + len(op.data)
            if len(node.data) < at:
                node.data.extend(b"\0" * (at - len(node.data)))
            node.data[at:end] = op.data
            node.pending.append((at, op.data))
            if op.offset is None and op.fd is not None:
                self._pos[op.fd] = end
        elif kind == "seek" and op.fd is not None and op.offset is not None:
            self._pos[op.fd] = op.offset
        elif kind == "truncate" and op.length is not None:
            node = self._inodes[self._names[op.path]]
            del node.data[op.length :]
            if len(node.data) < op.length:
                node.data.extend(b"\0" * (op.length - len(node.data)))
            node.pending.append((op.length, None))
        elif kind == "fsync":
            node = self._inodes[self._names[op.path]]
            if node.is_dir:
                self._durable_dirs[op.path] = self._entries(op.path)
            else:
                node.durable = bytes(node.data)
                node.pending.clear()
        elif kind == "rename" and op.dest is not None:
            ino = self._names.pop(op.path)
            self._names[op.dest] = ino
            if self._inodes[ino].is_dir:  # a folder's children move with it
                for p in [p for p in self._names if p.startswith(op.path + os.sep)]:
                    self._names[op.dest + p[len(op.path) :]] = self._names.pop(p)
        elif kind == "unlink":
            self._names.pop(op.path, None)

    def durable_tree(self, writeback: float | None = None) -> dict[str, bytes | None]:
        """path -> bytes (None: a folder) that a power cut now would leave.

        `writeback` (0..1): a file system that makes every name change durable at once
        (metadata journalled in order, as ext4 does within seconds) and had flushed that share
        of each file's unsynced writes, file by file in no common order — where a checkpoint
        ahead of its rows shows (the checkpoint fsynced, half of the rows it covers not).
        """
        out: dict[str, bytes | None] = {}
        if writeback is not None:
            for path, ino in self._names.items():
                node = self._inodes[ino]
                if path != self.root:
                    out[path] = None if node.is_dir else node.written_back(writeback)
            return out

        def walk(folder: str) -> None:
            for path, ino in self._durable_dirs.get(folder, {}).items():
                node = self._inodes[ino]
                if node.is_dir:
                    out[path] = None
                    walk(path)
                else:
                    out[path] = node.durable

        walk(self.root)
        return out

    def write_tree(self, tree: dict[str, bytes | None]) -> None:
        """Make `root` hold exactly `tree` (files 0600, folders 0700)."""
        shutil.rmtree(self.root)
        os.mkdir(self.root, 0o700)
        for path in sorted(tree):
            content = tree[path]
            if content is None:
                os.makedirs(path, 0o700, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
