"""A local Salesmap-compatible HTTP API: deterministic data, pagination quirks, rate limit, faults.

Public API: `SandboxConfig`, `SandboxServer`, `Dataset`, `ENDPOINTS`. Fault spec grammar: see
`salesmap_tui.sandbox.faults`. Rate limit: a sliding window per token over admitted requests;
requests the limiter rejects with 429 do not count, requests answered by an injected fault do.
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
