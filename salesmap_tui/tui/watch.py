"""Following another process's run: a thread that finds the lock's holder and reads the
events file its run writes. Plain Python (no Textual): it reports through a callback, which
the app turns into messages (posting a message is thread-safe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from salesmap_tui.engine.events import EngineEvent, EventsReader, RunFinished, RunStarted
from salesmap_tui.tui.overview import Holder, events_file_of, find_holder

POLL_S = 0.25
READ_CHUNK = 256 << 10  # per message: a long run's file replays in bites the UI can take


@dataclass(frozen=True)
class HolderFound:
    holder: Holder


@dataclass(frozen=True)
class WatchedEvents:
    holder: Holder
    path: Path
    events: list[tuple[str | None, EngineEvent]]


@dataclass(frozen=True)
class HolderGone:
    holder: Holder
    finished: bool  # its RunFinished was read (the result is on screen)


WatchReport = HolderFound | WatchedEvents | HolderGone


class RunWatcher(threading.Thread):
    """Polls the lock; while another process holds it, tails that run's events file.

    `paused()` says when not to look (the app's own run holds the lock). Works whether the
    other run started before or after this watcher: a file is always read from its start.
    """

    def __init__(
        self,
        lock_path: Path,
        log_dir: Path,
        report: Callable[[WatchReport], None],
        paused: Callable[[], bool] = lambda: False,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(name="salesmap-run-watcher", daemon=True)
        self.lock_path = lock_path
        self.log_dir = log_dir
        self.report = report
        self.paused = paused
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self.wake = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def poll_now(self) -> None:
        self.wake.set()

    def run(self) -> None:
        holder: Holder | None = None
        reader: EventsReader | None = None
        finished = False
        while not self.stop_event.is_set():
            try:
                if holder is None:
                    if not self.paused():
                        holder = find_holder(self.lock_path)
                        if holder is not None:
                            reader, finished = None, False
                            self.report(HolderFound(holder))
                else:
                    if reader is None:
                        path = events_file_of(self.log_dir, holder)
                        if path is not None:
                            reader = EventsReader(path)
                    if reader is not None:
                        finished = self._drain(holder, reader, finished)
                    current = find_holder(self.lock_path)
                    if current is None or current.pid != holder.pid:
                        if reader is not None:  # what it wrote before letting go
                            finished = self._drain(holder, reader, finished)
                        self.report(HolderGone(holder, finished))
                        holder, reader = None, None
                        continue  # a next holder (cron's next run) is looked for at once
            except Exception:  # a watcher that dies would freeze the view; keep going
                pass
            self.wake.wait(self.poll_s)
            self.wake.clear()

    def _drain(self, holder: Holder, reader: EventsReader, finished: bool) -> bool:
        """Report every complete line not yet read; True if the file's last run has finished."""
        while not self.stop_event.is_set():
            events = reader.read_new_timed(READ_CHUNK)
            if not events:
                break
            for _, event in events:
                if isinstance(event, RunStarted):
                    finished = False  # a resumed run appends to its first part's file
                elif isinstance(event, RunFinished):
                    finished = True
            self.report(WatchedEvents(holder, reader.path, events))
        return finished
