"""TUI test setup: snapshot baselines live in the repository's top-level `snapshots/` folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_textual_snapshot
from syrupy.location import PyTestLocation

from salesmap_tui.sandbox import SandboxConfig, SandboxServer

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "snapshots"


class TopLevelSVGExtension(pytest_textual_snapshot.SVGImageExtension):
    """pytest-textual-snapshot's SVG extension, writing to `snapshots/` instead of
    `tests/tui/__snapshots__/<module>/`: `snapshots/<module>/<test>.svg`. (syrupy relates a file
    to its test by the module name in the path, so the module folder stays.)"""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOT_DIR / test_location.basename)


# `snap_compare` looks the extension class up in its module at call time, so this is the one
# seam that redirects it without copying the fixture.
pytest_textual_snapshot.SVGImageExtension = TopLevelSVGExtension  # type: ignore[misc]


@pytest.fixture
def tui_sandbox() -> Iterator[SandboxServer]:
    """A small, fast, fault-free loopback sandbox."""
    with SandboxServer(SandboxConfig(seed=5, scale=60, forms=3, rate_limit=0)) as server:
        yield server
