"""The command line, a package: `parser` (commands, options, settings), `signals` (a stop
asked by SIGINT/SIGTERM), `printer` (what a headless run prints), `commands` (the headless
commands) and `main` (the console script: a headless command, or the TUI)."""

from __future__ import annotations

from salesmap_tui.cli.main import HEADLESS, main
from salesmap_tui.cli.parser import (
    SETTINGS_OPTIONS,
    build_parser,
    cli_settings,
    resolve_from_args,
    settings_from_args,
)
from salesmap_tui.cli.signals import SignalCancel, cancel_signals, exit_code_for_signal

__all__ = [
    "HEADLESS",
    "SETTINGS_OPTIONS",
    "SignalCancel",
    "build_parser",
    "cancel_signals",
    "cli_settings",
    "exit_code_for_signal",
    "main",
    "resolve_from_args",
    "settings_from_args",
]
