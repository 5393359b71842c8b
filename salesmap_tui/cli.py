"""Command line: a headless command, or the TUI (imported only then). Exit codes: CONTRACT.md."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from salesmap_tui import __version__
from salesmap_tui.config import (
    BASE_URL_ENV,
    DEFAULT_BACKUP_DIR,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_CONCURRENCY,
    DEFAULT_DB_PATH,
    DEFAULT_KEEP_BACKUPS,
    DEFAULT_LOG_DIR,
    DEFAULT_MAX_WAIT,
    DEFAULT_REQUEST_TIMEOUT,
    MIN_INTERVAL,
    TOKEN_ENV,
    ConfigError,
    Settings,
    base_url_from_env,
    token_from_env,
)

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    run failed (API or network errors after retries, I/O failure); the live DB is untouched
  2    usage, configuration or bad input (no token, token rejected, refused base URL,
       unusable checkpoint / backup / path, another run holds the lock)
  3    snapshot done but the swap fell back (new DB at <stem>_<run_tag>.db)
  4    snapshot done and swapped, but the web-form pass failed
  130  interrupted by SIGINT (checkpoint saved; resume with --resume)
  143  interrupted by SIGTERM (checkpoint saved; resume with --resume)
"""

TOKEN_HELP = f"The API token is read from the environment variable {TOKEN_ENV} only."


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for flags and options whose default is "not given"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _path_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("paths")
    g.add_argument("--db-path", type=Path, default=DEFAULT_DB_PATH, help="the live SQLite DB")
    g.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="run logs and history")
    g.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="checkpoints (default: <log-dir>/checkpoints)",
    )
    g.add_argument("--backup-dir", type=Path, default=DEFAULT_BACKUP_DIR, help="gzip backups")
    return p


def _run_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("run options")
    g.add_argument(
        "--keep-backups",
        type=_non_negative_int,
        default=DEFAULT_KEEP_BACKUPS,
        help="keep the newest N backups (0 keeps all)",
    )
    g.add_argument(
        "--checkpoint-interval",
        type=_positive_int,
        default=DEFAULT_CHECKPOINT_INTERVAL,
        help="save a checkpoint every N pages of an endpoint",
    )
    g.add_argument("--no-backup", action="store_true", help="do not back up the live DB first")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest unfinished run (none: start a fresh one)",
    )
    g.add_argument("--resume-run-tag", metavar="TAG", help="continue this unfinished run")
    g.add_argument(
        "--webform-only",
        action="store_true",
        help="only refresh webform_history in the live DB (no crawl, no backup)",
    )
    g.add_argument(
        "--base-url",
        default=None,
        help=f"API base URL ending in /v2 (env {BASE_URL_ENV}; default https://salesmap.kr/api/v2)",
    )
    g.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help="endpoints crawled at once (all under one pacer)",
    )
    g.add_argument(
        "--min-interval",
        type=_non_negative_float,
        default=MIN_INTERVAL,
        help=(
            "seconds between any two requests; 0 turns pacing off (neither this nor the "
            "100-per-10-s window: local sandboxes and benchmarks only)"
        ),
    )
    g.add_argument(
        "--max-wait",
        type=_non_negative_float,
        default=DEFAULT_MAX_WAIT,
        help="cap in seconds on any single retry wait",
    )
    g.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds before a request times out (then retried)",
    )
    g.add_argument("--quiet", action="store_true", help="print errors only")
    return p


def build_parser() -> argparse.ArgumentParser:
    paths, run = _path_options(), _run_options()
    parser = argparse.ArgumentParser(
        prog="salesmap-tui",
        description=(
            "Take a full snapshot of a Salesmap CRM workspace into one SQLite file, and watch, "
            "resume, roll back and refresh it from a terminal UI.\n\n"
            "Without a command: open the TUI. " + TOKEN_HELP
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
        parents=[paths, run],
    )
    parser.add_argument("--version", action="version", version=f"salesmap-tui {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the TUI on the built-in sandbox in ./salesmap-demo/ (no token, no network)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser(
        "snapshot",
        help="run a snapshot headless (for cron)",
        description="Run a snapshot without the UI: one line per event. " + TOKEN_HELP,
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
        parents=[paths, run],
    )
    restore = sub.add_parser(
        "restore",
        help="restore the live DB from a gzip backup (verified first)",
        description=(
            "Verify a gzip backup (gunzip + integrity check), back up the current live DB, "
            "then swap the backup in. Asks first unless --yes."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
        parents=[paths],
    )
    restore.add_argument("backup", type=Path, metavar="BACKUP", help="a .db.gz backup file")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument(
        "--keep-backups",
        type=_non_negative_int,
        default=DEFAULT_KEEP_BACKUPS,
        help="keep the newest N backups (0 keeps all)",
    )
    history = sub.add_parser(
        "history",
        help="show the run history",
        formatter_class=_Formatter,
        parents=[paths],
    )
    history.add_argument("--json", action="store_true", help="one JSON array of history records")
    sub.add_parser(
        "checkpoints",
        help="list the checkpoints and their progress",
        formatter_class=_Formatter,
        parents=[paths],
    )
    sandbox = sub.add_parser(
        "sandbox",
        help="serve a local Salesmap-compatible API (no network, no real data)",
        formatter_class=_Formatter,
    )
    from salesmap_tui.sandbox.cli import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(sandbox)
    return parser


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Build the one Settings object from parsed options and the environment."""
    values: dict[str, Any] = {
        "db_path": args.db_path,
        "log_dir": args.log_dir,
        "checkpoint_dir_option": args.checkpoint_dir,
        "backup_dir": args.backup_dir,
        "token": token_from_env(environ),
    }
    for name in (
        "keep_backups",
        "checkpoint_interval",
        "no_backup",
        "resume",
        "resume_run_tag",
        "webform_only",
        "concurrency",
        "min_interval",
        "max_wait",
        "request_timeout",
        "quiet",
    ):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    base_url = getattr(args, "base_url", None) or base_url_from_env(environ)
    values["base_url"] = base_url.rstrip("/")
    return Settings(**values)


def _err(message: str) -> None:
    print(f"salesmap-tui: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command == "sandbox":
        from salesmap_tui.sandbox.cli import run as run_sandbox

        return run_sandbox(args)
    settings = settings_from_args(args)
    try:
        if args.command in ("snapshot", None) and args.resume_run_tag and args.resume:
            raise ConfigError("use either --resume or --resume-run-tag, not both")
        if args.command in ("snapshot", "restore", "history", "checkpoints"):
            from salesmap_tui import commands

            return commands.dispatch(args.command, args, settings)
        settings.validate()
    except ConfigError as exc:
        _err(str(exc))
        return 2
    from salesmap_tui.tui.app import run_tui

    return run_tui(settings, demo=args.demo)


class SignalCancel:
    """SIGINT/SIGTERM set a cancel event (the engine saves a checkpoint and stops)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._out = out
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalCancel:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:  # a second Ctrl+C: the user means it
            os._exit(128 + signum)
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"salesmap-tui: {name} received: saving a checkpoint and stopping "
            "(press again to quit at once)",
            file=self._out,
            flush=True,
        )
        self.event.set()

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
