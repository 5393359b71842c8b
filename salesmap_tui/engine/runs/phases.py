"""The snapshot run as an ordered table of steps, and what a checkpoint's phase says of it.

A checkpoint records the phase a run had reached (`start` … `done`); a resumed run continues
from there. The questions a run asks of that phase ("carry web-form rows over?", "is the crawl
still to do?", "did it die after the swap?") are answered here, once, instead of by
`cp.phase in (...)` checks spread over the run.
"""

from __future__ import annotations

from dataclasses import dataclass

# a checkpoint's `phase`, in the order a run passes them
CHECKPOINT_PHASES: tuple[str, ...] = ("start", "crawl", "webform", "finalize", "swap", "done")

# the snapshot run's steps, in order (SnapshotRun has a `step_<name>` method for each). The
# backup comes late on purpose: a run that fails, or that the shrink guard holds back, makes
# no backup of a live DB it leaves as it was.
SNAPSHOT_STEPS: tuple[str, ...] = (
    "prepare",  # the temp DB: run_info, webform_history carried over, one writer per list
    "crawl",  # every list, /user, /team and the web-form pass's submissions, at once
    "finalize",  # manifest, run_info, dashboard indexes, fsync
    "shrink_guard",  # hold the snapshot back when a list shrank too much
    "backup",  # the live DB, named by the run tag of the data it holds
    "swap",  # the snapshot goes live (rename or in place)
)


def phase_index(phase: str) -> int:
    """Where `phase` lies in CHECKPOINT_PHASES; -1 for a phase this version does not know."""
    try:
        return CHECKPOINT_PHASES.index(phase)
    except ValueError:
        return -1


@dataclass(frozen=True)
class ResumePlan:
    """What a run starting from a checkpoint in `phase` does."""

    phase: str
    record_only: bool  # killed after the swap, temp DB gone: only record what happened
    carry_over_webform: bool  # a new temp DB: copy the live DB's webform_history into it
    crawling: bool  # the crawl is still to do (its phase event and checkpoints)


def plan_for(phase: str, temp_db_exists: bool) -> ResumePlan:
    """An unknown phase (a hand-edited checkpoint) is neither a fresh start nor a crawl still
    to announce: its unfinished endpoints are crawled all the same (their `done` says so)."""
    index = phase_index(phase)
    return ResumePlan(
        phase=phase,
        record_only=phase == "swap" and not temp_db_exists,
        carry_over_webform=index == 0,
        crawling=0 <= index <= phase_index("crawl"),
    )
