"""The one place for every default path and constant (the seed's first weakness, fixed).

Everything that reads a path or a tuning constant gets it from a `Settings` instance; nothing
else in the package spells a default file name or number.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
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
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_WAIT = 120.0
DEFAULT_REQUEST_TIMEOUT = 30.0
BACKOFF_BASE = 1.0  # first wait after a 5xx / timeout / connection error, doubled each retry
RATE_LIMIT_REQUESTS = 100  # per workspace ...
RATE_LIMIT_WINDOW = 10.0  # ... per this many seconds
SQLITE_MAX_COLUMNS = 2000
TOKEN_ENV = "SALESMAP_TOKEN"
BASE_URL_ENV = "SALESMAP_BASE_URL"
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
        return self.db_path.with_name(self.db_path.name + ".lock")

    def temp_db_path(self, run_tag: str) -> Path:
        return self.db_path.with_name(f"{self.db_path.name}.{run_tag}.tmp")

    def fallback_db_path(self, run_tag: str) -> Path:
        return self.db_path.with_name(f"{self.db_path.stem}_{run_tag}.db")

    def backup_path(self, run_tag: str) -> Path:
        return self.backup_dir / f"{self.db_path.stem}_{run_tag}.db.gz"

    def log_path(self, run_tag: str) -> Path:
        return self.log_dir / f"snapshot_{run_tag}.log"

    def checkpoint_path(self, run_tag: str) -> Path:
        return self.checkpoint_dir / checkpoint_file_name(run_tag)

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
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more (got {self.concurrency})")
        if self.min_interval < 0:
            raise ConfigError(f"--min-interval must be 0 or more (got {self.min_interval})")
        if self.max_wait < 0:
            raise ConfigError(f"--max-wait must be 0 or more (got {self.max_wait})")
        if self.request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be more than 0 (got {self.request_timeout})")
        check_base_url(self.base_url)


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
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: the API token would travel in clear; "
            "use https:// (plain http is accepted only for localhost / 127.0.0.0/8 / ::1)"
        )
    return url.rstrip("/")


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    return token or None


def base_url_from_env(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
