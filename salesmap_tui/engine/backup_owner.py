"""Which live DB a backup belongs to, so one backup folder can serve several DBs.

Two DBs `a/crm.db` and `b/crm.db` share the stem `crm`, so a backup's CONTRACT name
`<stem>_<run_tag>.db.gz` cannot tell them apart. Each backup therefore carries its source DB's
resolved path in the gzip header's comment field (RFC 1952 FCOMMENT: every gzip reader skips it,
`gunzip` and Python's `gzip` included), and the temp files of a backup being written carry a
short hash of it, so another DB's retention and orphan sweep leave them alone.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

COMMENT_PREFIX = b"salesmap-tui db="
_FLG_FEXTRA, _FLG_FNAME, _FLG_FCOMMENT, _FLG_FHCRC = 4, 8, 16, 2
HEADER_READ = 64 * 1024


def owner_id(db_path: Path) -> str:
    """The DB's identity: its folder resolved (symlinks, `..`), then its own name."""
    return str(Path(os.path.realpath(db_path.absolute().parent)) / db_path.name)


def owner_tag(db_path: Path) -> str:
    """8 hex digits naming the DB in temp file names."""
    return hashlib.sha256(owner_id(db_path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def write_gzip(fin: IO[bytes], out: IO[bytes], owner: str, chunk: int, level: int = 9) -> None:
    """gzip `fin` into `out` with `owner` in the header comment (mtime 0: reproducible)."""
    comment = COMMENT_PREFIX + quote(owner, safe="/", errors="surrogateescape").encode("ascii")
    # magic, deflate, FLG=FCOMMENT, MTIME=0, XFL=2 (best compression), OS=255 (unknown)
    xfl = b"\x02" if level == 9 else b"\x00"
    out.write(
        b"\x1f\x8b\x08" + bytes([_FLG_FCOMMENT]) + b"\0\0\0\0" + xfl + b"\xff" + comment + b"\0"
    )
    comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    crc = 0
    size = 0
    while data := fin.read(chunk):
        crc = zlib.crc32(data, crc)
        size += len(data)
        out.write(comp.compress(data))
    out.write(comp.flush())
    out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))


def read_owner(path: Path) -> str | None:
    """The owner recorded in a backup's gzip header; None for an older backup without one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_READ)
    except OSError:
        return None
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
        return None
    flags = head[3]
    pos = 10
    if flags & _FLG_FEXTRA:
        if len(head) < pos + 2:
            return None
        pos += 2 + struct.unpack("<H", head[pos : pos + 2])[0]
    if flags & _FLG_FNAME:
        end = head.find(b"\0", pos)
        if end < 0:
            return None
        pos = end + 1
    if not flags & _FLG_FCOMMENT:
        return None
    end = head.find(b"\0", pos)
    comment = head[pos:end] if end >= 0 else b""
    if not comment.startswith(COMMENT_PREFIX):
        return None
    text = comment[len(COMMENT_PREFIX) :].decode("ascii", "replace")
    return unquote(text, errors="surrogateescape")
