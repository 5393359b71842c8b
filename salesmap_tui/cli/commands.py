"""The headless commands: snapshot, restore, history, checkpoints, status, doctor. Never
imports Textual."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from salesmap_tui.cli.printer import EventPrinter, JsonPrinter, err, quiet_closed_stdout
from salesmap_tui.cli.signals import SignalCancel
from salesmap_tui.config import (
    DEFAULT_STATUS_MAX_AGE,
    ConfigError,
    ResolvedSettings,
    Settings,
    token_from_env,
)
from salesmap_tui.engine import api
from salesmap_tui.engine.checkpoint import workspace_problem
from salesmap_tui.engine.errors import SalesmapTuiError, printable
from salesmap_tui.engine.events import (
    EventSink,
)
from salesmap_tui.engine.history import last_records, latest_per_tag


def dispatch(command: str, args: argparse.Namespace, resolved: ResolvedSettings) -> int:
    settings = resolved.settings
    as_json = bool(getattr(args, "json", False))
    try:
        if command == "snapshot":
            return cmd_snapshot(settings, as_json=as_json)
        if command == "restore":
            return cmd_restore(settings, args)
        if command == "history":
            return cmd_history(settings, as_json=as_json)
        if command == "checkpoints":
            return cmd_checkpoints(settings)
        if command == "status":
            max_age = getattr(args, "max_age", DEFAULT_STATUS_MAX_AGE)
            return cmd_status(settings, max_age_h=max_age, as_json=as_json)
        if command == "doctor":
            return cmd_doctor(resolved)
    except BrokenPipeError:
        quiet_closed_stdout()  # `history --json | head -1`: the reader had enough
        return 0
    except ConfigError as exc:
        err(str(exc))
        return 2
    except SalesmapTuiError as exc:
        err(str(exc))
        return exc.exit_code
    except OSError as exc:
        err(f"{exc.strerror or exc} ({exc.filename or 'file'}); nothing was replaced")
        return 1
    except Exception as exc:  # a bug, not bad input: still one line, no traceback by default
        if os.environ.get("SALESMAP_TUI_DEBUG"):
            raise
        err(
            f"unexpected {type(exc).__name__}: {exc} (set SALESMAP_TUI_DEBUG=1 for the "
            "traceback); the live DB is untouched unless the run log says it was replaced"
        )
        return 1
    raise ValueError(command)


def cmd_snapshot(settings: Settings, *, as_json: bool = False) -> int:
    printer: EventSink = (
        JsonPrinter(secret=settings.token) if as_json else EventPrinter(quiet=settings.quiet)
    )
    with SignalCancel() as signals:
        result = api.run_snapshot(settings, printer, signals.event)
    if result.status == "interrupted":
        return signals.exit_code if signals.signum else 130
    return result.exit_code


def _progress_line(stage: str, fraction: float) -> None:
    print(f"\r  {stage}: {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    yes = bool(getattr(args, "yes", False))
    if not yes and not sys.stdin.isatty():
        err("restore replaces the live DB: pass --yes to confirm when not at a terminal")
        return 2
    print(f"verifying {args.backup} ...", file=sys.stderr, flush=True)
    try:
        verified = api.verify_backup(settings, args.backup, _progress_line)
    finally:
        # end the progress line, so an error that follows is a line of its own
        print(file=sys.stderr, flush=True)
    tables = ", ".join(f"{name} {rows}" for name, rows in verified.tables.items())
    print(f"backup is sound: {tables or 'no tables'}", file=sys.stderr, flush=True)
    if not yes:
        answer = input(
            f"Replace {settings.db_path} with {args.backup}? The current DB is backed up to "
            f"{settings.backup_dir}/ first. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            api.discard_verified(verified)
            print("nothing restored", file=sys.stderr)
            return 0
    result = api.restore_backup(settings, verified)
    saved = result.previous_backup_path or "(there was no live DB)"
    print(f"restored {result.db_path} from {result.restored_from}; previous DB saved as {saved}")
    return 0


def _ago(seconds: float) -> str:
    import humanize

    return humanize.naturaltime(timedelta(seconds=max(0.0, seconds)))


def cmd_history(settings: Settings, *, as_json: bool) -> int:
    entries = api.read_history(settings)
    records: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, api.HistoryProblem):
            print(
                f"warning: {settings.history_path} line {entry.line_no} is not a history record "
                f"({entry.error}); skipped",
                file=sys.stderr,
            )
        else:
            records.append(entry.record)
    if as_json:
        json.dump(records, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print(f"no runs recorded in {settings.history_path}")
        return 0
    # a run may have several lines (running, then its outcome): the last one is its state
    latest = [e.record for e in latest_per_tag(entries) if isinstance(e, api.HistoryEntry)]
    print(
        f"{'run tag':<22} {'kind':<8} {'status':<11} {'started':<20} {'dur s':>7} {'rows':>9} "
        "err exit"
    )
    for rec in latest:
        tables = rec.get("tables") or {}
        rows = sum(int(t.get("rows") or 0) for t in tables.values() if isinstance(t, dict))
        print(
            f"{rec.get('run_tag', '?')!s:<22} {rec.get('kind', '?')!s:<8} "
            f"{rec.get('status', '?')!s:<11} {str(rec.get('started_at', ''))[:19]:<20} "
            f"{float(rec.get('duration_s') or 0):>7.1f} {rows:>9} "
            f"{rec.get('error_count', 0)!s:>3} {_exit_text(rec)}"
        )
    return 0


def _exit_text(rec: dict[str, Any]) -> str:
    """The run's exit code (a done run whose web-form pass failed is 4, not a plain done)."""
    if rec.get("status") == "running":
        return "-"
    code = record_exit_code(rec)
    return "?" if code is None else str(code)


def cmd_checkpoints(settings: Settings) -> int:
    infos = api.list_checkpoints(settings)
    if not infos:
        print(f"no checkpoints in {settings.checkpoint_dir}")
        return 0
    now = time.time()
    # the token is read from the environment only: a bad token file must not stop a listing
    token = settings.token or token_from_env(os.environ)
    for info in infos:
        state = info.problem or f"resumable: salesmap-tui snapshot --resume-run-tag {info.run_tag}"
        cp = info.checkpoint
        other = None
        if cp is not None and not cp.done and info.problem is None:
            other = workspace_problem(cp, settings.base_url, token, check_token=token is not None)
        if other is not None:
            state = f"not resumable here: {other}"
        print(f"{info.run_tag or info.path.name}  saved {_ago(now - info.mtime)}  {state}")
        if cp is None:
            continue
        if not cp.done:
            size = f"{info.temp_db_size} bytes" if info.temp_db_size is not None else "missing"
            print(f"  temp DB {cp.temp_db_path} ({size}), phase {cp.phase}")
        for name, ep in cp.endpoints.items():
            mark = "done" if ep.done else f"cursor {printable(ep.cursor or '-')}"
            print(f"  {name:<13} {ep.pages:>6} pages {ep.rows:>9} rows  {mark}")
        print()
    return 0


# --- status: for monitoring ----------------------------------------------------------------------
# What an old record (before exit_code was recorded) most likely exited with.
_EXIT_OF_STATUS = {"done": 0, "fallback": 3, "failed": 1, "interrupted": 130}


def record_exit_code(record: dict[str, Any]) -> int | None:
    """The run's exit code: recorded, else inferred from status (old records), else None."""
    code = record.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    status = record.get("status")
    if status == "done":
        wf = record.get("webform")
        if isinstance(wf, dict) and wf.get("status") == "failed":
            return 4
        return 0
    return _EXIT_OF_STATUS.get(str(status))


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def status_report(settings: Settings, max_age_h: float) -> tuple[int, dict[str, Any], str]:
    """(exit code, the JSON object, one text line) for `status`."""
    records = [
        rec
        for rec in last_records(settings.history_path).values()
        if rec.get("kind", "snapshot") == "snapshot" and rec.get("status") != "running"
    ]
    records.sort(key=lambda r: str(r.get("started_at") or ""))
    live = api.live_db_info(settings)
    report: dict[str, Any] = {
        "run_tag": None,
        "status": None,
        "exit_code": None,
        "finished_at": None,
        "age_s": None,
        "live_db": live,
        "tables": {},
    }
    if not records:
        return 1, report, f"FAIL: no finished snapshot run in {settings.history_path}"
    rec = records[-1]
    code = record_exit_code(rec)
    finished = _parse_time(rec.get("finished_at"))
    age_s = (datetime.now(UTC) - finished).total_seconds() if finished else None
    report.update(
        run_tag=rec.get("run_tag"),
        status=rec.get("status"),
        exit_code=code,
        finished_at=rec.get("finished_at"),
        age_s=round(age_s, 1) if age_s is not None else None,
        tables=rec.get("tables") or {},
    )
    if rec.get("reason"):
        report["reason"] = rec.get("reason")
    problems: list[str] = []
    if code != 0:
        why = f": {rec['reason']}" if rec.get("reason") else ""
        problems.append(f"exited {code if code is not None else 'unknown'}{why}")
    if age_s is None:
        problems.append("its finish time is unknown")
    elif age_s > max_age_h * 3600:
        problems.append(f"finished {age_s / 3600:.1f} h ago, more than --max-age {max_age_h:g} h")
    size = f"{live['bytes']} bytes" if live["bytes"] is not None else "missing"
    line = (
        f"snapshot run {rec.get('run_tag')} {rec.get('status')} (exit {code}), finished "
        f"{rec.get('finished_at') or '?'}; live DB {live['path']} ({size}, run {live['run_tag']})"
    )
    if problems:
        return 1, report, "FAIL: " + line + "; " + "; ".join(problems)
    return 0, report, "OK: " + line


def cmd_status(settings: Settings, *, max_age_h: float, as_json: bool) -> int:
    code, report, line = status_report(settings, max_age_h)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(line)
    return code


# --- doctor ---------------------------------------------------------------------------------------
DISK_FACTOR = 2.5  # a run needs the temp DB, a backup and room for the swap beside the live DB


def _writable_dir(path: Path) -> str | None:
    """None when `path` is (or could be created as) a writable directory; else why not."""
    current = path
    while not current.exists():
        if current.parent == current:
            break
        current = current.parent
    if not current.is_dir():
        return f"{current} is not a directory"
    if not os.access(current, os.W_OK | os.X_OK):
        return f"{current} is not writable"
    return None


def doctor_checks(resolved: ResolvedSettings) -> list[tuple[bool, str, str]]:
    """(ok, name, detail) per check, in the order printed."""
    s = resolved.settings
    out: list[tuple[bool, str, str]] = []
    from salesmap_tui.config import user_config_path

    if resolved.config_path is not None:
        where = str(resolved.config_path)
        if resolved.profile:
            where += f", profile {resolved.profile}"
    else:
        where = f"none found (./salesmap-tui.toml, {user_config_path()}); built-in defaults"
    out.append((True, "config", where))
    try:
        s.validate()
        out.append((True, "options", f"base URL {s.base_url}"))
    except ConfigError as exc:
        out.append((False, "options", str(exc)))
    out.append(_token_check(resolved))
    for label, path in (
        ("db path", s.db_path.parent),
        ("log dir", s.log_dir),
        ("checkpoint dir", s.checkpoint_dir),
        ("backup dir", s.backup_dir),
    ):
        problem = _writable_dir(path)
        shown = s.db_path if label == "db path" else path
        out.append((problem is None, label, f"{shown}" + (f": {problem}" if problem else "")))
    out.append(_lock_check(s))
    out.append(_disk_check(s))
    return out


def _token_check(resolved: ResolvedSettings) -> tuple[bool, str, str]:
    s = resolved.settings
    if not s.token:
        return False, "token", "none: set SALESMAP_TOKEN or token_file"
    try:
        s.validate()
    except ConfigError:
        return False, "token", "not tried (the options above are unusable)"
    import httpx

    from salesmap_tui.engine.client import describe_transport_error

    try:
        with httpx.Client(timeout=s.request_timeout, trust_env=True) as client:
            resp = client.get(f"{s.base_url}/user", headers={"Authorization": f"Bearer {s.token}"})
    except httpx.HTTPError as exc:
        return False, "token", f"not checked: {describe_transport_error(exc)} ({s.base_url})"
    src = resolved.token_source or "given"
    if resp.status_code == 200:
        return True, "token", f"accepted by {s.base_url}/user ({src})"
    if resp.status_code == 401:
        return False, "token", f"rejected (401) by {s.base_url} ({src})"
    return False, "token", f"{s.base_url}/user answered HTTP {resp.status_code} ({src})"


def _lock_check(s: Settings) -> tuple[bool, str, str]:
    from salesmap_tui.engine.errors import LockHeld
    from salesmap_tui.engine.lock import RunLock

    if _writable_dir(s.lock_path.parent) is not None:
        return False, "lock", f"{s.lock_path}: its folder is not writable"
    if not s.lock_path.exists():
        return True, "lock", f"{s.lock_path} free (no lock file yet)"  # doctor creates nothing
    lock = RunLock(s.lock_path)
    try:
        lock.acquire()
    except LockHeld as exc:
        return False, "lock", str(exc)
    except OSError as exc:
        return False, "lock", f"{s.lock_path}: {exc.strerror or exc}"
    lock.release()
    return True, "lock", f"{s.lock_path} free"


def _disk_check(s: Settings) -> tuple[bool, str, str]:
    import shutil

    import humanize

    folder = s.db_path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return False, "disk", f"{folder}: {exc.strerror or exc}"
    try:
        size = s.db_path.stat().st_size
    except OSError:
        return True, "disk", f"{humanize.naturalsize(free, binary=True)} free (no live DB yet)"
    need = int(size * DISK_FACTOR)
    text = (
        f"{humanize.naturalsize(free, binary=True)} free, {DISK_FACTOR:g}x the live DB is "
        f"{humanize.naturalsize(need, binary=True)}"
    )
    return free >= need, "disk", text


def cmd_doctor(resolved: ResolvedSettings) -> int:
    checks = doctor_checks(resolved)
    for ok, name, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return 0 if all(ok for ok, _, _ in checks) else 2
