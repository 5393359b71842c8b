"""Which checkpoint a snapshot run continues, if any: `--resume-run-tag`, `--resume`, or none.

A resume must never mix two workspaces, two days or two DBs in one table, and never put older
data live than the live DB holds. The rules live here, apart from the run, so they can be
tested alone: `choose()` answers the run's question, `check_resumable()` the rule for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.engine.checkpoint import (
    Checkpoint,
    CheckpointManager,
    age_hours,
    check_own_paths,
    workspace_of,
    workspace_problem,
)
from salesmap_tui.engine.errors import BadCheckpoint
from salesmap_tui.engine.files import remove_planted_links
from salesmap_tui.engine.runtag import new_run_tag, utc_now_iso
from salesmap_tui.engine.snapshot_db import run_info_of, run_tag_of


@dataclass
class ResumeChoice:
    """The checkpoint a run starts from: a resumed one, or a new one (`resumed` False)."""

    checkpoint: Checkpoint
    resumed: bool
    warnings: list[str] = field(default_factory=list)  # for the run log, once it exists


def choose(settings: Settings, checkpoints: CheckpointManager) -> ResumeChoice:
    """`--resume-run-tag` names one (refused when unusable: exit 2); `--resume` takes the newest
    usable one, skipping the others with a warning; otherwise a fresh run."""
    warnings: list[str] = []
    cp: Checkpoint | None = None
    if settings.resume_run_tag:
        cp = checkpoints.load(settings.resume_run_tag)
        if cp.done:
            raise BadCheckpoint(
                f"run {cp.run_tag} already finished; nothing to resume (start a fresh run)"
            )
    elif settings.resume:
        cp = newest_resumable(settings, checkpoints, warnings)
        if cp is None:
            warnings.append("nothing to resume: no unfinished checkpoint; starting a fresh run")
    if cp is not None:
        check_resumable(settings, cp)
        return ResumeChoice(cp, True, warnings)
    return ResumeChoice(new_checkpoint(settings), False, warnings)


def new_checkpoint(settings: Settings) -> Checkpoint:
    tag = new_run_tag()
    return Checkpoint(
        run_tag=tag,
        temp_db_path=str(settings.temp_db_path(tag).absolute()),
        db_path=str(settings.db_path.absolute()),
        settings=settings.public_dict(),
        backup_path=None,
        phase="start",
        started_at=utc_now_iso(),
        workspace=workspace_of(settings.base_url, settings.token or ""),
    )


def newest_resumable(
    settings: Settings, checkpoints: CheckpointManager, warnings: list[str]
) -> Checkpoint | None:
    """`--resume` (cron passes it every night): the newest unfinished run of this DB that can
    continue. Unusable or stale checkpoints are skipped with a warning, never deleted, so one
    broken checkpoint cannot fail every later run; `--resume-run-tag` still reaches them."""
    live_started = run_info_of(settings.db_path).get("started_at")
    for info in checkpoints.list():
        cp = info.checkpoint
        if cp is None or cp.done:
            continue
        if Path(cp.db_path).absolute() != settings.db_path.absolute():
            continue
        if live_started and cp.started_at < str(live_started):
            warnings.append(
                f"not resuming {cp.run_tag}: the live DB holds a newer snapshot "
                f"(started {live_started}); use --resume-run-tag {cp.run_tag} to force it"
            )
            continue
        try:
            check_resumable(settings, cp)
        except BadCheckpoint as exc:
            warnings.append(f"skipping checkpoint {cp.run_tag}: {exc}")
            continue
        return cp
    return None


def check_resumable(settings: Settings, cp: Checkpoint) -> None:
    """Raise BadCheckpoint when `cp` must not be continued by this run: another DB, another
    workspace, superseded by a restore, older than --resume-max-age, or its temp DB gone."""
    s = settings
    if Path(cp.db_path).absolute() != s.db_path.absolute():
        raise BadCheckpoint(f"checkpoint {cp.run_tag} belongs to {cp.db_path}, not {s.db_path}")
    other = workspace_problem(cp, s.base_url, s.token)
    if other is not None:
        raise BadCheckpoint(
            f"cannot resume {cp.run_tag}: {other}; a resume never mixes two workspaces in "
            "one DB — start a fresh run"
        )
    if cp.superseded:
        raise BadCheckpoint(
            f"cannot resume {cp.run_tag}: superseded ({cp.superseded}); its data is older "
            "than the live DB's — start a fresh run"
        )
    age = age_hours(cp)
    if age is None or age > s.resume_max_age:
        shown = "an unreadable time" if age is None else f"{age:.1f} h ago"
        raise BadCheckpoint(
            f"cannot resume {cp.run_tag}: it started {cp.started_at} ({shown}), longer ago "
            f"than --resume-max-age {s.resume_max_age:g} h; its tables would mix days — "
            "start a fresh run"
        )
    temp = Path(cp.temp_db_path)
    if cp.phase == "swap" and not temp.exists():
        return  # killed after the swap: finishing only records it
    if not temp.is_file():
        raise BadCheckpoint(
            f"cannot resume {cp.run_tag}: its temp DB {temp} is gone; start a fresh run"
        )
    check_own_paths(cp, s.db_path)  # an existing file that is not ours: refused
    try:
        remove_planted_links(temp)  # before SQLite opens it, even to read its run tag
    except OSError as exc:
        raise BadCheckpoint(f"cannot resume {cp.run_tag}: {exc.strerror or exc}") from None
    tag = run_tag_of(temp)
    if tag != cp.run_tag:
        raise BadCheckpoint(
            f"cannot resume {cp.run_tag}: temp DB {temp} belongs to run {tag or 'unknown'}"
        )
