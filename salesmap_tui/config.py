"""The one place for every default path and constant (the seed's first weakness, fixed).

Everything that reads a path or a tuning constant gets it from a `Settings` instance; nothing
else in the package spells a default file name or number.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# --- seed constants -----------------------------------------------------------------------------
DEFAULT_BASE_URL = "https://salesmap.kr/api/v2"
DEFAULT_DB_PATH = Path("salesmap_latest.db")
DEFAULT_LOG_DIR = Path("logs")
DEFAULT_BACKUP_DIR = Path("backups")
CHECKPOINT_SUBDIR = "checkpoints"
HISTORY_FILE_NAME = "run_history.jsonl"
MIN_INTERVAL = 0.12
MAX_RETRIES = 3
BACKOFF_429 = 10.0
DEFAULT_KEEP_BACKUPS = 30
DEFAULT_CHECKPOINT_INTERVAL = 50
REPLACE_TRIES = 5
CHECKPOINT_RENAME_TRIES = 3

# --- product constants --------------------------------------------------------------------------
# requests in flight; 0 = auto (about rate x p90 latency + 1, between 2 and 16)
CONCURRENCY_AUTO = 0
DEFAULT_CONCURRENCY = CONCURRENCY_AUTO
DEFAULT_MAX_WAIT = 120.0
DEFAULT_REQUEST_TIMEOUT = 30.0
INPLACE_BUSY_TIMEOUT = 30.0  # how long an in-place swap waits for readers mid-query
SHRINK_MIN_ROWS = 10  # a table must lose at least this many rows to trip the guard
SHRINK_TABLES = ("organization", "people", "deal", "lead", "memo")
BACKOFF_BASE = 1.0  # first wait after a 5xx / timeout / connection error, doubled each retry
RATE_LIMIT_REQUESTS = 100  # per workspace ...
RATE_LIMIT_WINDOW = 10.0  # ... per this many seconds
SQLITE_MAX_COLUMNS = 2000
DEFAULT_MAX_SHRINK = 0.5
DEFAULT_RESUME_MAX_AGE = 12.0  # hours
SWAP_MODES = ("auto", "rename", "in-place")
DEFAULT_SWAP = "auto"
DEFAULT_KEEP_RUNS = 30
DEFAULT_STATUS_MAX_AGE = 26.0  # hours: a nightly run plus slack
TOKEN_ENV = "SALESMAP_TOKEN"
TOKEN_FILE_ENV = "SALESMAP_TOKEN_FILE"
BASE_URL_ENV = "SALESMAP_BASE_URL"
CONFIG_ENV = "SALESMAP_TUI_CONFIG"
PROFILE_ENV = "SALESMAP_PROFILE"
APP_NAME = "salesmap-tui"
CONFIG_FILE_NAME = "salesmap-tui.toml"  # looked for in the working directory
USER_CONFIG_FILE_NAME = "config.toml"  # in <user config dir>/salesmap-tui/
DEMO_DIR = Path("salesmap-demo")

FILE_MODE = 0o600
DIR_MODE = 0o700


def checkpoint_file_name(run_tag: str) -> str:
    return f"checkpoint_{run_tag}.json"


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """Every option of a run. The token is held here but never printed, logged or serialized."""

    db_path: Path = DEFAULT_DB_PATH
    log_dir: Path = DEFAULT_LOG_DIR
    checkpoint_dir_option: Path | None = None
    backup_dir: Path = DEFAULT_BACKUP_DIR
    keep_backups: int = DEFAULT_KEEP_BACKUPS
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    no_backup: bool = False
    resume: bool = False
    resume_run_tag: str | None = None
    webform_only: bool = False
    base_url: str = DEFAULT_BASE_URL
    concurrency: int = DEFAULT_CONCURRENCY
    min_interval: float = MIN_INTERVAL
    max_wait: float = DEFAULT_MAX_WAIT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_retries: int = MAX_RETRIES
    backoff_429: float = BACKOFF_429
    backoff_base: float = BACKOFF_BASE
    rate_limit_requests: int = RATE_LIMIT_REQUESTS
    rate_limit_window: float = RATE_LIMIT_WINDOW
    quiet: bool = False
    max_shrink: float = DEFAULT_MAX_SHRINK
    resume_max_age: float = DEFAULT_RESUME_MAX_AGE
    swap: str = DEFAULT_SWAP
    keep_runs: int = DEFAULT_KEEP_RUNS
    token: str | None = field(default=None, repr=False, compare=False)

    # --- derived paths ---------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        if self.checkpoint_dir_option is not None:
            return self.checkpoint_dir_option
        return self.log_dir / CHECKPOINT_SUBDIR

    @property
    def history_path(self) -> Path:
        return self.log_dir / HISTORY_FILE_NAME

    @property
    def lock_path(self) -> Path:
        # the resolved path: one lock per DB file however it is spelled (./x.db, a symlink, ..)
        real = Path(os.path.realpath(self.db_path))
        return real.with_name(real.name + ".lock")

    def temp_db_path(self, run_tag: str) -> Path:
        return self.db_path.with_name(f"{self.db_path.name}.{run_tag}.tmp")

    def fallback_db_path(self, run_tag: str) -> Path:
        return self.db_path.with_name(f"{self.db_path.stem}_{run_tag}.db")

    def backup_path(self, run_tag: str) -> Path:
        return self.backup_dir / f"{self.db_path.stem}_{run_tag}.db.gz"

    def log_path(self, run_tag: str) -> Path:
        return self.log_dir / f"snapshot_{run_tag}.log"

    # --- helpers ----------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, without the token (for checkpoints and logs)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "token":
                continue
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        out["checkpoint_dir"] = str(self.checkpoint_dir)
        return out

    def validate(self) -> None:
        """Raise ConfigError for an option no run could use."""
        if self.keep_backups < 0:
            raise ConfigError(f"--keep-backups must be 0 or more (got {self.keep_backups})")
        if self.checkpoint_interval < 1:
            raise ConfigError(
                f"--checkpoint-interval must be 1 or more (got {self.checkpoint_interval})"
            )
        if self.concurrency < 0:
            raise ConfigError(f"--concurrency must be auto or 1 or more (got {self.concurrency})")
        if self.min_interval < 0:
            raise ConfigError(f"--min-interval must be 0 or more (got {self.min_interval})")
        if self.max_wait < 0:
            raise ConfigError(f"--max-wait must be 0 or more (got {self.max_wait})")
        if self.request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be more than 0 (got {self.request_timeout})")
        if not 0 <= self.max_shrink <= 1:
            raise ConfigError(f"--max-shrink must be between 0 and 1 (got {self.max_shrink})")
        if self.resume_max_age < 0:
            raise ConfigError(f"--resume-max-age must be 0 or more (got {self.resume_max_age})")
        if self.swap not in SWAP_MODES:
            raise ConfigError(f"--swap must be one of {', '.join(SWAP_MODES)} (got {self.swap!r})")
        if self.keep_runs < 0:
            raise ConfigError(f"--keep-runs must be 0 or more (got {self.keep_runs})")
        check_base_url(self.base_url)


def parse_concurrency(value: object) -> int:
    """`auto` → CONCURRENCY_AUTO (0); a positive integer → itself; ValueError otherwise."""
    bad = ValueError(f"concurrency must be auto or an integer of 1 or more, not {value!r}")
    if isinstance(value, str) and value.strip().lower() == "auto":
        return CONCURRENCY_AUTO
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad
    try:
        n = int(value)
    except ValueError:
        raise bad from None
    if n < 1:
        raise bad
    return n


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Accept https anywhere, http only to loopback (the token would otherwise travel in clear)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url must be an http(s) URL ending in /v2 (got {url!r})")
    if not parts.path.rstrip("/").endswith("/v2") or parts.query or parts.fragment:
        # the client appends /organization, /webForm/<id>/submit, ...: any other base fails
        # only after many requests (a /v1 base answered 404 to every endpoint)
        raise ConfigError(
            f"--base-url must end in /v2, e.g. https://salesmap.kr/api/v2 (got {url!r})"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: the API token would travel in clear; "
            "use https:// (plain http is accepted only for localhost / 127.0.0.0/8 / ::1)"
        )
    return url.rstrip("/")


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    return token or None


def base_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL


# --- the config file ------------------------------------------------------------------------------
# Keys a config file (or a [profiles.NAME] table) may set: the long option names with `_` for `-`,
# plus token_file. Per-invocation options (--resume-run-tag, --webform-only, --json, --yes) are not
# defaults anyone wants to persist, so a file that sets them is refused like any unknown key.
CONFIG_KEYS: dict[str, str] = {
    "db_path": "path",
    "log_dir": "path",
    "checkpoint_dir": "path",
    "backup_dir": "path",
    "token_file": "path",
    "keep_backups": "int",
    "checkpoint_interval": "int",
    "keep_runs": "int",
    "concurrency": "concurrency",  # auto or a whole number
    "no_backup": "bool",
    "resume": "bool",
    "quiet": "bool",
    "base_url": "str",
    "swap": "str",
    "min_interval": "float",
    "max_wait": "float",
    "request_timeout": "float",
    "max_shrink": "float",
    "resume_max_age": "float",
}
# config key -> Settings field, where they differ
_FIELD_OF = {"checkpoint_dir": "checkpoint_dir_option"}


@dataclass(frozen=True)
class ConfigFile:
    """A parsed, checked config file: its defaults and its profiles, paths already absolute."""

    path: Path
    values: dict[str, Any]
    profiles: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings plus where they came from (doctor and the TUI show it)."""

    settings: Settings
    config_path: Path | None
    profile: str | None
    token_source: str | None  # "env SALESMAP_TOKEN", "token file PATH" or None


def user_config_path() -> Path:
    """`<user config dir>/salesmap-tui/config.toml` (platformdirs: XDG, macOS, Windows)."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / USER_CONFIG_FILE_NAME


def find_config_file(
    explicit: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The first of `--config`, env SALESMAP_TUI_CONFIG, ./salesmap-tui.toml, the user file."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"--config {explicit}: no such file")
        return explicit
    from_env = env.get(CONFIG_ENV, "").strip()
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={from_env}: no such file")
        return path
    local = (cwd or Path.cwd()) / CONFIG_FILE_NAME
    if local.is_file():
        return local
    user = user_config_path()
    if user.is_file():
        return user
    return None


def _check_value(where: str, key: str, value: Any, base: Path) -> Any:
    kind = CONFIG_KEYS.get(key)
    if kind is None:
        known = ", ".join(sorted(CONFIG_KEYS))
        hint = ""
        if key == "token":
            hint = (
                f" (the token is never read from a config file: set {TOKEN_ENV}, or "
                "token_file = a file only you can read)"
            )
        raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {known}")
    if kind == "concurrency":
        try:
            return parse_concurrency(value)
        except ValueError:
            raise ConfigError(
                f"{where}: {key} must be auto or a whole number of 1 or more (got {value!r})"
            ) from None
    ok: bool
    if kind == "path" or kind == "str":
        ok = isinstance(value, str) and value.strip() != ""
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, bool)
    if not ok:
        want = {"path": "a path string", "str": "a string", "int": "a whole number"}.get(
            kind, "a number" if kind == "float" else "true or false"
        )
        raise ConfigError(f"{where}: {key} must be {want} (got {value!r})")
    if kind == "path":
        path = Path(value).expanduser()
        # relative to the file's folder, so cron and the TUI see the same files from anywhere
        return path if path.is_absolute() else base / path
    if kind == "float":
        return float(value)
    return value


def read_config_file(path: Path) -> ConfigFile:
    """Parse and check a config file; ConfigError names the file and the key at fault."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    base = path.resolve().parent
    values: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "profiles":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: profiles must be tables, [profiles.NAME]")
            for name, table in value.items():
                if not isinstance(table, dict):
                    raise ConfigError(f"{path}: profiles.{name} must be a table, [profiles.{name}]")
                where = f"{path} [profiles.{name}]"
                profiles[name] = {k: _check_value(where, k, v, base) for k, v in table.items()}
            continue
        values[key] = _check_value(str(path), key, value, base)
    return ConfigFile(path=path, values=values, profiles=profiles)


def read_token_file(path: Path) -> str:
    """The token in `path`; refused when the file's group or others may read it (POSIX)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"token file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"token file {path} is not a regular file")
    # Windows has no group/other mode bits (ACLs decide there): only POSIX modes are checked
    if os.name == "posix" and st.st_mode & 0o044:
        raise ConfigError(
            f"token file {path} can be read by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"token file {path}: cannot read it ({exc})") from None
    if not token or "\n" in token:
        raise ConfigError(f"token file {path} must hold the token alone on one line")
    return token


def resolve_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    config: Path | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    with_token: bool = True,
) -> ResolvedSettings:
    """Settings from command line > env > profile > file > built-in default.

    `cli` maps Settings field names to the values given on the command line (only those given).
    `config` / `profile` are `--config` / `--profile`. Raises ConfigError for anything unusable.
    """
    env = os.environ if environ is None else environ
    path = find_config_file(config, env, cwd)
    file = read_config_file(path) if path is not None else None
    profile = profile or env.get(PROFILE_ENV, "").strip() or None
    layered: dict[str, Any] = {}
    if file is not None:
        layered.update(file.values)
    if profile is not None:
        if file is None:
            raise ConfigError(
                f"profile {profile!r} asked for, but no config file was found "
                f"(--config, {CONFIG_ENV}, ./{CONFIG_FILE_NAME}, {user_config_path()})"
            )
        if profile not in file.profiles:
            known = ", ".join(sorted(file.profiles)) or "none"
            raise ConfigError(f"{file.path}: no [profiles.{profile}] (profiles: {known})")
        layered.update(file.profiles[profile])
    env_base_url = env.get(BASE_URL_ENV, "").strip()
    if env_base_url:
        layered["base_url"] = env_base_url
    env_token_file = env.get(TOKEN_FILE_ENV, "").strip()
    if env_token_file:
        layered["token_file"] = Path(env_token_file).expanduser()
    token_file: Path | None = layered.pop("token_file", None)
    values: dict[str, Any] = {_FIELD_OF.get(k, k): v for k, v in layered.items()}
    values.update(cli or {})
    if "base_url" in values:
        values["base_url"] = str(values["base_url"]).strip().rstrip("/")
    token_source: str | None = None
    if with_token:
        token = token_from_env(env)
        if token is not None:
            token_source = f"env {TOKEN_ENV}"
        elif token_file is not None:
            token = read_token_file(token_file)
            token_source = f"token file {token_file}"
        values["token"] = token
    settings = Settings(**values)
    return ResolvedSettings(settings, path, profile, token_source)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    config: Path | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    with_token: bool = True,
) -> Settings:
    """The Settings every command and the TUI use (see `resolve_settings`)."""
    return resolve_settings(
        cli, config=config, profile=profile, environ=environ, with_token=with_token
    ).settings
