"""Textual messages: engine events from the worker thread into the UI, and the requests the
screens post up to the App."""

from __future__ import annotations

from textual.message import Message

from salesmap_tui.engine.events import (
    EndpointProgress,
    EngineEvent,
    RequestStats,
    WebformProgress,
)
from salesmap_tui.tui.overview import HeldBack
from salesmap_tui.tui.watch import WatchReport


class EngineEventMessage(Message):
    """One engine event, posted (thread-safely) by the engine worker."""

    def __init__(self, event: EngineEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # Bursts of progress collapse to the newest: same endpoint, stats, or web-form counter.
        if not isinstance(message, EngineEventMessage):
            return False
        mine, theirs = self.event, message.event
        if isinstance(mine, EndpointProgress) and isinstance(theirs, EndpointProgress):
            # Keep a state change (e.g. into "backoff") even inside a burst.
            return mine.endpoint == theirs.endpoint and mine.state == theirs.state
        if isinstance(mine, RequestStats) and isinstance(theirs, RequestStats):
            return True
        return isinstance(mine, WebformProgress) and isinstance(theirs, WebformProgress)


class WatchMessage(Message):
    """What the run watcher saw (tui/watch.py): a holder found, its events, or it gone."""

    def __init__(self, report: WatchReport) -> None:
        super().__init__()
        self.report = report


class VerifyProgressMessage(Message):
    """Progress of a backup verification: stage is "gunzip" or "integrity", fraction 0..1."""

    def __init__(self, stage: str, fraction: float) -> None:
        super().__init__()
        self.stage = stage
        self.fraction = fraction

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, VerifyProgressMessage) and message.stage == self.stage


# --- requests a screen posts up to the App (messages up; the App handles them with @on) ----------
class StartRun(Message):
    """Start a full snapshot on the dashboard, or continue the run `resume_run_tag`."""

    def __init__(self, resume_run_tag: str | None = None) -> None:
        super().__init__()
        self.resume_run_tag = resume_run_tag


class StartWebformPass(Message):
    """Start the web-form-only pass (the App tells the web-form screen when it started)."""


class CancelRun(Message):
    """Cancel our own run (the App asks first)."""


class StopAttached(Message):
    """Stop the watched run of another process (the App asks first)."""


class OpenLog(Message):
    """Show a run's log in the log viewer."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class LetIn(Message):
    """Swap a snapshot the shrink guard held back in (the App asks first)."""

    def __init__(self, held: HeldBack) -> None:
        super().__init__()
        self.held = held


class DiscardHeld(Message):
    """Delete a snapshot the shrink guard held back (the App asks first)."""

    def __init__(self, held: HeldBack) -> None:
        super().__init__()
        self.held = held
