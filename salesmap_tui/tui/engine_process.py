"""The TUI's own runs go in a process of their own; its events come back through a pipe.

Why a process: the engine (its event loop, its writer thread) and the app's drawing shared one
interpreter, so every frame the dashboard drew was time the engine's threads waited for the GIL
(bench/bench_ui.py: the app's own run took 1.36x the engine alone, on 2 cores). In a child
process the engine runs as a headless run does, and the app only reads what it reports.

What crosses the pipe: the typed engine events (dataclasses, pickled), then either the run's
`RunResult` or the exception that stopped it before it started (a `UsageError`: no token, lock
held, a bad checkpoint), rebuilt on this side with its attributes (a `LockHeld`'s `pid`). The
settings, token included, go to the child through the pipe multiprocessing opens for it: never
on a command line or in the environment.

How it stops: the app's cancel event is passed on (a checkpoint, exit 130 as before). The child
also stops safely, with a checkpoint, when it gets SIGTERM/SIGINT/SIGHUP (the terminal closed),
or when the app's process is gone (the OS closes its end of the stop pipe). It never writes to the
terminal the app draws on: its standard streams are the null device.

No Textual here: the app calls `run_in_child` from a thread worker, as it called the engine.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Literal

from salesmap_tui.config import Settings
from salesmap_tui.engine.events import EngineEvent, RunFinished, RunResult

RunKindName = Literal["snapshot", "webform"]
# How long the child gathers events before it sends them (one pickle and one write per batch).
BATCH_S = 0.05
_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")


class EngineProcessDied(RuntimeError):
    """The engine's process ended without a result (killed, or the interpreter crashed)."""

    def __init__(self, exitcode: int | None) -> None:
        how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit {exitcode}"
        super().__init__(
            f"the engine's process ended ({how}) before it reported a result; the live DB is "
            "untouched unless the run log says it was swapped, and the run can be resumed "
            "from Resume (s) if it saved a checkpoint"
        )
        self.exitcode = exitcode


def run_in_child(
    settings: Settings,
    kind: RunKindName,
    on_event: Callable[[EngineEvent], None],
    cancel: threading.Event,
) -> RunResult:
    """Run `kind` in a child process; its events reach `on_event` (in this thread), in order.

    Returns the run's result or raises what the engine raised before the run started.
    """
    ctx = multiprocessing.get_context("spawn")  # never fork a process with running threads
    with _stderr_with_fileno():  # the Event starts multiprocessing's resource tracker too
        receiver, sender = ctx.Pipe(duplex=False)  # events, result: child -> app
        # stop: app -> child. A pipe, not a multiprocessing Event: Event.set() waits for every
        # process sleeping in wait() to wake, forever if one of them was killed meanwhile.
        # Its end closing (this process gone, however) is a stop too.
        stop_reader, stop = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=child_main,
            args=(settings, kind, sender, stop_reader),
            name="salesmap-tui engine",
            daemon=True,
        )
        proc.start()
    sender.close()  # the child holds the only writing end: EOF when it is gone
    stop_reader.close()
    stop_sent = False

    def send_stop() -> None:
        nonlocal stop_sent
        if not stop_sent:
            stop_sent = True
            with contextlib.suppress(OSError, ValueError):
                stop.send("stop")

    result: RunResult | None = None
    finished: RunResult | None = None
    error: BaseException | None = None
    try:
        while True:
            if cancel.is_set():
                send_stop()
            if not receiver.poll(0.1):
                if not proc.is_alive() and not receiver.poll(0):
                    break  # gone without closing its end (or another process holds a copy)
                continue
            try:
                tag, payload = receiver.recv()
            except (EOFError, OSError):
                break
            if tag == "events":
                for event in payload:
                    if isinstance(event, RunFinished):
                        finished = event.result
                    on_event(event)
            elif tag == "result":
                # the very object its RunFinished carried, as when the engine ran in-process
                # (the app tells "already shown" by identity)
                same = finished is not None and finished.run_tag == payload.run_tag
                result = finished if same else payload
            elif tag == "error":
                error = rebuild_error(payload)
    finally:
        if result is None and error is None and proc.is_alive():
            send_stop()  # we are leaving without an answer: let it checkpoint and stop
        proc.join(timeout=None if result is not None or error is not None else 30)
        receiver.close()
        stop.close()
    if error is not None:
        raise error
    if result is None:
        raise EngineProcessDied(proc.exitcode)
    return result


@contextlib.contextmanager
def _stderr_with_fileno() -> Iterator[None]:
    """Textual replaces sys.stderr with a capture whose fileno() is -1, which the POSIX spawn
    start method (and its resource tracker) pass on as a descriptor to keep ("bad value(s) in
    fds_to_keep"): the real stderr stands in while the child starts (the child's own stdio is
    the null device)."""
    current = sys.stderr
    try:
        usable = current is not None and current.fileno() >= 0
    except (OSError, ValueError, AttributeError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = current


# --- the child -----------------------------------------------------------------------------------
def child_main(
    settings: Settings,
    kind: RunKindName,
    sender: Connection,
    stop: Connection,
) -> None:
    """The child's entry point (module level: the spawn start method imports it by name)."""
    _quiet_stdio()
    from salesmap_tui.engine import api
    from salesmap_tui.engine.errors import CancelEvent

    cancel = CancelEvent()
    _stop_on_signals(cancel)
    outbox = _Outbox(sender)
    threading.Thread(
        target=_watch_stop, args=(stop, cancel), name="stop-watch", daemon=True
    ).start()
    try:
        if kind == "webform":
            result = api.run_webform_only(settings, outbox.put, cancel)
        else:
            result = api.run_snapshot(settings, outbox.put, cancel)
    except BaseException as exc:  # reported to the app, which shows it as before
        outbox.close()
        with contextlib.suppress(OSError):
            sender.send(("error", describe_for_pipe(exc)))
        return
    outbox.close()
    with contextlib.suppress(OSError):
        sender.send(("result", result))


class _Outbox:
    """Events gathered for up to BATCH_S, then sent as one list (the engine never waits on it)."""

    def __init__(self, sender: Connection) -> None:
        self._sender = sender
        self._lock = threading.Lock()
        self._pending: list[EngineEvent] = []
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name="event-pipe", daemon=True)
        self._thread.start()

    def put(self, event: EngineEvent) -> None:
        with self._lock:
            self._pending.append(event)
        self._wake.set()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            with contextlib.suppress(OSError):  # the app is gone: the run goes on to its end
                self._sender.send(("events", batch))

    def _pump(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(BATCH_S)
            self._flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._flush()


def _watch_stop(stop: Connection, cancel: Any) -> None:
    """The app's cancel, or the app gone: the run stops at its next page with a checkpoint."""
    try:
        stop.recv()  # the app's "stop"
        cancel.set()  # its cancel: 130, as in-process
    except (EOFError, OSError):
        cancel.cancel(143)  # its end closed: the app's process is gone (or done with us)


def _stop_on_signals(cancel: Any) -> None:
    def handle(signum: int, _frame: object) -> None:
        # the CONTRACT's codes: 130 for SIGINT; SIGTERM, SIGHUP (the terminal closed) and
        # SIGBREAK all mean "terminated": 143
        cancel.cancel(130 if signum == signal.SIGINT else 143)

    for name in _SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, handle)


def _quiet_stdio() -> None:
    """The app owns the terminal: nothing of the child may reach it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


# --- exceptions across the pipe ------------------------------------------------------------------
def describe_for_pipe(exc: BaseException) -> tuple[str, str, tuple[Any, ...], dict[str, Any], str]:
    """What is needed to raise `exc` again on the other side, attributes included."""
    cls = type(exc)
    attrs = {k: v for k, v in vars(exc).items() if _picklable(v)}
    args = tuple(a if _picklable(a) else str(a) for a in exc.args)
    return cls.__module__, cls.__qualname__, args, attrs, str(exc)


def rebuild_error(
    described: tuple[str, str, tuple[Any, ...], dict[str, Any], str],
) -> BaseException:
    """The exception the child raised, as its own class when that class is importable here."""
    module, qualname, args, attrs, text = described
    try:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(qualname)
        exc: BaseException = cls.__new__(cls)
        exc.args = args
        exc.__dict__.update(attrs)
        return exc
    except Exception:
        return RuntimeError(f"{qualname}: {text}")


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
