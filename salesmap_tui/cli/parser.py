"""The command line's parser: every command, option and its help (CONTRACT.md), and the
settings they resolve to (options over environment over config file over defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from salesmap_tui import __version__
from salesmap_tui.config import (
    BASE_URL_ENV,
    CONFIG_ENV,
    CONFIG_FILE_NAME,
    DEFAULT_BACKUP_DIR,
    DEFAULT_BASE_URL,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_DB_PATH,
    DEFAULT_KEEP_BACKUPS,
    DEFAULT_KEEP_RUNS,
    DEFAULT_LOG_DIR,
    DEFAULT_MAX_SHRINK,
    DEFAULT_MAX_WAIT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RESUME_MAX_AGE,
    DEFAULT_STATUS_MAX_AGE,
    DEFAULT_SWAP,
    MIN_INTERVAL,
    PROFILE_ENV,
    SWAP_MODES,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    ConfigError,
    ResolvedSettings,
    Settings,
    parse_concurrency,
    resolve_settings,
)

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    run failed (API or network errors after retries, I/O failure); the live DB is untouched
  2    usage, configuration or bad input (no token, token rejected, refused base URL,
       unusable checkpoint / backup / path, another run holds the lock)
  3    snapshot done but the swap fell back (new DB at <stem>_<run_tag>.db)
  4    snapshot done and swapped, but the web-form pass failed
  5    snapshot done but held back by the shrink guard (new DB at <stem>_<run_tag>.db)
  130  interrupted by SIGINT (checkpoint saved; resume with --resume)
  143  interrupted by SIGTERM (checkpoint saved; resume with --resume)
"""

TOKEN_HELP = (
    f"The API token is read from env {TOKEN_ENV}, else from the file named by env "
    f"{TOKEN_FILE_ENV} or the config key token_file (readable by its owner only), "
    "never from the config file itself."
)
USER_CONFIG_HINT = "<user config dir>/salesmap-tui/config.toml"


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


def _concurrency(text: str) -> int:
    try:
        return parse_concurrency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


# --- options --------------------------------------------------------------------------------------
# Every option's default is SUPPRESS, so the namespace holds only what the command line gave; the
# same option may then stand before or after the subcommand (the subcommand's parser no longer
# writes its defaults over the global ones), and the config file and the environment fill the rest.
# Settings fields these options set (everything else in the namespace is per-invocation).
SETTINGS_OPTIONS = (
    "db_path",
    "log_dir",
    "checkpoint_dir",
    "backup_dir",
    "keep_backups",
    "checkpoint_interval",
    "no_backup",
    "resume",
    "resume_run_tag",
    "webform_only",
    "base_url",
    "concurrency",
    "min_interval",
    "max_wait",
    "request_timeout",
    "quiet",
    "max_shrink",
    "resume_max_age",
    "swap",
    "keep_runs",
)
_SETTINGS_FIELD = {"checkpoint_dir": "checkpoint_dir_option"}

S = argparse.SUPPRESS


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {text})")
    return value


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=S,
        help=(
            f"TOML config file (default: env {CONFIG_ENV}, else ./{CONFIG_FILE_NAME}, else "
            f"{USER_CONFIG_HINT})"
        ),
    )
    g.add_argument(
        "--profile",
        metavar="NAME",
        default=S,
        help=f"use the config file's [profiles.NAME] (env {PROFILE_ENV})",
    )


def _add_path_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "paths (relative to the working directory; in a config file, to its folder)"
    )
    g.add_argument(
        "--db-path", type=Path, default=S, help=f"the live SQLite DB (default {DEFAULT_DB_PATH})"
    )
    g.add_argument(
        "--log-dir", type=Path, default=S, help=f"run logs and history (default {DEFAULT_LOG_DIR})"
    )
    g.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=S,
        help="checkpoints (default <log-dir>/checkpoints)",
    )
    g.add_argument(
        "--backup-dir", type=Path, default=S, help=f"gzip backups (default {DEFAULT_BACKUP_DIR})"
    )


def _add_retention_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--keep-backups",
        type=_non_negative_int,
        default=S,
        help=f"keep the newest N backups, 0 keeps all (default {DEFAULT_KEEP_BACKUPS})",
    )
    g.add_argument(
        "--keep-runs",
        type=_non_negative_int,
        default=S,
        help=(
            "keep the logs, events files and checkpoints of the newest N finished runs "
            f"(default {DEFAULT_KEEP_RUNS})"
        ),
    )
    g.add_argument(
        "--swap",
        choices=SWAP_MODES,
        default=S,
        help=(
            "how a new DB goes live: in-place (SQLite backup API, readers see it on their next "
            "query), rename (os.replace), auto = in-place when the live DB is open elsewhere "
            f"(default {DEFAULT_SWAP})"
        ),
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run options")
    _add_retention_options(g)
    g.add_argument(
        "--checkpoint-interval",
        type=_positive_int,
        default=S,
        help=(
            "save a checkpoint every N pages of an endpoint "
            f"(default {DEFAULT_CHECKPOINT_INTERVAL})"
        ),
    )
    g.add_argument(
        "--no-backup", action="store_true", default=S, help="do not back up the live DB first"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        default=S,
        help="continue the newest unfinished run (none: start a fresh one)",
    )
    g.add_argument(
        "--resume-run-tag", metavar="TAG", default=S, help="continue this unfinished run"
    )
    g.add_argument(
        "--resume-max-age",
        type=_non_negative_float,
        metavar="HOURS",
        default=S,
        help=(f"--resume skips checkpoints older than this (default {DEFAULT_RESUME_MAX_AGE:g} h)"),
    )
    g.add_argument(
        "--webform-only",
        action="store_true",
        default=S,
        help="only refresh webform_history in the live DB (no crawl, no backup)",
    )
    g.add_argument(
        "--base-url",
        default=S,
        help=(
            f"API base URL ending in /v2 (env {BASE_URL_ENV}; default {DEFAULT_BASE_URL})."
            " https:// may go through a proxy from HTTPS_PROXY/ALL_PROXY (NO_PROXY honoured;"
            " a CONNECT tunnel, the token stays inside TLS); plain http:// only to loopback,"
            " and never through a proxy"
        ),
    )
    g.add_argument(
        "--concurrency",
        type=_concurrency,
        default=S,
        metavar="auto|N",
        help=(
            "requests in flight at once, across every endpoint and web form (all chains run at "
            "once under one pacer); default auto: about rate x p90 latency + 1 (8.3 requests/s "
            "x the latency seen so far), between 2 and 16"
        ),
    )
    g.add_argument(
        "--min-interval",
        type=_non_negative_float,
        default=S,
        help=(
            "seconds between any two requests; 0 turns pacing off (neither this nor the "
            f"100-per-10-s window: local sandboxes and benchmarks only) (default {MIN_INTERVAL})"
        ),
    )
    g.add_argument(
        "--max-wait",
        type=_non_negative_float,
        default=S,
        help=f"cap in seconds on any single retry wait (default {DEFAULT_MAX_WAIT:g})",
    )
    g.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=S,
        help=(
            "seconds before a request times out, then retried "
            f"(default {DEFAULT_REQUEST_TIMEOUT:g})"
        ),
    )
    g.add_argument(
        "--max-shrink",
        type=_fraction,
        default=S,
        help=(
            "hold back a snapshot whose list table lost more than this share of its rows "
            f"(exit 5); 1 turns the guard off (default {DEFAULT_MAX_SHRINK})"
        ),
    )
    g.add_argument("--quiet", action="store_true", default=S, help="print errors only")


def _add_json_option(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--json", action="store_true", default=S, help=help_text)


def _add_status_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-age",
        type=_non_negative_float,
        metavar="HOURS",
        default=S,
        help=(
            "exit 1 when the newest full run finished longer ago than this "
            f"(default {DEFAULT_STATUS_MAX_AGE:g})"
        ),
    )


def _add_restore_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", default=S, help="do not ask for confirmation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesmap-tui",
        description=(
            "Take a full snapshot of a Salesmap CRM workspace into one SQLite file, and watch, "
            "resume, roll back and refresh it from a terminal UI.\n\n"
            "Without a command: open the TUI. Options may stand before or after the command. "
            + TOKEN_HELP
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"salesmap-tui {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        default=S,
        help="open the TUI on the built-in sandbox in ./salesmap-demo/ (no token, no network)",
    )
    # the global parser knows every option of every command, so any of them may come first
    _add_config_options(parser)
    _add_path_options(parser)
    _add_run_options(parser)
    _add_json_option(parser, "machine-readable output (snapshot, history, status)")
    _add_status_options(parser)
    _add_restore_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, epilog=EXIT_CODES_HELP, formatter_class=_Formatter, **kwargs)
        _add_config_options(p)
        _add_path_options(p)
        return p

    snapshot = command(
        "snapshot",
        help="run a snapshot headless (for cron)",
        description="Run a snapshot without the UI: one line per event. " + TOKEN_HELP,
    )
    _add_run_options(snapshot)
    _add_json_option(
        snapshot, "print the run's events as JSON lines on stdout (as in the events file)"
    )
    restore = command(
        "restore",
        help="restore the live DB from a gzip backup (verified first)",
        description=(
            "Verify a gzip backup (gunzip + integrity check), back up the current live DB, "
            "then swap the backup in. Asks first unless --yes."
        ),
    )
    restore.add_argument("backup", type=Path, metavar="BACKUP", help="a .db.gz backup file")
    _add_restore_options(restore)
    _add_retention_options(restore.add_argument_group("restore options"))
    history = command("history", help="show the run history")
    _add_json_option(history, "one JSON array of history records")
    command("checkpoints", help="list the checkpoints and their progress")
    status = command(
        "status",
        help="for monitoring: the newest run and the live DB (exit 0 fresh and good, 1 not)",
        description=(
            "Report the newest full snapshot run and the live DB. Exit 0 when that run exited 0 "
            "and finished within --max-age hours; 1 otherwise (failed, interrupted, fell back, "
            "held back, web-form pass failed, or too old); 2 usage."
        ),
    )
    _add_status_options(status)
    _add_json_option(status, "one JSON object")
    doctor = command(
        "doctor",
        help="check the token, paths, lock, free disk and configuration, one line each",
        description=(
            "Check what a run needs: the token (one cheap request), the paths, the lock, free "
            "disk (2.5x the live DB) and which config file and profile apply. Exit 0 when all "
            "pass, 2 otherwise."
        ),
    )
    _add_run_options(doctor)
    sandbox = sub.add_parser(
        "sandbox",
        help="serve a local Salesmap-compatible API (no network, no real data)",
        formatter_class=_Formatter,
    )
    from salesmap_tui.sandbox.cli import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(sandbox)
    return parser


def cli_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields the command line gave (and only those)."""
    given = vars(args)
    return {_SETTINGS_FIELD.get(n, n): given[n] for n in SETTINGS_OPTIONS if n in given}


def resolve_from_args(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    with_token: bool = True,
) -> ResolvedSettings:
    """Settings from the parsed command line, the environment and the config file."""
    cli = cli_settings(args)
    if cli.get("resume") and cli.get("resume_run_tag"):
        raise ConfigError("use either --resume or --resume-run-tag, not both")
    if cli.get("resume_run_tag"):
        cli["resume"] = False  # a run tag on the command line wins over `resume = true` in a file
    return resolve_settings(
        cli,
        config=getattr(args, "config", None),
        profile=getattr(args, "profile", None),
        environ=environ,
        with_token=with_token,
    )


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the one Settings object from parsed options, the environment and the config file."""
    return resolve_from_args(args, environ).settings
