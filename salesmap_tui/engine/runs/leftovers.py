"""What killed runs left that nothing can use, found so disk use does not grow.

Only with the run lock held (no other run is writing), and only files no checkpoint names: a
temp DB of a run killed before its first checkpoint, partial backup files, temp DBs a newer
live snapshot superseded, and the copies a killed restore left. A checkpoint's `.json.tmp` is
kept: copying it to `.json` is the seed's manual recovery.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine.backup_owner import owner_tag
from salesmap_tui.engine.checkpoint import CheckpointManager, check_own_paths
from salesmap_tui.engine.errors import BadCheckpoint
from salesmap_tui.engine.files import with_sidecars
from salesmap_tui.engine.runtag import is_run_tag
from salesmap_tui.engine.snapshot_db import run_info_of

RESTORE_LEFTOVER_AGE_S = 3600.0
SUPERSEDED_KEEP_S = 12 * 3600.0  # as long as --resume-max-age's default


def sweep(settings: Settings, checkpoints: CheckpointManager) -> list[str]:
    """Remove the leftovers; one warning per file removed (or that could not be)."""
    why = orphans(settings, checkpoints)
    why.update(superseded_temp_dbs(settings, checkpoints))
    why.update(restore_leftovers(settings))
    warnings: list[str] = []
    for path, reason in why.items():
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                warnings.append(f"removed {path}: {reason}")
        except OSError as exc:
            warnings.append(f"could not remove leftover {path}: {exc}")
    return warnings


def orphans(settings: Settings, checkpoints: CheckpointManager) -> dict[Path, str]:
    """Temp DBs no checkpoint names, and this DB's partial backups."""
    s = settings
    named = {
        str(Path(info.checkpoint.temp_db_path).absolute())
        for info in checkpoints.list()
        if info.checkpoint is not None
    }
    tags_with_files = {
        p.name[len("checkpoint_") :].split(".json")[0]
        for p in s.checkpoint_dir.glob("checkpoint_*.json*")
    }
    found: list[Path] = []
    prefix = s.db_path.name + "."
    for temp in s.db_path.absolute().parent.glob(glob.escape(prefix) + "*.tmp"):
        tag = temp.name[len(prefix) : -len(".tmp")]
        if not is_run_tag(tag) or str(temp) in named or tag in tags_with_files:
            continue
        found += with_sidecars(temp)
    if s.backup_dir.is_dir():
        # only this DB's partial backups: another DB sharing the folder may be writing its own
        stem = glob.escape(f"{s.db_path.stem}_")
        found += list(s.backup_dir.glob(f"{stem}*.db.gz.{owner_tag(s.db_path)}*.tmp*"))
        # partial backups of older versions (8 hex digits, no owner tag)
        found += list(s.backup_dir.glob(f"{stem}*.db.gz.{'[0-9a-f]' * 8}.*tmp"))
    return {p: "left by an interrupted run, nothing could resume it" for p in found}


def superseded_temp_dbs(settings: Settings, checkpoints: CheckpointManager) -> dict[Path, str]:
    """Temp DBs of unfinished runs older than the live snapshot: `--resume` never takes them
    (it would put older data live), so they would stay forever. `--resume-run-tag` can still
    force one for SUPERSEDED_KEEP_S after its last checkpoint; then it goes. Only a
    checkpoint's own temp name is touched, and never the run being resumed."""
    s = settings
    live_started = run_info_of(s.db_path).get("started_at")
    if not live_started:
        return {}
    out: dict[Path, str] = {}
    now = time.time()
    for info in checkpoints.list():
        cp = info.checkpoint
        if cp is None or cp.done or cp.run_tag == s.resume_run_tag:
            continue
        if now - info.mtime < SUPERSEDED_KEEP_S:
            continue
        try:
            check_own_paths(cp, s.db_path)
        except BadCheckpoint:
            continue
        if cp.started_at < str(live_started):
            reason = f"run {cp.run_tag} was superseded by the live snapshot ({live_started})"
            for path in with_sidecars(Path(cp.temp_db_path)):
                out[path] = reason
    return out


def restore_leftovers(settings: Settings) -> dict[Path, str]:
    """Decompressed copies a killed restore left (`<db>.restore-*.tmp`), an hour old or more
    (a restore waiting for its confirmation keeps its fresh copy)."""
    s = settings
    pattern = glob.escape(f"{s.db_path.name}.restore-") + "*.tmp*"
    out: dict[Path, str] = {}
    now = time.time()
    for path in s.db_path.absolute().parent.glob(pattern):
        try:
            old = now - path.lstat().st_mtime > RESTORE_LEFTOVER_AGE_S
        except OSError:
            continue
        if old:
            out[path] = "left by a restore that did not finish"
    return out
