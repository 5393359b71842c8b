"""`salesmap-tui --demo`: the app on an in-process sandbox, working in ./salesmap-demo/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from salesmap_tui.config import DEMO_DIR, Settings

DEMO_FAULTS = "429:0.02,503:0.02"


@contextmanager
def demo_environment(settings: Settings) -> Iterator[Settings]:
    """Start the sandbox, yield settings pointing at it and at ./salesmap-demo/, stop it after."""
    from salesmap_tui.sandbox import SandboxConfig, SandboxServer

    DEMO_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = SandboxConfig(
        seed=7,
        scale=600,
        latency_ms=60,
        jitter_ms=40,
        faults=DEMO_FAULTS,
        hint_scale=0.2,
    )
    with SandboxServer(config) as server:
        yield settings.replace(
            token=server.token,
            base_url=server.base_url,
            min_interval=0.05,
            db_path=DEMO_DIR / "salesmap_latest.db",
            log_dir=DEMO_DIR / "logs",
            checkpoint_dir_option=None,
            backup_dir=DEMO_DIR / "backups",
            resume=False,
            resume_run_tag=None,
            webform_only=False,
        )
