"""`python -m salesmap_tui.sandbox`: the same as `salesmap-tui sandbox`."""

from __future__ import annotations

import argparse
import sys

from salesmap_tui.sandbox.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m salesmap_tui.sandbox",
        description="Serve a local Salesmap-compatible API (see salesmap_tui.sandbox).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
