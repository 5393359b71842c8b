"""--keep-runs: run logs, events files and finished checkpoints beyond the newest N runs go.

Only runs known to belong to this DB are touched (their history records or checkpoints name its
path), so two DBs sharing a log folder never prune each other's files. Unfinished checkpoints
and the files of a run still `running` are never removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import CheckpointManager
from salesmap_tui.engine.events import events_path_for
from salesmap_tui.engine.history import last_records
from salesmap_tui.engine.runtag import is_run_tag


def same_file(a: str | Path | None, b: str | Path) -> bool:
    """Whether two spellings of a path name the same file (relative vs absolute, symlinks)."""
    if a is None:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def prune_runs(settings: Settings) -> list[Path]:
    """Remove the files of this DB's runs older than the newest `keep_runs`; what was removed."""
    keep = settings.keep_runs
    if keep <= 0:
        return []
    db = settings.db_path
    running: set[str] = set()
    # run tag -> (second in the tag, started_at to the ms, order seen): two runs that start in
    # the same second have tags whose random suffixes do not sort by time
    order: dict[str, tuple[str, str, int]] = {}

    def see(tag: str, started_at: object) -> None:
        if tag not in order:
            started = started_at if isinstance(started_at, str) else ""
            order[tag] = (tag[:16], started, len(order))

    for tag, record in last_records(settings.history_path).items():
        if is_run_tag(tag) and same_file(record.get("db_path"), db):
            see(tag, record.get("started_at"))
            if record.get("status") == "running":
                running.add(tag)
    finished_checkpoints: dict[str, Path] = {}
    for info in CheckpointManager(settings.checkpoint_dir).list():
        cp = info.checkpoint
        if cp is None or not same_file(cp.db_path, db):
            continue
        see(cp.run_tag, cp.started_at)
        if cp.done:
            finished_checkpoints[cp.run_tag] = info.path
        else:
            running.add(cp.run_tag)  # can still be resumed: its files stay
    old = sorted(order, key=order.__getitem__, reverse=True)[keep:]
    removed: list[Path] = []
    for tag in old:
        if tag in running:
            continue
        log = settings.log_path(tag)
        candidates = [log, events_path_for(log)]
        if tag in finished_checkpoints:
            candidates.append(finished_checkpoints[tag])
        for path in candidates:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
