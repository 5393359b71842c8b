"""Reliability tests: a distinctive API token, and a leak check after every test here.

After each test in this directory every file under its `tmp_path` (gzip files decompressed) and
everything it printed (what `capsys`/`capfd` handed the test, and what pytest captured) is
searched for the token; a hit fails the test. Tallies are printed at the end of the session.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.capture import CaptureFixture

from salesmap_tui.sandbox import SandboxConfig

# distinctive, so a hit can only be a leak
SECRET = "sm-secret-XYZ-7f3a9c2e41-do-not-leak"
TALLY: dict[str, int] = {"tests": 0, "files": 0, "bytes": 0, "outputs": 0, "hits": 0, "modes": 0}


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """The parent's sandbox, with the secret token and 429 hints scaled down to milliseconds."""
    return SandboxConfig(
        seed=3, scale=120, forms=5, rate_limit=100_000, token=SECRET, hint_scale=0.01
    )


def _contents(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip (a backup): scan what it holds, as far as it goes
        try:
            with gzip.open(path, "rb") as fh:
                return data + _read_tolerant(fh)
        except (OSError, EOFError, zlib.error):
            return data
    return data


def _read_tolerant(fh: Any) -> bytes:
    out = bytearray()
    try:
        while chunk := fh.read(1 << 20):
            out += chunk
    except (OSError, EOFError, zlib.error):
        pass
    return bytes(out)


def leaks_in_tree(root: Path, secret: str = SECRET) -> list[str]:
    """Files under `root` whose bytes (gunzipped too) hold `secret`, in any common encoding."""
    needles = {secret.encode(), secret.encode("utf-16-le"), secret.encode("unicode_escape")}
    hits: list[str] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if not stat.S_ISREG(path.lstat().st_mode):
                    continue
                data = _contents(path)
            except OSError:
                continue
            TALLY["files"] += 1
            TALLY["bytes"] += len(data)
            if any(n in data for n in needles):
                hits.append(str(path))
    return hits


@pytest.fixture(autouse=True)
def no_token_leaks(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    seen: list[str] = []
    original = CaptureFixture.readouterr

    def readouterr(self: CaptureFixture[Any]) -> Any:
        result = original(self)
        out, err = result
        seen.append(out if isinstance(out, str) else out.decode("utf-8", "replace"))
        seen.append(err if isinstance(err, str) else err.decode("utf-8", "replace"))
        return result

    monkeypatch.setattr(CaptureFixture, "readouterr", readouterr)
    yield
    TALLY["tests"] += 1
    TALLY["outputs"] += len(seen)
    printed = [text for text in seen if SECRET in text]
    files = leaks_in_tree(tmp_path)
    TALLY["hits"] += len(printed) + len(files)
    assert not printed, "the token was printed"
    assert not files, f"the token is in {files}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """What pytest captured and the test did not read: fail the test if it holds the token."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    leaked = [name for name, content in report.sections if SECRET in content]
    if leaked and report.passed:
        TALLY["hits"] += len(leaked)
        report.outcome = "failed"
        report.longrepr = f"the API token appeared in: {', '.join(leaked)}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY["tests"]:
        terminalreporter.write_line(
            "reliability leak scan: {tests} tests, {files} files ({bytes} bytes) and {outputs} "
            "captured outputs scanned, token hits: {hits}; file modes checked: {modes}".format(
                **TALLY
            )
        )
