"""What every screen is handed in its constructor (attributes down): the settings, the folder
paths are shown relative to, the clock, and whether this is the demo.

The screens read these instead of reaching up into the App; what they want done they post as
a message (tui/messages.py) that the App handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from salesmap_tui.config import Settings
from salesmap_tui.tui.format import Clock, system_clock


@dataclass(frozen=True)
class ScreenContext:
    settings: Settings
    base_dir: Path
    clock: Clock = system_clock
    demo: bool = False

    def now(self) -> datetime:
        return self.clock()
