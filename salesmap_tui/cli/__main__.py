"""`python -m salesmap_tui.cli`: the console script."""

import sys

from salesmap_tui.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
