"""The snapshot run's table of steps and what a checkpoint's phase means (issue 13)."""

from __future__ import annotations

import pytest

from salesmap_tui.engine.runs.phases import (
    CHECKPOINT_PHASES,
    SNAPSHOT_STEPS,
    phase_index,
    plan_for,
)
from salesmap_tui.engine.runs.snapshot import SnapshotRun


def test_every_step_is_a_method_of_the_run() -> None:
    assert all(callable(getattr(SnapshotRun, f"step_{step}", None)) for step in SNAPSHOT_STEPS)
    assert len(set(SNAPSHOT_STEPS)) == len(SNAPSHOT_STEPS)


def test_the_backup_comes_after_everything_that_can_keep_the_live_db() -> None:
    """A run that fails or is held back must make no backup: the backup comes after the crawl,
    finalize and the shrink guard, right before the swap, which is last."""
    order = SNAPSHOT_STEPS.index
    assert order("prepare") < order("crawl") < order("finalize") < order("shrink_guard")
    assert order("shrink_guard") < order("backup") == len(SNAPSHOT_STEPS) - 2
    assert SNAPSHOT_STEPS[-1] == "swap"


@pytest.mark.parametrize(
    ("phase", "temp_exists", "record_only", "carry_over", "crawling"),
    [
        ("start", False, False, True, True),
        ("crawl", True, False, False, True),
        ("webform", True, False, False, False),
        ("finalize", True, False, False, False),
        ("swap", True, False, False, False),
        ("swap", False, True, False, False),  # killed after the swap: only record it
        ("done", True, False, False, False),
        ("no-such-phase", True, False, False, False),  # unknown: no fresh start
    ],
)
def test_what_a_resumed_run_does_from_each_phase(
    phase: str, temp_exists: bool, record_only: bool, carry_over: bool, crawling: bool
) -> None:
    plan = plan_for(phase, temp_exists)
    assert (plan.record_only, plan.carry_over_webform, plan.crawling) == (
        record_only,
        carry_over,
        crawling,
    )


def test_checkpoint_phases_are_in_run_order() -> None:
    assert [phase_index(p) for p in CHECKPOINT_PHASES] == list(range(len(CHECKPOINT_PHASES)))
    assert CHECKPOINT_PHASES[0] == "start" and CHECKPOINT_PHASES[-1] == "done"
