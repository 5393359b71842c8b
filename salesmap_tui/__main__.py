"""`python -m salesmap_tui`: the same as the `salesmap-tui` command."""

from __future__ import annotations

import sys

from salesmap_tui.cli import main

if __name__ == "__main__":
    sys.exit(main())
