"""All of modbot's settings, in one pydantic class, read from the environment and ``.env``.

Values come from the environment (prefix ``MODBOT_``, any case) and from a ``.env`` file
(``envfile``), the environment winning; every field is documented for moderators in
``.env.example``. Secrets are ``SecretStr`` and error messages name settings, never
their values. The sources are read here, not by pydantic-settings: what it added was
these few lines, and importing it cost every command a twentieth of a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from modbot import __version__, default_templates_dir
from modbot.config.database import DatabaseURL, database_location, existing_folder, url_secrets
from modbot.config.envfile import EnvLine, read_env_file
from modbot.config.fields import (
    HttpURL,
    RemovalReason,
    ReportsAction,
    ReportsMode,
    SourceKind,
    StatusURL,
    Subreddit,
    TemplatesFolder,
    Timezone,
    TitlePattern,
    component_names,
    http_url,
    interval_floor,
    page_url,
    problem,
    reports_interval_floor,
)
from modbot.errors import ConfigError

ENV_PREFIX = "MODBOT_"
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
# Names that start with MODBOT_ but set nothing of the bot's: the test suite and the
# benchmarks read them (a PostgreSQL server to test against, where snudown-js is), and a
# developer's shell that has them must still run modbot. Any other unknown MODBOT_ name
# is a mistake (a misspelt setting would silently keep its default).
NOT_SETTINGS = frozenset({"MODBOT_TEST_POSTGRES_URL", "MODBOT_SNUDOWN_DIR"})
# Set while loading settings for ``modbot auth``, which is how a login is obtained: the
# app's id and secret are needed, a username, password or refresh token is not yet.
_APP_ONLY: ContextVar[bool] = ContextVar("app_only", default=False)


MIN_ALERT_AFTER = 60.0


class Settings(BaseModel):
    """modbot's configuration; see ``.env.example`` for each field's meaning. Build it with
    ``load_settings`` (the environment and ``.env``); ``Settings(...)`` takes only what it
    is given."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    # --- status page (the watch named "default", when there is no watches file) ---
    config: Path | None = None
    statuspage_url: StatusURL = "https://status.claude.com"
    # A provider of the catalog (`modbot providers`): its page and kind, unless the two
    # settings around it are set too.
    provider: str | None = None
    source_kind: SourceKind = "auto"
    maintenance: bool = False
    poll_interval: float = Field(default=15.0, gt=0, le=3600, allow_inf_nan=False)
    # Failed polls in a row that look like the page moved (HTML where JSON was, a 404)
    # before modbot finds out again which platform serves the page.
    move_threshold: int = Field(default=5, ge=1, le=1000)
    http_timeout: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    components: Annotated[tuple[str, ...], AfterValidator(component_names)] = ()
    timezone: Timezone = None

    # --- state and templates -----------------------------------------------------
    # A SQLite file's path (or sqlite:///path), or a postgresql:// server URL.
    database: Path | InstanceOf[DatabaseURL] = Path("modbot.sqlite3")
    templates_dir: TemplatesFolder = None
    wiki_templates: bool = False
    # A "last checked HH:MM UTC" line in open incidents' comments (see ``shell.poller``).
    last_checked: bool = False
    max_comment_length: int = Field(default=10_000, ge=1_000, le=10_000)
    # Settled incidents older than this many days are pruned from the state (0: never).
    keep_days: int = Field(default=90, ge=0, le=36_500)
    render_timeout: float = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)

    # --- Reddit --------------------------------------------------------------------
    subreddit: Subreddit = None
    megathread_title: TitlePattern = "Performance and Bugs Megathread"
    reddit_client_id: str | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: str | None = None
    reddit_password: SecretStr | None = None
    reddit_refresh_token: SecretStr | None = None
    reddit_user_agent: str | None = None
    reddit_url: HttpURL = "https://www.reddit.com"
    reddit_oauth_url: HttpURL = "https://oauth.reddit.com"
    reddit_timeout: float = Field(default=20.0, gt=0, le=300, allow_inf_nan=False)
    reddit_calls_per_minute: int = Field(default=90, ge=1, le=600)
    min_edit_interval: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    megathread_check_interval: float = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)
    reconcile_grace: float = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False)
    distinguish: bool = False
    inbox_interval: float = Field(default=15.0, gt=0, le=3600, allow_inf_nan=False)
    dry_run: bool = False

    # --- readers' reports (README: Community reports) -----------------------------------
    # notice: read readers' posts and megathread comments, count outage reports and post
    # an early notice on a surge; count: read and count (incident comments show the
    # counts), never post a notice; off: read nothing.
    reports: ReportsMode = "notice"
    reports_interval: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    reports_min_authors: int = Field(default=5, ge=1, le=1000)
    reports_window: float = Field(default=600.0, ge=60, le=86_400, allow_inf_nan=False)
    reports_factor: float = Field(default=4.0, ge=1, le=100, allow_inf_nan=False)
    reports_min_account_age: float = Field(default=86_400.0, ge=0, le=10 * 365 * 86_400)
    reports_link_window: float = Field(default=7200.0, ge=0, le=7 * 86_400, allow_inf_nan=False)
    reports_action: ReportsAction = "reply"
    reports_removal_reason: RemovalReason = ""
    # --- alerts to the moderators (modmail) ---------------------------------------------
    alerts: bool = True  # MODBOT_ALERTS=off stops them
    # How long a status page fails before the moderators are told (seconds).
    alert_after: float = Field(default=600.0, ge=0, le=86_400, allow_inf_nan=False)

    # --- several machines (PostgreSQL) -------------------------------------------------
    deployment: str = Field(default="", max_length=200)
    lease_interval: float = Field(default=5.0, gt=0, le=300, allow_inf_nan=False)

    # --- testing only ----------------------------------------------------------------
    # Lowers the 1-second floor of the poll and inbox intervals, for tests and benchmarks.
    test_fast: bool = False
    crash_at: (
        Literal[
            "after-intent",
            "after-answer",
            "after-edit",
            "after-command",
            "after-reply",
            "after-message-intent",
            "after-message-answer",
            "after-removal-intent",
            "after-removal",
            "after-notice",
        ]
        | None
    ) = None

    # --- metrics and heartbeat ------------------------------------------------------
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"
    heartbeat_url: SecretStr | None = None

    # --- logging -------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("heartbeat_url")
    @classmethod
    def _check_heartbeat_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            http_url(value.get_secret_value())  # its message never quotes the value
        return value

    @field_validator("components", mode="before")
    @classmethod
    def _split_components(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

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
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database", mode="before")
    @classmethod
    def _database_location(cls, value: object) -> object:
        return database_location(value) if isinstance(value, str) else value

    @field_validator("database")
    @classmethod
    def _database_folder(cls, value: Path | DatabaseURL) -> Path | DatabaseURL:
        return existing_folder(value) if isinstance(value, Path) else value

    @model_validator(mode="after")
    def _base_url_unless_a_feed(self) -> Settings:
        """A page's base URL, unless the watch reads a feed (whose own URL is given)."""
        if self.source_kind != "atom":
            try:
                page_url(self.statuspage_url)
            except ValueError as exc:
                raise ValueError(f"MODBOT_STATUSPAGE_URL: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _no_hammering(self) -> Settings:
        """A status page and Reddit are polled at most once a second (tests excepted)."""
        floor = interval_floor(self.test_fast)
        for name in ("poll_interval", "inbox_interval", "lease_interval"):
            if getattr(self, name) < floor:
                raise ValueError(f"{env_name(name)}: must be at least {floor:g} second")
        reports_floor = reports_interval_floor(self.test_fast)
        if self.reports_interval < reports_floor:
            raise ValueError(f"MODBOT_REPORTS_INTERVAL: must be at least {reports_floor:g} seconds")
        # A page that fails for less than a minute is a blip, not worth a modmail.
        alert_floor = floor if self.test_fast else MIN_ALERT_AFTER
        if self.alert_after < alert_floor:
            raise ValueError(f"{env_name('alert_after')}: must be at least {alert_floor:g} seconds")
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
            raise ValueError("MODBOT_SUBREDDIT: required when Reddit credentials are set")
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
        found = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        if isinstance(self.database, DatabaseURL):
            found += url_secrets(self.database.url)
        return found


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def load_settings(
    env_file: Path | str | None = ".env", *, app_only: bool = False, **overrides: object
) -> Settings:
    """Build the settings from ``overrides``, the environment and ``env_file`` (if it
    exists), turning every mistake into one ``ConfigError`` line: a bad value, an unknown
    ``MODBOT_`` name (with the nearest setting's), a ``.env`` line that cannot be read.

    ``app_only`` accepts the app's id and secret without a way to log in (``modbot auth``).

    Pydantic can echo input values in its messages; only field names and our own
    messages are kept, so a secret never reaches the terminal.
    """
    try:
        lines = read_env_file(Path(env_file)) if env_file is not None else []
    except ConfigError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    unknown = [
        f"{env_file}, line {line.number}: {problem}"
        for line in lines
        if (problem := unknown_setting(line.name))
    ]
    unknown += [problem for name in sorted(os.environ) if (problem := unknown_setting(name))]
    if unknown:
        raise ConfigError("invalid settings: " + "; ".join(unknown))
    # Given values first, then the environment, then the file.
    values: dict[str, object] = {**_by_field(lines), **_by_field(_environment())}
    values.update(overrides)
    reset = _APP_ONLY.set(app_only)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        # Not ``from exc``: pydantic's error lists the input values, and with ``-v`` that
        # would print a password or token given to the wrong setting.
        raise ConfigError(_describe(exc)) from None
    finally:
        _APP_ONLY.reset(reset)


def _environment() -> list[EnvLine]:
    """The environment's ``MODBOT_`` settings, as lines of a file."""
    return [
        EnvLine(0, name, value)
        for name, value in os.environ.items()
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in NOT_SETTINGS
    ]


def unknown_setting(name: str) -> str | None:
    """What is wrong with an environment or ``.env`` name: ``None`` unless it starts with
    ``MODBOT_`` (any case, as the settings are read) and names no setting."""
    upper = name.upper()
    field = upper.removeprefix(ENV_PREFIX).lower()
    if not upper.startswith(ENV_PREFIX) or upper in NOT_SETTINGS or field in Settings.model_fields:
        return None
    import difflib  # noqa: PLC0415 - only for a mistake

    known = [known.upper() for known in Settings.model_fields]
    nearest = difflib.get_close_matches(field.upper(), known, n=1)
    if nearest:
        return f"{name}: unknown setting; did you mean {ENV_PREFIX}{nearest[0]}?"
    return f"{name}: unknown setting (.env.example lists every setting)"


def _by_field(lines: Iterable[EnvLine]) -> dict[str, str]:
    """Settings by field name; of a name given twice, the last line wins."""
    return {
        line.name.upper().removeprefix(ENV_PREFIX).lower(): line.value
        for line in lines
        if line.name.upper().startswith(ENV_PREFIX)
    }


def _describe(exc: ValidationError) -> str:
    """Every problem, each as ``MODBOT_...: what is wrong`` (a check of several settings
    names them in its own words)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = problem(error)
        location = error["loc"]
        problems.append(f"{env_name(str(location[0]))}: {message}" if location else message)
    return "invalid settings: " + "; ".join(problems)
