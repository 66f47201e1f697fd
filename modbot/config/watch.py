"""A watch, and what commands need to know of watches without validating a file.

``watches`` reads and checks the watches file (with pydantic); what is here needs
neither pydantic nor the file, so that ``modbot status`` and ``check --live`` can name
and find each watch's state without either (see ``quick``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modbot import default_templates_dir
from modbot.core.records import PageInfo
from modbot.core.surge import SurgeSettings
from modbot.errors import ConfigError

if TYPE_CHECKING:
    from modbot.core.reports import ReportRules


class _Deployed(Protocol):
    @property
    def deployment(self) -> str: ...


class _Configured(Protocol):
    @property
    def config(self) -> Path | None: ...


DEFAULT_WATCH = "default"
DEFAULT_CONFIG = Path("modbot.toml")
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")


@dataclass(frozen=True)
class ReportsConfig:
    """What a watch does with readers' reports (the ``reports_*`` keys)."""

    mode: str = "notice"  # notice | count | off
    interval: float = 30.0
    surge: SurgeSettings = field(default_factory=SurgeSettings)
    link_window: float = 7200.0
    action: str = "reply"  # reply | remove | off: what a stray report post gets
    removal_reason: str = ""
    rules: ReportRules | None = None  # None: the shipped rules

    @property
    def reading(self) -> bool:
        """True when readers' posts are read at all."""
        return self.mode != "off"

    @property
    def report_rules(self) -> ReportRules:
        """The rules in force: the shipped ones with the watch's changes."""
        if self.rules is not None:
            return self.rules
        from modbot.config.reportrules import shipped_rules  # noqa: PLC0415 - not for status

        return shipped_rules()


def reports_config(values: Any, rules: ReportRules | None = None) -> ReportsConfig:
    """The reports settings of ``values`` (the settings, or a completed watch table)."""
    return ReportsConfig(
        mode=values.reports,
        interval=values.reports_interval,
        surge=SurgeSettings(
            min_authors=values.reports_min_authors,
            window=values.reports_window,
            factor=values.reports_factor,
            min_account_age=values.reports_min_account_age,
        ),
        link_window=values.reports_link_window,
        action=values.reports_action,
        removal_reason=values.reports_removal_reason,
        rules=rules,
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
    last_checked: bool = False  # a "last checked HH:MM UTC" line in open incidents' comments
    provider: str | None = None  # the catalog's name for the page (modbot/data/providers.toml)
    move_threshold: int = 5  # failed polls that look like a move before detecting again
    reports: ReportsConfig = field(default_factory=ReportsConfig)  # Community reports

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


def deployment_name(settings: _Deployed, watches: Sequence[Watch], *, dry_run: bool) -> str:
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


def config_path(settings: _Configured) -> Path | None:
    """The watches file in use: ``MODBOT_CONFIG``, else ``./modbot.toml`` if present."""
    if settings.config is not None:
        return settings.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


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
