"""Packaging for users: python -m, one version, license metadata, README and CI in step, the repo
self-contained, backups at gzip level 6."""

from __future__ import annotations

import gzip
import importlib.metadata
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote

import salesmap_tui
from salesmap_tui.engine.backup import make_backup

ROOT = Path(__file__).resolve().parent.parent


def sh_blocks(markdown: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", markdown, flags=re.S)]


def test_python_dash_m_runs_the_cli_with_the_one_version():
    done = subprocess.run(
        [sys.executable, "-m", "salesmap_tui", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"salesmap-tui {salesmap_tui.__version__}"
    assert importlib.metadata.version("salesmap-tui") == salesmap_tui.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]


def test_license_and_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["requires-python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert "platformdirs" in " ".join(project["dependencies"])
    # placeholder URLs only: nothing that looks like a real home the project does not have
    assert all(".invalid/" in url for url in project["urls"].values())


def test_readme_first_two_commands_are_the_demo_and_the_ci_test_command():
    readme = (ROOT / "README.md").read_text()
    demo, tests = sh_blocks(readme)[:2]
    assert demo.endswith("salesmap-tui --demo")
    assert "[test]" not in demo  # trying the demo installs no test tools
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, "README's test command and .ci/run differ"
    assert tests.endswith("pytest -q") and "pip install -e '.[test]'" in tests


def test_nothing_in_the_repo_points_outside_it():
    outside = ["../" + "shared", "/wo" + "rk/", "HELPERS" + ".md"]
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0:
        files = [f for f in listed.stdout.split("\0") if f]
    else:  # an unpacked sdist: no git, every file it holds
        skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
        files = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
        ]
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".svg", ".png", ".gz", ".db") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in outside if needle in text]
    assert offenders == []
    # every relative link in the README and docs/ resolves inside the repo
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            resolved = (doc.parent / unquote(target)).resolve()
            assert resolved.exists() and ROOT in resolved.parents, f"{doc.name} -> {target}"


def test_backups_are_gzip_level_6(tmp_path):
    db = tmp_path / "live.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i} " * 20,) for i in range(2000)])
    conn.commit()
    conn.close()
    dest = tmp_path / "b" / "live_x.db.gz"
    make_backup(db, dest)
    header = dest.read_bytes()[:10]
    # the gzip header's XFL byte: 2 for level 9, 4 for level 1, 0 for the levels between
    assert header[:2] == b"\x1f\x8b" and header[8] == 0
    with gzip.open(dest) as fh:
        assert fh.read(16) == b"SQLite format 3\x00"
