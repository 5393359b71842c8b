"""The sandbox's settings (one frozen dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SandboxConfig"]


@dataclass(frozen=True)
class SandboxConfig:
    """How the local sandbox API behaves; every random choice derives from `seed`."""

    seed: int = 1
    scale: int = 200  # records per list endpoint on day 1
    token: str = field(default="sandbox-token", repr=False)
    day: int = 1
    latency_ms: float = 0
    jitter_ms: float = 0
    rate_limit: int = 100  # requests per rate_window_s per token; 0 turns the limiter off
    rate_window_s: float = 10.0
    retry_after_header: bool = False  # also send Retry-After on the limiter's 429
    hint_scale: float = 1.0  # multiplies the wait hint in 429 bodies
    faults: str = ""  # fault spec, see salesmap_tui.sandbox.faults
    forms: int = 8  # existing web forms
    # day-1 records per list endpoint where it differs from `scale`: (("deal", 2000), ...)
    counts: tuple[tuple[str, int], ...] = ()
    submissions: int | None = None  # day-1 submissions of every form (None: seeded, by scale)
    other_per_window: int = 0  # requests another client on the token spends per window
    log_size: int = 200_000  # request-log entries kept
