"""A local Salesmap-compatible HTTP API: deterministic data, pagination quirks, rate limit, faults.

Public API: `SandboxConfig`, `SandboxServer`, `Dataset`, `ENDPOINTS`. Fault spec grammar: see
`salesmap_tui.sandbox.faults`.
"""

from __future__ import annotations

from salesmap_tui.sandbox.config import SandboxConfig
from salesmap_tui.sandbox.data import ENDPOINTS, Dataset
from salesmap_tui.sandbox.faults import FaultSpecError, parse_faults
from salesmap_tui.sandbox.server import SandboxServer

__all__ = [
    "ENDPOINTS",
    "Dataset",
    "FaultSpecError",
    "SandboxConfig",
    "SandboxServer",
    "parse_faults",
]
