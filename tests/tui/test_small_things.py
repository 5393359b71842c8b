"""Small things users hit: the demo's own files, F1 in the demo, screenshots, the theme."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static
from tui_fixtures import make_app, rendered, tmp_settings

from salesmap_tui.config import DEFAULT_DB_PATH, DEMO_DIR
from salesmap_tui.tui import prefs
from salesmap_tui.tui.app import SalesmapApp, run_tui
from salesmap_tui.tui.demo import demo_environment
from salesmap_tui.tui.screens.help import HelpScreen


def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)


def test_demo_refuses_a_db_path_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    tty(monkeypatch)
    settings = tmp_settings(tmp_path).replace(db_path=tmp_path / "crm" / "live.db")
    assert run_tui(settings, demo=True) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--db-path" in err and "Traceback" not in err
    assert not (tmp_path / DEMO_DIR).exists()


def test_demo_takes_its_own_default_db_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = tmp_settings(tmp_path).replace(db_path=Path(DEFAULT_DB_PATH))
    with demo_environment(settings) as demo:
        assert demo.db_path == DEMO_DIR / DEFAULT_DB_PATH


def test_demo_in_a_folder_it_cannot_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # (tests run as root here, so a chmod'ed folder would still be writable: a file where the
    # demo's folder must go fails the same way, through the same path)
    monkeypatch.chdir(tmp_path)
    tty(monkeypatch)
    (tmp_path / DEMO_DIR).write_text("not a folder")
    settings = tmp_settings(tmp_path).replace(db_path=Path(DEFAULT_DB_PATH))
    assert run_tui(settings, demo=True) == 2
    err = capsys.readouterr().err
    assert err.startswith("salesmap-tui: error: cannot write the demo's files")
    assert err.count("\n") == 1


async def test_help_in_the_demo_does_not_claim_the_users_token(tmp_path: Path) -> None:
    app = SalesmapApp(
        tmp_settings(tmp_path),
        demo=True,
        autostart=False,
        base_dir=tmp_path,
        state_path=tmp_path / "state.json",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(rendered(s, width=200) for s in app.screen.query(Static))
        assert "SALESMAP_TOKEN is set" not in text
        assert "demo sandbox's own token" in text
        # the dialog fits 80 columns
        dialog = app.screen.query_one("#help-dialog")
        assert dialog.region.right <= 80


async def test_screenshot_falls_back_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prefs.platformdirs, "user_downloads_path", lambda: tmp_path / "nope")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        app.deliver_screenshot()
        await pilot.pause()
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1
        messages = [n.message for n in app._notifications]
        assert any(str(saved[0]) in m for m in messages), messages


async def test_the_theme_is_remembered(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "nord"
        await pilot.pause()
    state = app.state_path
    assert prefs.load_state(state)["theme"] == "nord"
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    again = make_app(tmp_path)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "nord"


def test_help_is_read_from_the_bindings() -> None:
    """Every bound key of the App and of each screen is in F1's help, and a key rebound in a
    subclass shows up there as bound (the help is not a second list to keep in step)."""
    from textual.binding import Binding

    from salesmap_tui.tui.app import SalesmapApp
    from salesmap_tui.tui.screens.help import SCREENS, key_sections

    listed = {(title, keys) for title, rows in key_sections(SalesmapApp) for keys, _ in rows}
    for title, owner in (("Everywhere", SalesmapApp), *SCREENS):
        for binding in owner.__dict__.get("BINDINGS", []):
            # a row may list several keys ("d s b w h": the screen switches)
            keys = {one for t, k in listed if t in (title, "Everywhere") for one in k.split(" ")}
            for key in binding.key.split(","):
                shown = key.replace("slash", "/").replace("escape", "esc")
                assert shown in keys, (title, binding.key)

    class Rebound(SalesmapApp):
        BINDINGS = [  # noqa: RUF012
            *[b for b in SalesmapApp.BINDINGS if getattr(b, "id", None) != "app.run"],
            Binding("R", "start_run", "Run", id="app.run"),
        ]

    rows = dict(key_sections(Rebound))["Everywhere"]
    assert ("R", "start a snapshot run (needs SALESMAP_TOKEN)") in rows
    assert not [k for k, _ in rows if k == "r"]
