"""Watches: one status source posting into one subreddit's megathread.

One process runs any number of them, from a TOML file (``MODBOT_CONFIG``, or
``modbot.toml`` in the working directory) with one ``[[watch]]`` table each. Without
that file, the ``MODBOT_`` settings define one watch named ``default``. A watch's name
keys everything the store keeps about it; a dry run keeps its own scope, so printing
comments never counts as having posted them. Credentials, the database, logging and
the Reddit budget are global settings, never in the file, so it can be shared.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modbot import default_templates_dir
from modbot.config.catalog import Resolved, resolve
from modbot.config.settings import (
    MIN_INTERVAL,
    Settings,
    feed_url,
    page_url,
    subreddit_name,
    templates_folder,
    timezone_name,
    title_pattern,
)
from modbot.core.records import PageInfo
from modbot.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_WATCH = "default"
DEFAULT_CONFIG = Path("modbot.toml")
KINDS = ("auto", "statuspage", "incidentio", "atom", "gcloud", "betterstack", "datadog")
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
KEYS = frozenset(
    {
        "name",
        "provider",
        "url",
        "kind",
        "subreddit",
        "megathread_title",
        "components",
        "timezone",
        "templates_dir",
        "poll_interval",
        "maintenance",
        "wiki_templates",
    }
)


@dataclass(frozen=True)
class Watch:
    """One status source and where its comments go."""

    name: str
    url: str
    kind: str
    subreddit: str | None
    megathread_title: str
    components: tuple[str, ...]
    timezone: str | None
    templates_dir: Path | None
    poll_interval: float
    maintenance: bool
    wiki_templates: bool = False  # templates from the subreddit's wiki/modbot/* pages
    provider: str | None = None  # the catalog's name for the page (modbot/data/providers.toml)

    def scope(self, dry_run: bool) -> str:
        """The store key of this watch (see ``watch_scope``)."""
        return watch_scope(self.name, dry_run)

    @property
    def templates_path(self) -> Path:
        """The folder its templates are read from."""
        return self.templates_dir if self.templates_dir is not None else default_templates_dir()


def watch_scope(name: str, dry_run: bool) -> str:
    """The store key of a watch; a dry run keeps its own baseline and comments."""
    return f"dry-run:{name}" if dry_run else name


def deployment_name(settings: Settings, watches: Sequence[Watch], *, dry_run: bool) -> str:
    """What names this bot among processes sharing one PostgreSQL database: processes
    with the same name take turns leading. ``MODBOT_DEPLOYMENT``, or ``default``: one
    deployment per database unless told otherwise, so that two copies can never both
    lead because their watches files differ (mid-upgrade, say). A dry run is a
    deployment of its own, so that trying one out never holds up the real bot."""
    name = settings.deployment or "default"
    return f"dry-run {name}" if dry_run else name


def default_page(url: str) -> PageInfo:
    """What comments name as their page before the feed has named itself."""
    return PageInfo(name=url.split("//", 1)[-1].rstrip("/"), url=url.rstrip("/"))


def config_path(settings: Settings) -> Path | None:
    """The watches file in use: ``MODBOT_CONFIG``, else ``./modbot.toml`` if present."""
    if settings.config is not None:
        return settings.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_watches(settings: Settings) -> list[Watch]:
    """Every watch to run; a bad file stops start-up with one line naming file, watch, key."""
    path = config_path(settings)
    if path is None:
        return [_default_watch(settings)]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"watch"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (only [[watch]] tables belong here)")
    tables = data.get("watch", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: no [[watch]] tables")
    watches = [_watch(path, number, table, settings) for number, table in enumerate(tables, 1)]
    names = [w.name for w in watches]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: watch {name!r}: name: used by more than one watch")
    return watches


def _default_watch(settings: Settings) -> Watch:
    # With MODBOT_PROVIDER, the URL and kind are the catalog's unless set to something
    # other than their defaults (so that a copied .env.example does not override them).
    defaults = Settings.model_fields
    url, kind = settings.statuspage_url, settings.source_kind
    resolved = _resolved(
        "MODBOT_PROVIDER",
        settings.provider,
        None if settings.provider and url == defaults["statuspage_url"].default else url,
        None if settings.provider and kind == defaults["source_kind"].default else kind,
        settings.components,
    )
    return Watch(
        name=DEFAULT_WATCH,
        url=resolved.url,
        kind=resolved.kind,
        subreddit=settings.subreddit,
        megathread_title=settings.megathread_title,
        components=resolved.components,
        timezone=settings.timezone,
        templates_dir=settings.templates_dir,
        poll_interval=settings.poll_interval,
        maintenance=settings.maintenance,
        wiki_templates=settings.wiki_templates,
        provider=resolved.provider.name if resolved.provider else None,
    )


def _resolved(
    where: str, provider: str | None, url: str | None, kind: str | None, components: Sequence[str]
) -> Resolved:
    """The catalog's page, kind and filter for a watch (see ``catalog.resolve``)."""
    try:
        resolved = resolve(provider, url, kind, components)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for warning in resolved.warnings:
        log.warning("%s: %s", where, warning)
    return resolved


def _watch(path: Path, number: int, table: object, settings: Settings) -> Watch:
    where = f"{path}: watch #{number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: not a table")
    name = table.get("name")
    if isinstance(name, str) and name:
        where = f"{path}: watch {name!r}"

    def field(key: str, check: Callable[[Any], Any], default: Any) -> Any:
        if key not in table:
            return default
        try:
            return check(table[key])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None

    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(sorted(KEYS))})")
    for key in ("name",) if "provider" in table else ("name", "url"):
        if key not in table:
            raise ConfigError(f"{where}: {key}: required")
    kind = field("kind", _kind, None)
    resolved = _resolved(
        where,
        field("provider", _text, None),
        field("url", _text, None),
        kind,
        field("components", _components, settings.components),
    )
    url = resolved.url
    if "url" in table:  # a catalog URL is trusted; the watch's own is checked for its kind
        check = feed_url if resolved.kind == "atom" else page_url
        url = field("url", lambda v: check(v, "url"), "")
    watch = Watch(
        name=field("name", _name, None),
        url=url,
        kind=resolved.kind,
        subreddit=field("subreddit", lambda v: subreddit_name(_text(v)), settings.subreddit),
        megathread_title=field(
            "megathread_title", lambda v: title_pattern(_text(v)), settings.megathread_title
        ),
        components=resolved.components,
        timezone=field("timezone", lambda v: timezone_name(_text(v)), settings.timezone),
        templates_dir=field(
            "templates_dir", lambda v: templates_folder(Path(_text(v))), settings.templates_dir
        ),
        poll_interval=field("poll_interval", _interval(settings), settings.poll_interval),
        maintenance=field("maintenance", _flag, settings.maintenance),
        wiki_templates=field("wiki_templates", _flag, settings.wiki_templates),
        provider=resolved.provider.name if resolved.provider else None,
    )
    if settings.has_reddit_credentials and not watch.subreddit:
        raise ConfigError(f"{where}: subreddit: required when Reddit credentials are set")
    if watch.kind == "gcloud" and not watch.components:
        raise ConfigError(
            f"{where}: components: required for Google Cloud: the products to watch, "
            'e.g. ["Vertex Gemini API"]'
        )
    return watch


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("must be a string")
    return value


def _name(value: object) -> str:
    text = _text(value)
    if not NAME.fullmatch(text):
        raise ValueError("lower-case letters, digits and '-', up to 40 characters")
    return text


def _kind(value: object) -> str:
    text = _text(value)
    if text not in KINDS:
        raise ValueError(f"{text!r} is not one of {', '.join(KINDS)}")
    return text


def _components(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError('must be a list of names, e.g. ["API", "claude.ai"]')
    return tuple(v.strip() for v in value if v.strip())


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be true or false")
    return value


def _interval(settings: Settings) -> Callable[[object], float]:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("must be a number of seconds")
        seconds = float(value)
        floor = 0.01 if settings.test_fast else MIN_INTERVAL
        if not floor <= seconds <= 3600:
            raise ValueError(f"must be between {floor:g} and 3600 seconds")
        return seconds

    return check


def pick(watches: Sequence[Watch], name: str | None) -> Watch:
    """The watch a command is about: the named one, or the only one."""
    if name is not None:
        for watch in watches:
            if watch.name == name:
                return watch
        known = ", ".join(w.name for w in watches)
        raise ConfigError(f"no watch named {name!r} (watches: {known})")
    if len(watches) > 1:
        known = ", ".join(w.name for w in watches)
        raise ConfigError(f"there are several watches: name one with --watch ({known})")
    return watches[0]
