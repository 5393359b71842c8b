"""The config file: lookup order, profiles, precedence, paths relative to the file, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from salesmap_tui.cli import build_parser, cli_settings, main, resolve_from_args
from salesmap_tui.config import (
    DEFAULT_BASE_URL,
    ConfigError,
    Settings,
    load_settings,
    resolve_settings,
    user_config_path,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


CONFIG = """
db_path = "data/crm.db"
log_dir = "data/logs"
keep_backups = 7
base_url = "https://file.example.test/api/v2"
concurrency = 2

[profiles.other]
db_path = "/abs/other.db"
base_url = "https://profile.example.test/api/v2"
concurrency = 3
"""


# --- options anywhere -----------------------------------------------------------------------------
OPTION_SAMPLES = [
    ("--db-path", "x/crm.db"),
    ("--log-dir", "x/logs"),
    ("--checkpoint-dir", "x/cp"),
    ("--backup-dir", "x/bk"),
    ("--keep-backups", "3"),
    ("--keep-runs", "4"),
    ("--swap", "rename"),
    ("--checkpoint-interval", "5"),
    ("--no-backup", None),
    ("--resume", None),
    ("--resume-max-age", "6"),
    ("--webform-only", None),
    ("--base-url", "http://127.0.0.1:1/v2"),
    ("--concurrency", "7"),
    ("--min-interval", "0"),
    ("--max-wait", "8"),
    ("--request-timeout", "9"),
    ("--max-shrink", "1"),
    ("--quiet", None),
]


@pytest.mark.parametrize(("flag", "value"), OPTION_SAMPLES)
def test_an_option_means_the_same_before_and_after_the_subcommand(flag, value):
    given = [flag] if value is None else [flag, value]
    parser = build_parser()
    before = cli_settings(parser.parse_args([*given, "snapshot"]))
    after = cli_settings(parser.parse_args(["snapshot", *given]))
    assert before == after
    assert len(before) == 1  # only the option given; no subcommand default overwrote anything


@pytest.mark.parametrize("command", ["history", "checkpoints", "status", "doctor"])
def test_path_options_before_any_command(command):
    args = build_parser().parse_args(["--db-path", "a.db", "--log-dir", "l", command])
    assert cli_settings(args) == {"db_path": Path("a.db"), "log_dir": Path("l")}


def test_after_the_subcommand_wins_over_before():
    args = build_parser().parse_args(["--db-path", "a.db", "snapshot", "--db-path", "b.db"])
    assert cli_settings(args)["db_path"] == Path("b.db")


def test_json_and_quiet_before_the_subcommand():
    args = build_parser().parse_args(["--json", "--quiet", "--max-age", "3", "status"])
    assert args.json is True and args.max_age == 3.0
    assert cli_settings(args) == {"quiet": True}


# --- lookup ---------------------------------------------------------------------------------------
def test_no_config_file_gives_the_built_in_defaults(tmp_path):
    resolved = resolve_settings(environ={}, cwd=tmp_path)
    assert resolved.config_path is None
    assert resolved.settings == Settings()


def test_working_directory_file_is_found_and_paths_are_relative_to_it(tmp_path):
    folder = tmp_path / "proj"
    write(folder / "salesmap-tui.toml", CONFIG)
    resolved = resolve_settings(environ={}, cwd=folder)
    s = resolved.settings
    assert resolved.config_path == folder / "salesmap-tui.toml"
    assert s.db_path == folder.resolve() / "data" / "crm.db"
    assert s.log_dir == folder.resolve() / "data" / "logs"
    assert s.checkpoint_dir == folder.resolve() / "data" / "logs" / "checkpoints"
    assert s.backup_dir == Path("backups")  # not in the file: the default, as before
    assert s.keep_backups == 7 and s.concurrency == 2


def test_lookup_order_config_option_then_env_then_cwd_then_user_dir(tmp_path):
    cwd_file = write(tmp_path / "cwd" / "salesmap-tui.toml", 'db_path = "cwd.db"\n')
    env_file = write(tmp_path / "env.toml", 'db_path = "env.db"\n')
    opt_file = write(tmp_path / "opt.toml", 'db_path = "opt.db"\n')
    user_file = write(user_config_path(), 'db_path = "user.db"\n')
    env = {"SALESMAP_TUI_CONFIG": str(env_file)}
    cwd = cwd_file.parent
    assert resolve_settings(config=opt_file, environ=env, cwd=cwd).config_path == opt_file
    assert resolve_settings(environ=env, cwd=cwd).config_path == env_file
    assert resolve_settings(environ={}, cwd=cwd).config_path == cwd_file
    assert resolve_settings(environ={}, cwd=tmp_path).config_path == user_file
    assert (
        resolve_settings(environ={}, cwd=tmp_path).settings.db_path == user_file.parent / "user.db"
    )


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        resolve_settings(config=tmp_path / "nope.toml", environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="SALESMAP_TUI_CONFIG"):
        resolve_settings(environ={"SALESMAP_TUI_CONFIG": str(tmp_path / "x")}, cwd=tmp_path)


# --- profiles and precedence ----------------------------------------------------------------------
def test_precedence_command_line_env_profile_file_default(tmp_path):
    cfg = write(tmp_path / "c.toml", CONFIG)
    env = {"SALESMAP_BASE_URL": "https://env.example.test/api/v2"}
    # file
    s = resolve_settings(config=cfg, environ={}, cwd=tmp_path).settings
    assert s.base_url == "https://file.example.test/api/v2" and s.concurrency == 2
    # profile over file
    s = resolve_settings(config=cfg, profile="other", environ={}, cwd=tmp_path).settings
    assert s.base_url == "https://profile.example.test/api/v2" and s.concurrency == 3
    assert s.db_path == Path("/abs/other.db") and s.keep_backups == 7  # the rest from the file
    # env over profile
    s = resolve_settings(config=cfg, profile="other", environ=env, cwd=tmp_path).settings
    assert s.base_url == "https://env.example.test/api/v2"
    # command line over env
    cli = {"base_url": "http://127.0.0.1:5/v2/", "concurrency": 9}
    s = resolve_settings(cli, config=cfg, profile="other", environ=env, cwd=tmp_path).settings
    assert s.base_url == "http://127.0.0.1:5/v2" and s.concurrency == 9
    # default where nobody says
    assert resolve_settings(environ={}, cwd=tmp_path).settings.base_url == DEFAULT_BASE_URL


def test_profile_from_env_and_unknown_profile(tmp_path):
    cfg = write(tmp_path / "c.toml", CONFIG)
    env = {"SALESMAP_PROFILE": "other"}
    assert resolve_settings(config=cfg, environ=env, cwd=tmp_path).settings.concurrency == 3
    assert resolve_settings(config=cfg, environ=env, cwd=tmp_path).profile == "other"
    with pytest.raises(ConfigError, match=r"profiles\.nope.*other"):
        resolve_settings(config=cfg, profile="nope", environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="no config file"):
        resolve_settings(profile="other", environ={}, cwd=tmp_path / "empty")


def test_command_line_run_tag_wins_over_resume_in_the_file(tmp_path):
    cfg = write(tmp_path / "c.toml", "resume = true\n")
    args = build_parser().parse_args(
        ["--config", str(cfg), "snapshot", "--resume-run-tag", "20260101T000000Z-abcd"]
    )
    s = resolve_from_args(args, environ={}).settings
    assert s.resume is False and s.resume_run_tag == "20260101T000000Z-abcd"


# --- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("db_pth = 'x.db'\n", "db_pth"),
        ("[profiles.a]\ncolour = 'red'\n", "colour"),
        ("token = 'abc'\n", "token"),
        ("keep_backups = 'many'\n", "keep_backups"),
        ("no_backup = 1\n", "no_backup"),
        ("webform_only = true\n", "webform_only"),
        ("profiles = 3\n", "profiles"),
        ("db_path = \n", "not valid TOML"),
        ("[profiles.a\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_naming_the_key_or_the_file(tmp_path, capsys, text, named):
    cfg = write(tmp_path / "bad.toml", text)
    assert main(["--config", str(cfg), "history"]) == 2
    err = capsys.readouterr().err
    assert named in err and str(cfg) in err and "Traceback" not in err


def test_a_token_key_says_where_the_token_goes(tmp_path):
    cfg = write(tmp_path / "c.toml", 'token = "s3cret-value"\n')
    with pytest.raises(ConfigError) as info:
        resolve_settings(config=cfg, environ={}, cwd=tmp_path)
    assert "SALESMAP_TOKEN" in str(info.value) and "token_file" in str(info.value)
    assert "s3cret-value" not in str(info.value)


# --- the token ------------------------------------------------------------------------------------
@posix_only
def test_token_file_relative_to_the_config_file_and_owner_only(tmp_path):
    token = write(tmp_path / "secrets" / "token", "tok-123\n")
    token.chmod(0o600)
    cfg = write(tmp_path / "c.toml", 'token_file = "secrets/token"\n')
    resolved = resolve_settings(config=cfg, environ={}, cwd=tmp_path / "elsewhere")
    assert resolved.settings.token == "tok-123"
    assert resolved.token_source == f"token file {tmp_path.resolve() / 'secrets' / 'token'}"
    assert "tok-123" not in repr(resolved)
    # the environment's token wins over any file
    env = {"SALESMAP_TOKEN": "from-env"}
    assert resolve_settings(config=cfg, environ=env, cwd=tmp_path).settings.token == "from-env"


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_token_file_readable_by_group_or_others_is_refused(tmp_path, mode):
    token = write(tmp_path / "token", "tok-123\n")
    token.chmod(mode)
    env = {"SALESMAP_TOKEN_FILE": str(token)}
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_settings(environ=env)
    assert "tok-123" not in str(info.value)
    token.chmod(0o600)
    assert load_settings(environ=env).token == "tok-123"


def test_history_needs_no_token_so_a_bad_token_file_does_not_stop_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SALESMAP_TOKEN", raising=False)
    monkeypatch.setenv("SALESMAP_TOKEN_FILE", str(tmp_path / "missing-token"))
    assert main(["history", "--log-dir", str(tmp_path / "logs")]) == 0
    assert main(["doctor", "--db-path", str(tmp_path / "x.db")]) == 2
    assert "missing-token" in capsys.readouterr().err


def test_settings_field_names_match_the_config_keys():
    from dataclasses import fields

    from salesmap_tui.cli import SETTINGS_OPTIONS
    from salesmap_tui.config import CONFIG_KEYS

    names = {f.name for f in fields(Settings)}
    for key in CONFIG_KEYS:
        if key != "token_file":
            assert {"checkpoint_dir": "checkpoint_dir_option"}.get(key, key) in names, key
    for option in SETTINGS_OPTIONS:
        assert {"checkpoint_dir": "checkpoint_dir_option"}.get(option, option) in names, option
