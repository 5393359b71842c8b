"""The bench's achievable bound (`chain_floor`) against every schedule of small cases.

With integer data an earliest-start schedule of a fixed order is integral, so the best of all
orders, each scheduled as early as the rules allow, is the true optimum of the relaxation the
bound solves: one chain whose request j + 1 leaves no sooner than turns[j] after request j,
others free, every two requests at least `gap` apart, the run ending `last` after the last
request left.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_bound_ratio", BENCH / "bench_bound_ratio.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(spec.name, module)  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _best(turns: list[int], others: int, gap: int, last: int) -> int:
    n = len(turns) + 1
    best: int | None = None
    for chain_at in itertools.combinations(range(n + others), n):
        chain_slots = set(chain_at)
        t = prev = -gap
        chain_prev: int | None = None
        j = 0
        for i in range(n + others):
            t = prev + gap if i else 0
            if i in chain_slots:
                if chain_prev is not None:
                    t = max(t, chain_prev + turns[j - 1])
                chain_prev = t
                j += 1
            prev = t
        end = prev + last
        best = end if best is None else min(best, end)
    assert best is not None
    return best


@pytest.mark.parametrize(
    ("turns", "others", "gap", "last"),
    [
        ([10, 10, 10], 4, 4, 10),  # a turn fits one other; the second stretches it
        ([10, 10, 10], 7, 4, 10),  # more others than the turns hold: the tail takes them
        ([3, 3], 3, 4, 3),  # turns shorter than the gap
        ([12, 5, 9, 12], 5, 4, 7),  # uneven turns
        ([25, 25], 3, 4, 25),  # the chain alone binds
        ([8, 8, 8, 8], 0, 3, 8),  # no others at all
    ],
)
def test_chain_floor_is_the_best_schedule(
    turns: list[int], others: int, gap: int, last: int
) -> None:
    floor = _bench().chain_floor([float(t) for t in turns], others, float(gap), float(last))
    assert floor == pytest.approx(_best(turns, others, gap, last))


def test_the_balanced_cell_of_the_issue_is_out_of_reach() -> None:
    """lead-bound at 300 ms: 127 requests, a 50-page chain. The issue's bound is
    max(127 x 0.12, 50 x 0.3) = 15.24 s; no schedule is under 16.68 s (1.094 x)."""
    floor = _bench().chain_floor([0.3] * 49, 77, 0.12, 0.3)
    assert floor == pytest.approx(16.68)
    assert floor > 1.05 * max(127 * 0.12, 50 * 0.3)
