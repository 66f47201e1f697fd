"""The settings and watches a read-only command needs, read without pydantic.

``modbot status`` and ``modbot check --live`` (a container's health check, run every
few minutes) only need to find each watch's state: the store, the watches' names, pages
and intervals, whether posting is on, how to log. Importing pydantic and building the
settings' models costs them several times what the rest of the command costs, so they
read the environment, ``.env`` and the watches file themselves here, and accept only
values already in the form the full checks would leave them in. Anything else (an
unknown or unusual value, a provider the catalog cannot place, a key of the watches
file this reader does not know) makes ``quick_settings`` answer ``None``, and the
command loads the settings the full way, which names the mistake as every command does.
Settings these commands do not use are not checked at all.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modbot.config.database import DatabaseURL, database_location, url_secrets
from modbot.config.envfile import read_env_file
from modbot.config.watch import DEFAULT_WATCH, NAME, Watch, config_path
from modbot.errors import ConfigError

PREFIX = "MODBOT_"
# Readers' reports settings: ``status`` shows a watch's report rate against them, so a
# value given sends it the full way (this reader keeps the defaults only).
READERS = (
    "reports", "reports_interval", "reports_min_authors", "reports_window", "reports_factor",
    "reports_min_account_age", "reports_link_window", "reports_action", "reports_removal_reason",
)  # fmt: skip
# Every setting's name (``Settings.model_fields``: a test keeps them equal) and the
# names that are not settings (``NOT_SETTINGS``).
SETTING_NAMES = frozenset(
    {
        "config", "statuspage_url", "provider", "source_kind", "maintenance", "poll_interval",
        "move_threshold", "http_timeout", "components", "timezone", "database", "templates_dir",
        "wiki_templates", "max_comment_length", "render_timeout", "subreddit",
        "megathread_title", "reddit_client_id", "reddit_client_secret", "reddit_username",
        "reddit_password", "reddit_refresh_token", "reddit_user_agent", "reddit_url",
        "reddit_oauth_url", "reddit_timeout", "reddit_calls_per_minute", "min_edit_interval",
        "megathread_check_interval", "reconcile_grace", "distinguish", "inbox_interval",
        "dry_run", "deployment", "lease_interval", "test_fast", "crash_at", "metrics_port",
        "metrics_host", "heartbeat_url", "log_level", "log_format", "keep_days", "alerts",
        "alert_after", "last_checked", *READERS,
    }
)  # fmt: skip
NOT_SETTINGS = frozenset({"MODBOT_TEST_POSTGRES_URL", "MODBOT_SNUDOWN_DIR"})
DEFAULTS = {
    "statuspage_url": "https://status.claude.com",
    "source_kind": "auto",
    "poll_interval": "15",
    "move_threshold": "5",
    "database": "modbot.sqlite3",
    "megathread_title": "Performance and Bugs Megathread",
    "lease_interval": "5",
    "log_level": "INFO",
    "log_format": "text",
}
KINDS = frozenset({"auto", "statuspage", "incidentio", "atom", "gcloud", "betterstack", "datadog"})
TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{2,20}|[A-Za-z]{2}")
URL = re.compile(r"(?i)https?://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?(?:/\S*)?")
API_PATH = re.compile(r"(?i)/(api/v\d+|history\.(atom|rss)|incidents(\.json)?)(/.*)?$")
WATCH_KEYS = frozenset(
    {
        "name", "provider", "url", "kind", "subreddit", "megathread_title", "components",
        "timezone", "templates_dir", "poll_interval", "maintenance", "wiki_templates",
        "move_threshold",
    }
)  # fmt: skip


class Unusual(Exception):
    """A value this reader does not take: the full settings decide."""


@dataclass(frozen=True)
class QuickSettings:
    """What ``status`` and ``check --live`` read of the settings (names as ``Settings``)."""

    database: Path | DatabaseURL
    config: Path | None
    deployment: str
    lease_interval: float
    dry_run: bool
    has_reddit_credentials: bool
    log_level: str
    log_format: str
    secrets: tuple[str, ...] = ()
    watches: tuple[Watch, ...] = field(default=())

    def secret_values(self) -> list[str]:
        """Every secret of the configuration, for the log redaction filter."""
        return list(self.secrets)


def quick_settings(env_file: Path | None) -> QuickSettings | None:
    """The settings and watches, or None when the full checks must decide."""
    try:
        return _read(_raw(env_file))
    except (Unusual, ConfigError, ValueError, OSError, tomllib.TOMLDecodeError):
        return None


def _raw(env_file: Path | None) -> dict[str, str]:
    """Every setting given, by field name: the environment over the file."""
    values: dict[str, str] = {}
    lines = read_env_file(env_file) if env_file is not None else []
    given = [(line.name, line.value) for line in lines] + list(os.environ.items())
    for name, value in given:
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in NOT_SETTINGS:
            continue
        key = upper.removeprefix(PREFIX).lower()
        if key not in SETTING_NAMES or key in READERS:
            raise Unusual(name)
        values[key] = value
    return values


def _read(raw: dict[str, str]) -> QuickSettings:
    def text(name: str) -> str | None:
        """A value, blank as unset (as the settings take the few they read so)."""
        value = raw.get(name, DEFAULTS.get(name))
        return value.strip() or None if value is not None else None

    def exact(name: str) -> str | None:
        return raw.get(name, DEFAULTS.get(name))

    fast = _flag(exact("test_fast"))
    floor = 0.01 if fast else 1.0
    location = database_location(text("database") or "")
    if isinstance(location, Path) and (not str(location) or not location.parent.is_dir()):
        raise Unusual("database")
    credentials = _credentials(text)
    if credentials and not text("subreddit"):
        raise Unusual("subreddit")
    level, form = exact("log_level"), exact("log_format")
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR") or form not in ("text", "json"):
        raise Unusual("log")
    deployment = raw.get("deployment", "")
    if len(deployment) > 200:
        raise Unusual("deployment")
    secrets = [raw.get(n, "") for n in ("reddit_client_secret", "reddit_password")]
    secrets += [raw.get(n, "") for n in ("reddit_refresh_token", "heartbeat_url")]
    if isinstance(location, DatabaseURL):
        secrets += url_secrets(location.url)
    config = raw.get("config")
    settings = QuickSettings(
        database=location,
        config=Path(config) if config and config.strip() else None,
        deployment=deployment,
        lease_interval=_interval(exact("lease_interval"), floor, 300),
        dry_run=_flag(exact("dry_run")),
        has_reddit_credentials=credentials,
        log_level=level,
        log_format=form,
        secrets=tuple(s for s in secrets if s.strip()),
    )
    defaults = _Defaults(
        subreddit=_subreddit(text("subreddit")),
        poll_interval=_interval(exact("poll_interval"), floor, 3600),
        megathread_title=raw.get("megathread_title", DEFAULTS["megathread_title"]),
        components=tuple(p.strip() for p in (raw.get("components") or "").split(",") if p.strip()),
        maintenance=_flag(exact("maintenance")),
        wiki_templates=_flag(exact("wiki_templates")),
        move_threshold=_count(exact("move_threshold"), 1, 1000),
        floor=floor,
        credentials=credentials,
    )
    path = config_path(settings)
    watches = _file(path, defaults) if path else (_default_watch(raw, text, defaults),)
    return QuickSettings(**{**settings.__dict__, "watches": watches})


@dataclass(frozen=True)
class _Defaults:
    """The settings a watch of the file takes when it leaves a key out."""

    subreddit: str | None
    poll_interval: float
    megathread_title: str
    components: tuple[str, ...]
    maintenance: bool
    wiki_templates: bool
    move_threshold: int
    floor: float
    credentials: bool


def _credentials(text: Any) -> bool:
    """Whether Reddit credentials are set; an incomplete set is for the full checks."""
    token = text("reddit_refresh_token")
    if token and text("reddit_password"):
        raise Unusual("credentials")
    needed = ["reddit_client_id", "reddit_client_secret"]
    needed += ["reddit_refresh_token"] if token else ["reddit_username", "reddit_password"]
    present = [name for name in needed if text(name)]
    if present and len(present) < len(needed):
        raise Unusual("credentials")
    return bool(present)


def _flag(value: str | None) -> bool:
    """A yes or no as pydantic reads it from text; anything else is for the full checks."""
    if value is None:
        return False
    folded = value.lower()
    if folded in TRUE:
        return True
    if folded in FALSE:
        return False
    raise Unusual(value)


def _interval(value: object, floor: float, ceiling: float, *, text: bool = True) -> float:
    """A number of seconds in range (from text in the settings, a number in the file)."""
    if isinstance(value, bool) or not isinstance(value, (str if text else float) | int | float):
        raise Unusual("interval")
    number = float(value)
    if not math.isfinite(number) or not floor <= number <= ceiling:
        raise Unusual("interval")
    return number


def _count(value: object, floor: int, ceiling: int, *, text: bool = True) -> int:
    """A whole number in range (digits in the settings, an integer in the file)."""
    if text and isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    elif not text and isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise Unusual("count")
    if not floor <= number <= ceiling:
        raise Unusual("count")
    return number


def _subreddit(value: object) -> str | None:
    """A name already as the full check leaves it (``r/`` and blanks are for it)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not SUBREDDIT.fullmatch(value):
        raise Unusual("subreddit")
    return value


def _url(value: object, kind: str | None) -> str:
    """A page's URL already as the full checks leave it: http(s), no blanks around, no
    trailing slash, and (for a page, not a feed) not its API's URL."""
    if not isinstance(value, str) or not URL.fullmatch(value) or value.endswith("/"):
        raise Unusual("url")
    if kind != "atom" and API_PATH.search(
        value.split("//", 1)[1].partition("/")[2]
        and "/" + value.split("//", 1)[1].partition("/")[2]
    ):
        raise Unusual("url")
    return value


@dataclass(frozen=True)
class _Page:
    """A watch's page, kind, filter and provider (``catalog.Resolved``'s part needed)."""

    url: str
    kind: str
    components: tuple[str, ...]
    provider: str | None = None


def _resolve(
    provider: str | None, url: str | None, kind: str | None, components: tuple[str, ...]
) -> _Page:
    """``catalog.resolve``: the catalog is read only for a watch that names a provider."""
    if provider is None and url is not None:
        return _Page(url, kind or "auto", components)
    from modbot.config.catalog import resolve  # noqa: PLC0415

    found = resolve(provider, url, kind, components)
    name = found.provider.name if found.provider else None
    return _Page(found.url, found.kind, found.components, name)


def _default_watch(raw: dict[str, str], text: Any, defaults: _Defaults) -> Watch:
    """The ``default`` watch of the ``MODBOT_`` settings (as ``watches._default_watch``)."""
    provider = text("provider")
    kind = raw.get("source_kind", DEFAULTS["source_kind"])
    if kind not in KINDS:
        raise Unusual("source_kind")
    url = _url(raw.get("statuspage_url", DEFAULTS["statuspage_url"]), kind)
    resolved = _resolve(
        provider,
        None if provider and url == DEFAULTS["statuspage_url"] else url,
        None if provider and kind == DEFAULTS["source_kind"] else kind,
        defaults.components,
    )
    return _watch(DEFAULT_WATCH, resolved, defaults, {})


def _file(path: Path, defaults: _Defaults) -> tuple[Watch, ...]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    tables = data.get("watch") if isinstance(data, dict) else None
    if set(data) != {"watch"} or not isinstance(tables, list) or not tables:
        raise Unusual("watches file")
    watches = []
    for table in tables:
        if not isinstance(table, dict) or not set(table) <= WATCH_KEYS:
            raise Unusual("watch")
        name = table.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise Unusual("name")
        for key in ("provider", "url", "kind", "megathread_title"):
            if key in table and not isinstance(table[key], str):
                raise Unusual(key)
        if table.get("kind", "auto") not in KINDS:
            raise Unusual("kind")
        if "url" in table:
            _url(table["url"], table.get("kind"))
        components = table.get("components")
        if components is not None and not (
            isinstance(components, list)
            and components
            and all(isinstance(c, str) and c.strip() == c and c for c in components)
        ):
            raise Unusual("components")
        chosen = tuple(components) if components is not None else defaults.components
        resolved = _resolve(table.get("provider"), table.get("url"), table.get("kind"), chosen)
        watches.append(_watch(name, resolved, defaults, table))
    if len({w.name for w in watches}) != len(watches):
        raise Unusual("names")
    return tuple(watches)


def _watch(name: str, resolved: _Page, defaults: _Defaults, table: dict[str, Any]) -> Watch:
    subreddit = _subreddit(table["subreddit"]) if "subreddit" in table else defaults.subreddit
    if defaults.credentials and not subreddit:
        raise Unusual("subreddit")
    interval = table.get("poll_interval")
    for key in ("maintenance", "wiki_templates"):
        if key in table and not isinstance(table[key], bool):
            raise Unusual(key)
    if resolved.kind == "gcloud" and not resolved.components:
        raise Unusual("components")
    return Watch(
        name=name,
        url=resolved.url,
        kind=resolved.kind,
        subreddit=subreddit,
        megathread_title=table.get("megathread_title") or defaults.megathread_title,
        components=resolved.components,
        # Not used by these commands, so not read: the full checks own them.
        timezone=None,
        templates_dir=None,
        poll_interval=(
            defaults.poll_interval
            if interval is None
            else _interval(interval, defaults.floor, 3600, text=False)
        ),
        maintenance=table.get("maintenance", defaults.maintenance),
        wiki_templates=table.get("wiki_templates", defaults.wiki_templates),
        provider=resolved.provider,
        move_threshold=(
            _count(table["move_threshold"], 1, 1000, text=False)
            if "move_threshold" in table
            else defaults.move_threshold
        ),
    )
