"""SalesmapApp: the Textual app, its keys, its workers, and `run_tui` (the CLI's entry point)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from salesmap_tui.config import TOKEN_ENV, Settings
from salesmap_tui.engine import errors
from salesmap_tui.engine.events import EngineEvent, RunFinished, RunResult
from salesmap_tui.engine.outcome import ExitCode
from salesmap_tui.tui.context import ScreenContext
from salesmap_tui.tui.engine_process import run_in_child
from salesmap_tui.tui.format import Clock, parse_iso, relativize, show_path, size, system_clock
from salesmap_tui.tui.messages import (
    CancelRun,
    DiscardHeld,
    EngineEventMessage,
    LetIn,
    OpenLog,
    StartRun,
    StartWebformPass,
    StopAttached,
    WatchMessage,
)
from salesmap_tui.tui.overview import HeldBack, discard_held_back
from salesmap_tui.tui.prefs import default_state_path, load_state, save_state, screenshot_dir
from salesmap_tui.tui.screens.base import AppScreen, KeyedScreen
from salesmap_tui.tui.screens.dashboard import DashboardScreen
from salesmap_tui.tui.screens.help import HelpScreen
from salesmap_tui.tui.screens.history import HistoryScreen
from salesmap_tui.tui.screens.restore import RestoreScreen
from salesmap_tui.tui.screens.resume import ResumeScreen
from salesmap_tui.tui.screens.webform import WebformScreen
from salesmap_tui.tui.watch import (
    POLL_S,
    HolderFound,
    HolderGone,
    RunWatcher,
    WatchedEvents,
    WatchReport,
)
from salesmap_tui.tui.widgets.confirm import ConfirmScreen
from salesmap_tui.tui.widgets.error_modal import ErrorModal, describe_error

T = TypeVar("T")

MISSING_TOKEN_TEXT = (
    f"No API token: set {TOKEN_ENV} in the environment and start salesmap-tui again. "
    "History, restore and checkpoints work without it."
)

# The App's modes and the screen each starts with (made once, with the screen context, when the
# mode is first shown; the App keeps them to route engine events and reloads down to them).
MODE_SCREENS: dict[str, type[AppScreen] | type[DashboardScreen]] = {
    "dashboard": DashboardScreen,
    "resume": ResumeScreen,
    "restore": RestoreScreen,
    "webform": WebformScreen,
    "history": HistoryScreen,
}


class SalesmapApp(App[int]):
    """Run, watch, resume, restore and review Salesmap snapshots."""

    TITLE = "salesmap-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    DEFAULT_MODE = "dashboard"  # (the modes are added in __init__: MODE_SCREENS)
    # How often the dashboard draws progress at most (seconds); 0 draws after every burst.
    # 4 draws a second read as live; each draw of the dashboard costs the event loop (and the
    # engine thread, through the GIL) tens of ms on a busy machine (bench/bench_ui.py).
    ui_refresh_s = 0.25
    # The app's own runs go in a child process (tui/engine_process.py); True runs the engine on
    # a thread of this process instead, as before (a fallback, and what a debugger can step into).
    engine_in_process = False

    # The footers come from the screens (screens/base.py: Quit and Help first, then each
    # screen's own keys); these make the keys work everywhere, modals included.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("r", "start_run", "Run", id="app.run", show=False),
        Binding("c", "cancel_run", "Cancel", id="app.cancel", show=False),
        Binding("x", "stop_attached", "Stop it safely", id="app.stop", show=False),
        Binding("d", "switch_mode('dashboard')", "Dashboard", id="app.dashboard", show=False),
        Binding("s", "switch_mode('resume')", "Resume", id="app.resume", show=False),
        Binding("b", "switch_mode('restore')", "Backups", id="app.restore", show=False),
        Binding("w", "switch_mode('webform')", "Web forms", id="app.webform", show=False),
        Binding("h", "switch_mode('history')", "History", id="app.history", show=False),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = False,
        clock: Clock = system_clock,
        base_dir: Path | None = None,
        autostart: bool | None = None,
        state_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.state_path = state_path or default_state_path()
        self.settings = settings
        self.demo = demo
        self.now = clock
        self.base_dir = base_dir or Path.cwd()
        # what every screen is handed (attributes down; they post messages up)
        self.screen_context = ScreenContext(settings, self.base_dir, clock, demo)
        self._screens: dict[str, KeyedScreen] = {}  # mode -> its screen, once shown
        for mode, screen_class in MODE_SCREENS.items():
            self.add_mode(mode, functools.partial(self._new_screen, mode, screen_class))
        self.autostart = demo if autostart is None else autostart
        self.run_active = False
        self.run_kind: str | None = None
        self._cancel = threading.Event()
        self._engine_worker: Worker[RunResult] | None = None
        self.last_result: RunResult | None = None
        self.watch_poll_s = POLL_S
        self._watcher: RunWatcher | None = None
        self._watched_pid: int | None = None

    # --- screens --------------------------------------------------------------------------------
    def _new_screen(
        self, mode: str, screen_class: type[AppScreen] | type[DashboardScreen]
    ) -> KeyedScreen:
        """A mode's screen, the first time the mode is shown; the App keeps it."""
        screen: KeyedScreen
        if screen_class is DashboardScreen:
            # (ui_refresh_s as set before the app runs; dashboard.refresh_s changes it later)
            screen = DashboardScreen(self.screen_context, refresh_s=self.ui_refresh_s)
        else:
            screen = screen_class(self.screen_context)
        screen.run_active = self.run_active
        self._screens[mode] = screen
        return screen

    @property
    def dashboard(self) -> DashboardScreen:
        screen = self.get_screen_for_mode("dashboard")
        assert isinstance(screen, DashboardScreen)
        return screen

    def get_screen_for_mode(self, mode: str) -> Screen[Any] | None:
        """The screen of a mode, if that mode was ever shown."""
        return self._screens.get(mode)

    @property
    def run_active(self) -> bool:
        """A run of ours (or a swap) is going; every screen is told (it refuses what clashes)."""
        return self._run_active

    @run_active.setter
    def run_active(self, active: bool) -> None:
        self._run_active = active
        for screen in self._screens.values():
            screen.run_active = active

    def on_mount(self) -> None:
        self.sub_title = "demo (local sandbox)" if self.demo else ""
        theme = load_state(self.state_path).get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.load_overview()
        self._watcher = RunWatcher(
            self.settings.lock_path,
            self.settings.log_dir,
            self._post_watch,
            # our own run's child holds the lock until it has ended, after its RunFinished
            paused=lambda: self.run_active or self._engine_running(),
            poll_s=self.watch_poll_s,
        )
        self._watcher.start()
        if self.autostart:
            if self.demo:
                self.call_after_refresh(self._demo_start)
            else:
                self.call_after_refresh(self.action_start_run)

    def _demo_start(self) -> None:
        """The demo's first run, unless an unfinished demo run can be continued (asks first)."""
        checkpoint_dir = self.settings.checkpoint_dir

        def unfinished() -> str | None:
            from salesmap_tui.engine.checkpoint import CheckpointManager

            for info in CheckpointManager(checkpoint_dir).list():
                if info.checkpoint is not None and info.problem is None:
                    return info.run_tag
            return None

        self.run_in_thread(unfinished, group="demo-start", description="demo checkpoints")

    def _demo_offer(self, tag: str | None) -> None:
        if tag is None:
            self.action_start_run()
            return

        def answer(yes: bool | None) -> None:
            self.action_start_run(resume_run_tag=tag if yes else None)

        self.push_screen(
            ConfirmScreen(
                "Continue the unfinished demo run?",
                f"Demo run {tag} stopped before it finished; its checkpoint and temp DB are "
                "in salesmap-demo/. Continue it, or start a fresh run (the unfinished one "
                "stays resumable from Resume (s)).",
                yes="Continue it",
                no="Start fresh",
            ),
            answer,
        )

    def _remember_theme(self, theme: Any) -> None:
        name = getattr(theme, "name", None)
        if isinstance(name, str):
            save_state(self.state_path, theme=name)

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        """Save an SVG of the screen: in Downloads, or the working directory when there is none;
        the toast says where."""
        from textual._files import generate_datetime_filename

        name = filename or generate_datetime_filename(self.title, ".svg", time_format)
        folders = [Path(path)] if path else [screenshot_dir(), Path.cwd()]
        for folder in folders:
            try:
                saved = self.save_screenshot(name, str(folder))
            except OSError:
                continue
            self.notify(f"Screenshot saved to {saved}", title="Screenshot", markup=False)
            return None
        self.notify(
            f"Could not save the screenshot in {', '.join(map(str, folders))}",
            severity="error",
            markup=False,
        )
        return None

    def _post_watch(self, report: WatchReport) -> None:
        self.post_message(WatchMessage(report))  # from the watcher's thread: thread-safe

    def on_unmount(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.join(timeout=2)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "switch_mode" and parameters:
            # the key to the screen one is on is no news in its footer
            return parameters[0] != self.current_mode
        return True

    def load_overview(self) -> None:
        """The dashboard reads the newest run and the live DB again (in its own thread)."""
        self.dashboard.load_overview()

    # --- another process's run ------------------------------------------------------------------
    @on(WatchMessage)
    def _on_watch(self, message: WatchMessage) -> None:
        report = message.report
        if not isinstance(self.get_screen_for_mode("dashboard"), DashboardScreen):
            return
        dash = self.dashboard
        if self.run_active:
            return  # our own run holds the lock now; what the watcher saw is over
        if isinstance(report, HolderFound):
            self._watched_pid = report.holder.pid
            dash.attach(report.holder)
            self.notify(
                f"Another run is going (PID {report.holder.pid}); showing it read-only.",
                title="Watching a run",
                markup=False,
            )
        elif isinstance(report, WatchedEvents):
            if self._watched_pid != report.holder.pid:
                return
            for t, event in report.events:
                dash.apply(event, parse_iso(t) or self.now())
        elif isinstance(report, HolderGone):
            if self._watched_pid != report.holder.pid:
                return
            self._watched_pid = None
            dash.watched_run_ended(
                None if report.finished else f"PID {report.holder.pid} ended without a result"
            )
            if dash.result is not None:
                result = dash.result
                self.notify(
                    f"{result.kind} {result.run_tag} (PID {report.holder.pid}): {result.status}",
                    title=f"Watched run {result.status}",
                    severity="information" if result.status == "done" else "warning",
                    markup=False,
                )
            self.load_overview()
            for mode in ("resume", "history", "webform", "restore"):
                screen = self.get_screen_for_mode(mode)
                if isinstance(screen, AppScreen):
                    screen.reload()

    @on(StopAttached)
    def _on_stop_attached(self, _message: StopAttached) -> None:
        self.action_stop_attached()

    def action_stop_attached(self) -> None:
        """SIGTERM to the watched run's process, after asking (it saves a checkpoint, exits 143)."""
        holder = self.dashboard.holder
        if holder is None or not self.dashboard.view.active:
            self.notify("No run of another process is being watched.", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if not yes or self._watched_pid != holder.pid:
                return
            try:
                os.kill(holder.pid, signal.SIGTERM)
            except OSError as exc:
                self.show_error("Cannot stop it", f"PID {holder.pid}: {exc.strerror or exc}")
                return
            self.dashboard.cancel_requested()
            self.notify(f"Sent SIGTERM to PID {holder.pid}: it saves a checkpoint and stops.")

        body = Text(f"PID {holder.pid}")
        if holder.cmdline:
            body.append(f" · {holder.cmdline}", "dim")
        body.append(
            "\n\nIt gets SIGTERM, stops at the next page and saves a checkpoint; the live DB "
            "is not touched. You can continue it later from Resume (s)."
        )
        self.push_screen(
            ConfirmScreen("Stop the other run safely?", body, yes="Stop it", no="Let it run"),
            answer,
        )

    # --- snapshots the shrink guard held back -----------------------------------------------------
    @on(LetIn)
    def _on_let_in(self, message: LetIn) -> None:
        self.action_let_in(message.held)

    @on(DiscardHeld)
    def _on_discard_held(self, message: DiscardHeld) -> None:
        self.action_discard_held(message.held)

    def action_let_in(self, held: HeldBack) -> None:
        """Swap a held-back snapshot in, after a look and a yes (the live DB is backed up)."""
        if self.run_active:
            self.notify("A run is active: decide after it ends.", severity="warning")
            return
        base = self.base_dir
        body = Text("Snapshot ")
        body.append(held.run_tag, "bold")
        body.append(" lost rows against the live DB:\n")
        for shrink in held.shrinks:
            body.append(f"  {shrink.describe()}\n", "bold red")
        if not held.shrinks:
            body.append(f"  {held.reason}\n", "dim")
        body.append("\nIt replaces the live DB ")
        body.append(show_path(self.settings.db_path, base), "bold")
        body.append(", which is backed up first into ")
        body.append(show_path(self.settings.backup_dir, base), "bold")
        body.append(" (restore it from Backups, b). Let it in only if those tables really shrank.")

        def answer(yes: bool | None) -> None:
            if yes and not self.run_active:
                self._promote(held)

        self.push_screen(
            ConfirmScreen(
                "Let the held-back snapshot in?", body, yes="Let it in", no="Keep it held back"
            ),
            answer,
        )

    def _promote(self, held: HeldBack) -> None:
        from salesmap_tui.engine import api

        settings = self.settings
        self.run_active = True  # no run of ours starts while it swaps
        self.run_kind = "snapshot"
        self.dashboard.refresh_bindings()
        self.notify(f"Letting {held.run_tag} in…", markup=False)
        self.run_in_thread(
            lambda: api.promote_snapshot(settings, Path(held.path)),
            group="promote",
            description="let a held-back snapshot in",
        )

    def _promoted(self, result: RunResult) -> None:
        self.run_active = False
        self.dashboard.finish(result)
        self._run_finished(result)

    def action_discard_held(self, held: HeldBack) -> None:
        """Delete a held-back snapshot file (nothing else), after asking."""
        base = self.base_dir
        body = Text("This deletes ")
        body.append(show_path(held.path, base), "bold")
        body.append(f" (snapshot {held.run_tag}")
        if held.size_bytes is not None:
            body.append(f", {size(held.size_bytes)}")
        body.append(
            "), and nothing else: the live DB, its backups and the history stay as they are."
        )

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            settings, path = self.settings, Path(held.path)

            def discard() -> Path:
                discard_held_back(settings, path)
                return path

            self.run_in_thread(
                discard, group="discard-held", description="discard a held-back snapshot"
            )

        self.push_screen(
            ConfirmScreen("Discard the held-back snapshot?", body, yes="Discard", no="Keep it"),
            answer,
        )

    # --- engine runs ----------------------------------------------------------------------------
    @on(StartRun)
    def _on_start_run(self, message: StartRun) -> None:
        self.action_start_run(resume_run_tag=message.resume_run_tag)

    @on(StartWebformPass)
    def _on_start_webform_pass(self, _message: StartWebformPass) -> None:
        if self.start_webform_pass():
            webform = self.get_screen_for_mode("webform")
            if isinstance(webform, WebformScreen):
                webform.pass_started()

    @on(CancelRun)
    def _on_cancel_run(self, _message: CancelRun) -> None:
        self.action_cancel_run()

    def action_start_run(self, resume_run_tag: str | None = None) -> None:
        """Start a full snapshot (or continue `resume_run_tag`) on the dashboard."""
        self._start_engine(
            self.settings.replace(resume_run_tag=resume_run_tag, webform_only=False), "snapshot"
        )

    def start_webform_pass(self) -> bool:
        """The web-form-only pass; its progress reaches both the web-form screen and dashboard."""
        return self._start_engine(self.settings.replace(webform_only=True), "webform")

    def _start_engine(self, settings: Settings, kind: str) -> bool:
        if self.run_active:
            self.notify("A run is already active; cancel it first (c).", severity="warning")
            return False
        watched = self.dashboard.holder
        if watched is not None and self.dashboard.view.active:
            self.notify(
                f"Another run (PID {watched.pid}) holds the DB; it is shown here. "
                "x stops it safely.",
                severity="warning",
                markup=False,
            )
            return False
        if not settings.token:
            self.push_screen(ErrorModal("No API token", MISSING_TOKEN_TEXT))
            return False
        if kind == "snapshot" and self.current_mode != "dashboard":
            self.switch_mode("dashboard")
        self.run_active = True
        self.run_kind = kind
        self._cancel = threading.Event()
        self.dashboard.run_requested()
        self._engine_worker = self._run_engine(settings, kind, self._cancel)
        return True

    def _engine_running(self) -> bool:
        worker = self._engine_worker
        return worker is not None and not worker.is_finished

    @work(thread=True, exclusive=True, exit_on_error=False, group="engine", description="engine")
    def _run_engine(self, settings: Settings, kind: str, cancel: threading.Event) -> RunResult:
        def on_event(event: EngineEvent) -> None:
            self.post_message(EngineEventMessage(event))

        if self.engine_in_process:
            from salesmap_tui.engine import api

            if kind == "webform":
                return api.run_webform_only(settings, on_event, cancel)
            return api.run_snapshot(settings, on_event, cancel)
        # its own process: the engine's threads and this app's drawing do not share one GIL
        return run_in_child(
            settings, "webform" if kind == "webform" else "snapshot", on_event, cancel
        )

    @on(EngineEventMessage)
    def _on_engine_event(self, message: EngineEventMessage) -> None:
        event = message.event
        if not isinstance(self.get_screen_for_mode("dashboard"), DashboardScreen):
            return  # the app is closing; the engine's last events have nowhere to go
        if self.dashboard.holder is not None and not self.dashboard.view.active:
            self.dashboard.holder = None  # our own run now: the watched one is over
        self.dashboard.apply(event)
        webform = self.get_screen_for_mode("webform")
        if isinstance(webform, WebformScreen) and self.run_kind == "webform":
            webform.apply(event)
        if isinstance(event, RunFinished):
            self._run_finished(event.result)

    def _run_finished(self, result: RunResult) -> None:
        if self.last_result is result:
            return
        self.last_result = result
        self.run_active = False
        self.load_overview()
        severity: SeverityLevel = "warning"
        if result.status == "done":
            severity = "information"
        elif result.status == "failed":
            severity = "error"
        self.notify(
            f"{result.kind} {result.run_tag}: {result.status} (details on the dashboard)",
            title=f"Run {result.status}",
            severity=severity,
            markup=False,
        )
        if result.status == "failed" and result.exit_code == ExitCode.USAGE:
            # A usage problem found once the run was under way (a 401 on the first page, ...):
            # the same error modal as one raised before the start, titled by its kind.
            title = result.failure.title if result.failure is not None else "Cannot start"
            message = result.message
            if self.settings.token:
                message = message.replace(self.settings.token, "***")
            self.show_error(title, message)
        for mode in ("resume", "history", "webform", "restore"):
            screen = self.get_screen_for_mode(mode)
            if isinstance(screen, WebformScreen) and self.run_kind == "webform":
                screen.show_result(result)  # also reloads the status
            elif isinstance(screen, AppScreen):
                screen.reload()

    def action_cancel_run(self) -> None:
        if not self.run_active:
            self.notify("No run is active.", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes and self.run_active:
                self._cancel.set()
                self.dashboard.cancel_requested()
                self.notify("Cancelling: the engine saves a checkpoint at the next page.")

        self.push_screen(
            ConfirmScreen(
                "Cancel the run?",
                "The engine stops at the next page and saves a checkpoint; the live DB is not "
                "touched. You can continue it later from Resume (s).",
                yes="Cancel run",
                no="Keep running",
            ),
            answer,
        )

    # --- the App's own thread workers (each screen runs its own: screens/base.py) ---------------
    def run_in_thread(self, fn: Callable[[], T], *, group: str, description: str) -> Worker[T]:
        """Blocking work (SQLite, files) off the event loop; `_thread_done` gets its result,
        an error goes to the error modal."""
        return self.run_worker(
            fn,
            thread=True,
            exclusive=True,
            group=group,
            description=description,
            exit_on_error=False,
        )

    def _thread_done(self, group: str, result: Any) -> None:
        if group == "demo-start":
            self._demo_offer(result)
        elif group == "promote":
            self._promoted(result)
        elif group == "discard-held":
            self.notify(f"Discarded {Path(result).name}", markup=False)
            self.load_overview()

    def _thread_failed(self, group: str, _error: BaseException) -> None:
        if group == "promote":
            self.run_active = False
            self.load_overview()
        elif group == "discard-held":
            self.load_overview()

    @on(Worker.StateChanged)
    def _on_worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "engine":
            if event.state == WorkerState.SUCCESS and isinstance(worker.result, RunResult):
                if self.last_result is not worker.result:
                    # The engine normally sends RunFinished itself; this covers it if not.
                    self.dashboard.finish(worker.result)
                    self._run_finished(worker.result)
            elif event.state == WorkerState.ERROR:
                self.run_active = False
                error = worker.error or Exception()
                title, message = describe_error(error, self.settings.token)
                self.dashboard.run_failed_to_start(f"{title}: {message}")
                pid = getattr(error, "pid", None)
                if isinstance(error, errors.LockHeld) and pid not in (None, os.getpid()):
                    # cron got there first: follow its run instead of a dead end
                    self.notify(
                        f"{message}. Showing that run.",
                        title=title,
                        severity="warning",
                        markup=False,
                    )
                    if self._watcher is not None:
                        self._watcher.poll_now()
                else:
                    self.show_error(title, message)
                self.load_overview()
            elif event.state == WorkerState.CANCELLED:
                self.run_active = False
            return
        if event.state == WorkerState.SUCCESS:
            self._thread_done(worker.group, worker.result)
        elif event.state == WorkerState.ERROR:
            error = worker.error or Exception("unknown error")
            self._thread_failed(worker.group, error)
            self.show_error(*describe_error(error, self.settings.token))

    def show_error(self, title: str, message: str) -> None:
        self.push_screen(ErrorModal(title, relativize(message, self.base_dir)))

    @on(OpenLog)
    def _on_open_log(self, message: OpenLog) -> None:
        self.open_log(message.path)

    def open_log(self, log_path: str) -> None:
        """A run's log in the log viewer (e switches to its events file)."""
        from salesmap_tui.tui.screens.logview import LogScreen

        self.push_screen(LogScreen(self.screen_context, log_path))

    # --- help, palette, quit --------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen_context))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start snapshot run", "Crawl every endpoint now", self.action_start_run)
        yield SystemCommand("Cancel run", "Stop and save a checkpoint", self.action_cancel_run)
        yield SystemCommand(
            "Dashboard", "Watch the current run", lambda: self.switch_mode("dashboard")
        )
        yield SystemCommand(
            "Resume a checkpoint", "Continue an unfinished run", lambda: self.switch_mode("resume")
        )
        yield SystemCommand(
            "Restore a backup", "Roll the live DB back", lambda: self.switch_mode("restore")
        )
        yield SystemCommand(
            "Web forms", "Status and a web-form-only pass", lambda: self.switch_mode("webform")
        )
        yield SystemCommand(
            "Run web-form pass", "Refresh webform_history only", self._palette_webform_pass
        )
        yield SystemCommand(
            "Run history", "Every run, with charts", lambda: self.switch_mode("history")
        )
        yield SystemCommand("Help", "Keys and file locations", self.action_help)

    def _palette_webform_pass(self) -> None:
        self.switch_mode("webform")
        self.start_webform_pass()

    async def action_quit(self) -> None:
        if not self.run_active:
            self.exit(0)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._cancel.set()
                self.dashboard.cancel_requested()
                self.notify("Saving a checkpoint before quitting…")
                self._quit_after_engine()

        self.push_screen(
            ConfirmScreen(
                "Quit while a run is active?",
                "The run is cancelled and a checkpoint saved first; you can resume it later.",
                yes="Quit",
                no="Stay",
            ),
            answer,
        )

    @work(exclusive=True, group="quit")
    async def _quit_after_engine(self) -> None:
        worker = self._engine_worker
        if worker is not None and worker.is_running:
            with contextlib.suppress(Exception):  # nothing to report once we are leaving
                await worker.wait()
        self.exit(0)


def run_tui(settings: Settings, *, demo: bool = False) -> int:
    """Open the app (the CLI calls this); with `demo`, on a local sandbox in ./salesmap-demo/."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # a cron line that forgot `snapshot` must not hang or print screens of escapes
        print(
            "salesmap-tui: error: no terminal (stdin or stdout is not a tty); "
            "for a headless run use `salesmap-tui snapshot`",
            file=sys.stderr,
            flush=True,
        )
        return 2
    if demo:
        from salesmap_tui.tui.demo import DemoRefused, demo_environment

        try:
            with demo_environment(settings) as demo_settings:
                app = SalesmapApp(demo_settings, demo=True)
                code = app.run()
        except DemoRefused as exc:
            print(f"salesmap-tui: error: {exc}", file=sys.stderr, flush=True)
            return 2
    else:
        app = SalesmapApp(settings)
        code = app.run()
    return 0 if code is None else int(code)
