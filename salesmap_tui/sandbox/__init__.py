"""A local Salesmap-compatible HTTP API: deterministic data, pagination quirks, rate limit, faults.

Public API: `SandboxConfig`, `SandboxServer`, `Dataset`, `ENDPOINTS`. Fault spec grammar: see
`salesmap_tui.sandbox.faults`. Rate limit: a sliding window per token over admitted requests;
requests the limiter rejects with 429 do not count, requests answered by an injected fault do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salesmap_tui.sandbox.config import SandboxConfig
from salesmap_tui.sandbox.data import ENDPOINTS, Dataset
from salesmap_tui.sandbox.faults import FaultSpecError, parse_faults

if TYPE_CHECKING:
    from salesmap_tui.sandbox.server import SandboxServer


def __getattr__(name: str) -> object:
    # the server pulls in uvicorn and starlette: load it only when asked, so that
    # `salesmap-tui --help` and the headless commands start fast
    if name == "SandboxServer":
        from salesmap_tui.sandbox.server import SandboxServer

        return SandboxServer
    raise AttributeError(name)


__all__ = [
    "ENDPOINTS",
    "Dataset",
    "FaultSpecError",
    "SandboxConfig",
    "SandboxServer",
    "parse_faults",
]
