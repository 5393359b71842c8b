"""`salesmap-tui --demo`: the app on an in-process sandbox, working in ./salesmap-demo/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from salesmap_tui.config import (
    DEFAULT_BACKUP_DIR,
    DEFAULT_DB_PATH,
    DEFAULT_LOG_DIR,
    DEMO_DIR,
    Settings,
)

# A few 429s whose body asks for 2.5 s (a visible "backing off 2.5 s" counting down on the
# dashboard) and a few 503s (the engine's own 1 s backoff). The sandbox's own limiter stays at
# real scale (hint_scale 1): the engine paces itself under it, so it seldom answers 429; when it
# does, its wait is what remains of the window. About 20 s in all at scale 600.
DEMO_FAULTS = "429:0.02:hint=2.5,503:0.015"


class DemoRefused(Exception):
    """The demo cannot start here; the message is the one line the user sees."""


def check_demo_settings(settings: Settings) -> None:
    """The demo works in ./salesmap-demo/ only: a --db-path elsewhere is refused, not ignored."""
    db = Path(settings.db_path)
    if db != Path(DEFAULT_DB_PATH) and db.resolve() != (DEMO_DIR / DEFAULT_DB_PATH).resolve():
        raise DemoRefused(
            f"--demo works on its own files in {DEMO_DIR}/ and does not take --db-path ({db}); "
            "run without --demo to use that DB"
        )


@contextmanager
def demo_environment(settings: Settings) -> Iterator[Settings]:
    """Start the sandbox, yield settings pointing at it and at ./salesmap-demo/, stop it after."""
    from salesmap_tui.sandbox import SandboxConfig, SandboxServer

    check_demo_settings(settings)
    try:
        DEMO_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = DEMO_DIR / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DemoRefused(
            f"cannot write the demo's files in {DEMO_DIR.resolve()}: {exc.strerror or exc}; "
            "start the demo from a folder you can write to"
        ) from None
    config = SandboxConfig(
        seed=7,
        scale=600,
        latency_ms=60,
        jitter_ms=40,
        faults=DEMO_FAULTS,
        hint_scale=1.0,
    )
    with SandboxServer(config) as server:
        yield settings.replace(
            token=server.token,
            base_url=server.base_url,
            min_interval=0.05,
            # the usual default layout, under the demo's own directory
            db_path=DEMO_DIR / DEFAULT_DB_PATH,
            log_dir=DEMO_DIR / DEFAULT_LOG_DIR,
            checkpoint_dir_option=None,
            backup_dir=DEMO_DIR / DEFAULT_BACKUP_DIR,
            resume=False,
            resume_run_tag=None,
            webform_only=False,
        )
