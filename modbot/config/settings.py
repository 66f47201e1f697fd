"""All of modbot's settings, in one pydantic-settings class.

Values come from the environment (prefix ``MODBOT_``) and from a ``.env`` file; every
field is documented for moderators in ``.env.example``. Secrets are ``SecretStr`` and
error messages name settings, never their values.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    InstanceOf,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modbot import __version__, default_templates_dir
from modbot.config.database import DatabaseURL, database_location
from modbot.errors import ConfigError

ENV_PREFIX = "MODBOT_"
MIN_INTERVAL = 1.0
REQUIRED_TEMPLATES = ("incident.md.j2", "manual.md.j2")
REDDIT_CREDENTIALS = (
    "reddit_client_id",
    "reddit_client_secret",
    "reddit_username",
    "reddit_password",
)
# Accounts with two-factor login cannot use a password: a refresh token (``modbot auth``)
# takes the place of the username and password.
TOKEN_CREDENTIALS = ("reddit_client_id", "reddit_client_secret", "reddit_refresh_token")
APP_CREDENTIALS = ("reddit_client_id", "reddit_client_secret")
# Set while loading settings for ``modbot auth``, which is how a login is obtained: the
# app's id and secret are needed, a username, password or refresh token is not yet.
_APP_ONLY: ContextVar[bool] = ContextVar("app_only", default=False)


_BASE_URL = re.compile(r"(?i)(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?(/[^\s]*)?")
_API_PATH = re.compile(r"(?i)/(api/v\d+|history\.(atom|rss)|incidents(\.json)?)(/.*)?$")


def _http_url(value: str, setting: str) -> str:
    """A plain http(s) URL with a real host name (no spaces, no brackets), no trailing /."""
    text = value.strip()
    found = _BASE_URL.fullmatch(text)
    if not found:
        raise ValueError(f"{setting} must be an http(s) URL such as https://status.claude.com")
    return text.rstrip("/")


def page_url(value: str, setting: str = "MODBOT_STATUSPAGE_URL") -> str:
    """The status page's base URL; a pasted API or feed URL is refused with the fix."""
    url = _http_url(value, setting)
    path = urlsplit(url).path
    api = _API_PATH.search(path)
    if api:
        base = url[: len(url) - len(path)] + path[: api.start()]
        raise ValueError(
            f"give the page's base URL, not its API or feed URL: use {base} "
            f"(modbot adds {api.group(0)} by itself)"
        )
    return url


def feed_url(value: str, setting: str) -> str:
    """A feed's own URL (an Atom or RSS address is expected there)."""
    return _http_url(value, setting)


def timezone_name(value: str) -> str | None:
    """An IANA zone name, or ``None`` for an empty value."""
    if not value.strip():
        return None
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not a known IANA time zone name such as America/Los_Angeles") from exc
    return value.strip()


def title_pattern(value: str) -> str:
    """A megathread title: case-insensitive text or regular expression."""
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc.msg})") from exc
    return value


def templates_folder(value: Path | None) -> Path | None:
    """A folder with every template modbot needs (``None``: the shipped ones)."""
    folder = value if value is not None else default_templates_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a readable folder")
    missing = [name for name in REQUIRED_TEMPLATES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder} lacks {', '.join(missing)}")
    return value


def subreddit_name(value: str) -> str | None:
    """A subreddit's name without ``r/`` (``None`` for an empty value)."""
    return value.strip().removeprefix("/").removeprefix("r/").strip("/") or None


class Settings(BaseSettings):
    """modbot's configuration; see ``.env.example`` for each field's meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- status page (the watch named "default", when there is no watches file) ---
    config: Path | None = None
    statuspage_url: str = "https://status.claude.com"
    # A provider of the catalog (`modbot providers`): its page and kind, unless the two
    # settings around it are set too.
    provider: str | None = None
    source_kind: Literal[
        "auto", "statuspage", "incidentio", "atom", "gcloud", "betterstack", "datadog"
    ] = "auto"
    maintenance: bool = False
    poll_interval: float = Field(default=15.0, gt=0, le=3600, allow_inf_nan=False)
    http_timeout: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    components: Annotated[tuple[str, ...], NoDecode] = ()
    timezone: str | None = None

    # --- state and templates -----------------------------------------------------
    # A SQLite file's path (or sqlite:///path), or a postgresql:// server URL.
    database: Path | InstanceOf[DatabaseURL] = Path("modbot.sqlite3")
    templates_dir: Path | None = None
    wiki_templates: bool = False
    max_comment_length: int = Field(default=10_000, ge=1_000, le=10_000)
    render_timeout: float = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)

    # --- Reddit --------------------------------------------------------------------
    subreddit: str | None = None
    megathread_title: str = "Performance and Bugs Megathread"
    reddit_client_id: str | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: str | None = None
    reddit_password: SecretStr | None = None
    reddit_refresh_token: SecretStr | None = None
    reddit_user_agent: str | None = None
    reddit_url: str = "https://www.reddit.com"
    reddit_oauth_url: str = "https://oauth.reddit.com"
    reddit_timeout: float = Field(default=20.0, gt=0, le=300, allow_inf_nan=False)
    reddit_calls_per_minute: int = Field(default=90, ge=1, le=600)
    min_edit_interval: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    megathread_check_interval: float = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)
    reconcile_grace: float = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False)
    distinguish: bool = False
    inbox_interval: float = Field(default=15.0, gt=0, le=3600, allow_inf_nan=False)
    dry_run: bool = False

    # --- several machines (PostgreSQL) -------------------------------------------------
    deployment: str = Field(default="", max_length=200)
    lease_interval: float = Field(default=5.0, gt=0, le=300, allow_inf_nan=False)

    # --- testing only ----------------------------------------------------------------
    # Lowers the 1-second floor of the poll and inbox intervals, for tests and benchmarks.
    test_fast: bool = False
    crash_at: (
        Literal["after-intent", "after-answer", "after-edit", "after-command", "after-reply"] | None
    ) = None

    # --- metrics and heartbeat ------------------------------------------------------
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"
    heartbeat_url: SecretStr | None = None

    # --- logging -------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("statuspage_url")
    @classmethod
    def _check_statuspage_url(cls, value: str) -> str:
        return feed_url(value, "MODBOT_STATUSPAGE_URL")

    @field_validator("reddit_url", "reddit_oauth_url")
    @classmethod
    def _check_reddit_urls(cls, value: str) -> str:
        return _http_url(value, "the Reddit URL")

    @field_validator("heartbeat_url")
    @classmethod
    def _check_heartbeat_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                _http_url(value.get_secret_value(), "the heartbeat URL")
            except ValueError:
                raise ValueError("must be an http:// or https:// URL") from None
        return value

    @field_validator("components", mode="before")
    @classmethod
    def _split_components(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _check_timezone(cls, value: object) -> object:
        return timezone_name(value) if isinstance(value, str) else value

    @field_validator(
        "crash_at",
        "provider",
        "timezone",
        "subreddit",
        "reddit_user_agent",
        "reddit_client_id",
        "reddit_client_secret",
        "reddit_username",
        "reddit_password",
        "reddit_refresh_token",
        "metrics_port",
        "heartbeat_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("templates_dir", "config", mode="before")
    @classmethod
    def _empty_templates_dir(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("templates_dir")
    @classmethod
    def _check_templates_dir(cls, value: Path | None) -> Path | None:
        return templates_folder(value)

    @field_validator("database", mode="before")
    @classmethod
    def _database_location(cls, value: object) -> object:
        return database_location(value) if isinstance(value, str) else value

    @field_validator("megathread_title")
    @classmethod
    def _check_title_pattern(cls, value: str) -> str:
        return title_pattern(value)

    @field_validator("subreddit", mode="before")
    @classmethod
    def _strip_subreddit(cls, value: object) -> object:
        return subreddit_name(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _base_url_unless_a_feed(self) -> Settings:
        """A page's base URL, unless the watch reads a feed (whose own URL is given)."""
        if self.source_kind != "atom":
            page_url(self.statuspage_url)
        return self

    @model_validator(mode="after")
    def _no_hammering(self) -> Settings:
        """A status page and Reddit are polled at most once a second (tests excepted)."""
        for name in ("poll_interval", "inbox_interval", "lease_interval"):
            if getattr(self, name) < MIN_INTERVAL and not self.test_fast:
                raise ValueError(f"{env_name(name)} must be at least {MIN_INTERVAL:g} second")
        return self

    @model_validator(mode="after")
    def _all_or_no_credentials(self) -> Settings:
        if self.reddit_refresh_token and self.reddit_password:
            raise ValueError(
                "set either MODBOT_REDDIT_PASSWORD or MODBOT_REDDIT_REFRESH_TOKEN, not both "
                "(accounts with two-factor login need the refresh token: see modbot auth)"
            )
        needed: tuple[str, ...] = (
            APP_CREDENTIALS
            if _APP_ONLY.get()
            else TOKEN_CREDENTIALS
            if self.reddit_refresh_token
            else REDDIT_CREDENTIALS
        )
        present = [name for name in needed if getattr(self, name)]
        if present and len(present) < len(needed):
            missing = [env_name(n) for n in needed if n not in present]
            raise ValueError(
                "Reddit credentials are incomplete: set "
                + ", ".join(missing)
                + " (or unset them all for dry-run)"
            )
        if present and not self.subreddit:
            raise ValueError("MODBOT_SUBREDDIT is required when Reddit credentials are set")
        return self

    # --- derived values --------------------------------------------------------------
    @property
    def templates_path(self) -> Path:
        """The folder templates are read from."""
        return self.templates_dir if self.templates_dir is not None else default_templates_dir()

    @property
    def has_reddit_credentials(self) -> bool:
        """True when the app's id and secret and a way to log in (a password or a refresh
        token) are set."""
        needed = TOKEN_CREDENTIALS if self.reddit_refresh_token else REDDIT_CREDENTIALS
        return all(getattr(self, name) for name in needed)

    @property
    def user_agent(self) -> str:
        """Reddit's recommended ``<platform>:<app id>:<version> (by u/<username>)``."""
        if self.reddit_user_agent:
            return self.reddit_user_agent
        return f"python:modbot:{__version__} (by u/{self.reddit_username or 'unknown'})"

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for the log redaction filter."""
        secrets = [
            self.reddit_client_secret,
            self.reddit_password,
            self.reddit_refresh_token,
            self.heartbeat_url,  # push-monitor URLs carry their token
        ]
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def load_settings(
    env_file: Path | str | None = ".env", *, app_only: bool = False, **overrides: object
) -> Settings:
    """Build the settings, turning validation errors into one ``ConfigError`` line.

    ``app_only`` accepts the app's id and secret without a way to log in (``modbot auth``).

    Pydantic can echo input values in its messages; only field names and our own
    messages are kept, so a secret never reaches the terminal.
    """
    reset = _APP_ONLY.set(app_only)
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _APP_ONLY.reset(reset)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        location = [str(part) for part in error["loc"]]
        if location:
            problems.append(f"{env_name(location[0])}: {message}")
        else:
            problems.append(message)
    return "invalid settings: " + "; ".join(problems)
