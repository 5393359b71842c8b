"""The architecture's import contracts (pyproject.toml [tool.importlinter]), run by the test
command: imports point down, the engine never imports Textual, screens never import the App,
and no two sibling modules import each other."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (pip install -e '.[test]')"
    return subprocess.run(
        [exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_every_import_contract_is_kept() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
    assert done.stdout.count(" KEPT") >= 5


def test_a_broken_contract_is_reported(tmp_path: Path) -> None:
    """The checker really looks: a contract today's code breaks (runs use snapshot_db) fails."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "salesmap_tui"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "runs never read the snapshot DB tables"\ntype = "forbidden"\n'
        'source_modules = ["salesmap_tui.engine.runs"]\n'
        'forbidden_modules = ["salesmap_tui.engine.snapshot_db"]\n'
    )
    done = lint_imports(str(config))
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "salesmap_tui.engine.runs" in done.stdout


def test_no_runtime_import_cycle_between_any_two_modules() -> None:
    """Beyond siblings: no module reaches back to one that imports it, counting imports inside
    functions too (only `if TYPE_CHECKING:` imports are left out: they never run)."""
    import grimp

    graph = grimp.build_graph("salesmap_tui", exclude_type_checking_imports=True)
    cycles = sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    )
    assert cycles == []
    assert len(graph.modules) > 60  # the whole package was read
