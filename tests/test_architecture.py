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

    graph = grimp.build_graph("salesmap_tui", exclude_type_checking_imports=True, cache_dir=None)
    cycles = sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    )
    assert cycles == []
    assert len(graph.modules) > 60  # the whole package was read


def test_no_screen_or_widget_imports_the_app() -> None:
    """Attributes down, messages up: a screen is handed a ScreenContext and posts messages; it
    never imports the App, not even for typing (`if TYPE_CHECKING:` imports count here), and
    the contract saying so lists no exception."""
    import tomllib

    import grimp

    graph = grimp.build_graph("salesmap_tui", exclude_type_checking_imports=False, cache_dir=None)
    importers = sorted(graph.find_modules_that_directly_import("salesmap_tui.tui.app"))
    assert importers, "the graph lost the App (the check would pass vacuously)"
    assert [
        m
        for m in importers
        if m.startswith(("salesmap_tui.tui.screens", "salesmap_tui.tui.widgets"))
    ] == []
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    screens = [
        c
        for c in contracts["contracts"]
        if c.get("forbidden_modules") == ["salesmap_tui.tui.app"]
        and set(c.get("source_modules", ()))
        >= {"salesmap_tui.tui.screens", "salesmap_tui.tui.widgets"}
    ]
    assert len(screens) == 1 and not screens[0].get("ignore_imports"), screens
    for contract in contracts["contracts"]:
        for ignored in contract.get("ignore_imports", ()):
            assert not ignored.startswith(("salesmap_tui.tui.screens", "salesmap_tui.tui.widgets"))


def test_the_screens_contract_bites(tmp_path: Path) -> None:
    """The same contract, run on a module that does import the App (the console script), is
    reported broken: the checker sees such an import."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "salesmap_tui"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "never import the App"\ntype = "forbidden"\n'
        'source_modules = ["salesmap_tui.tui.screens", "salesmap_tui.cli.main"]\n'
        'forbidden_modules = ["salesmap_tui.tui.app"]\n'
    )
    done = lint_imports(str(config))
    assert done.returncode != 0
    assert (
        "BROKEN" in done.stdout and "salesmap_tui.cli.main -> salesmap_tui.tui.app" in done.stdout
    )
