"""`salesmap-tui`: a headless command, or the TUI (imported only then). Exit codes:
CONTRACT.md."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from salesmap_tui.cli.parser import build_parser, resolve_from_args
from salesmap_tui.config import (
    ConfigError,
)


def _err(message: str) -> None:
    print(f"salesmap-tui: error: {message}", file=sys.stderr, flush=True)


# commands that need no token: a bad token file must not stop them
_TOKENLESS = ("restore", "history", "checkpoints", "status")
HEADLESS = ("snapshot", "restore", "history", "checkpoints", "status", "doctor")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command == "sandbox":
        from salesmap_tui.sandbox.cli import run as run_sandbox

        return run_sandbox(args)
    if args.command is None and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # a cron line that forgot the subcommand must not hang on a TUI nobody sees
        _err(
            "no terminal for the TUI: for a headless run use `salesmap-tui snapshot` "
            "(see salesmap-tui --help)"
        )
        return 2
    try:
        resolved = resolve_from_args(args, with_token=args.command not in _TOKENLESS)
        settings = resolved.settings
        if args.command in HEADLESS:
            from salesmap_tui.cli import commands

            return commands.dispatch(args.command, args, resolved)
        settings.validate()
    except ConfigError as exc:
        _err(str(exc))
        return 2
    from salesmap_tui.tui.app import run_tui

    return run_tui(settings, demo=getattr(args, "demo", False))
