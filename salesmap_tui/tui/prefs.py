"""What the TUI remembers between sessions (the theme), in the user config dir.

Never written into a config file the user wrote (CONTRACT "Configuration"): its own small JSON
file, `<user config dir>/salesmap-tui/tui-state.json`. A file that cannot be read or written
is ignored: remembering a theme is never worth an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import platformdirs

STATE_FILE = "tui-state.json"


def default_state_path() -> Path:
    return platformdirs.user_config_path("salesmap-tui") / STATE_FILE


def load_state(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save_state(path: Path, **changes: Any) -> bool:
    """Merge `changes` into the file (written whole, then renamed); False if it could not be."""
    state = load_state(path)
    state.update(changes)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(state, file, indent=2)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def screenshot_dir() -> Path:
    """The Downloads folder if there is one, else the working directory."""
    with contextlib.suppress(Exception):
        downloads = platformdirs.user_downloads_path()
        if downloads.is_dir() and os.access(downloads, os.W_OK):
            return downloads
    return Path.cwd()
