"""`python -m salesmap_tui.cli`: the console script."""

import sys

from salesmap_tui.cli.main import main

sys.exit(main())
