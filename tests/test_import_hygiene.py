"""The engine and the headless commands never import Textual (a UI-free core, fast start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
{body}
bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print("TEXTUAL_MODULES=" + ",".join(bad))
"""


@pytest.mark.parametrize(
    "body",
    [
        "import salesmap_tui.engine.api, salesmap_tui.engine.runs.snapshot",
        "import salesmap_tui.cli.commands",
        # a whole headless command, parsed and run the way the console script does
        "from salesmap_tui.cli import main\nmain(['history', '--log-dir', sys.argv[1]])",
    ],
)
def test_no_textual_in_headless_paths(body, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(body=body), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "TEXTUAL_MODULES="


def test_engine_sources_never_mention_textual():
    from pathlib import Path

    import salesmap_tui.engine as engine

    root = Path(engine.__file__).parent
    offenders = [
        p.name
        for p in root.glob("*.py")
        if any(
            line.lstrip().startswith(("import textual", "from textual"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_help_does_not_load_the_sandbox_server():
    code = (
        "import sys\n"
        "from salesmap_tui.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('uvicorn', 'textual')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
