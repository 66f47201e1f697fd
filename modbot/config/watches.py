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
import tomllib
from types import SimpleNamespace
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from modbot.config.catalog import Resolved, resolve
from modbot.config.fields import (
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
    interval_floor,
    page_url,
    problem,
    reports_interval_floor,
)
from modbot.config.reportrules import shipped_rules, with_changes
from modbot.config.settings import Settings
from modbot.config.watch import (
    DEFAULT_CONFIG,
    DEFAULT_WATCH,
    NAME,
    ReportsConfig,
    Watch,
    config_path,
    default_page,
    deployment_name,
    pick,
    reports_config,
    watch_scope,
)
from modbot.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_WATCH",
    "ReportsConfig",
    "Watch",
    "WatchesFile",
    "config_path",
    "default_page",
    "deployment_name",
    "load_watches",
    "pick",
    "reports_config",
    "watch_scope",
]

log = logging.getLogger(__name__)


def load_watches(settings: Settings) -> list[Watch]:
    """Every watch to run; a bad file stops start-up with one line naming file, watch, key."""
    path = config_path(settings)
    if path is None:
        return [_default_watch(settings)]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        tables = WatchesFile.model_validate(data, context={"settings": settings}).watch
    except ValidationError as exc:
        # Not ``from exc``: pydantic's error lists the input values, and a secret put in
        # the file by mistake (``reddit_password = ...``) would reach ``-v``.
        raise ConfigError(f"{path}: {_describe(exc, data)}") from None
    watches = []
    for table in tables:
        resolved = table.resolved(settings)
        for warning in resolved.warnings:
            log.warning("%s: watch %r: %s", path, table.name, warning)
        watches.append(table.watch(settings, resolved))
    return watches


def _default_watch(settings: Settings) -> Watch:
    # With MODBOT_PROVIDER, the URL and kind are the catalog's unless set to something
    # other than their defaults (so that a copied .env.example does not override them).
    defaults = Settings.model_fields
    url, kind = settings.statuspage_url, settings.source_kind
    try:
        resolved = resolve(
            settings.provider,
            None if settings.provider and url == defaults["statuspage_url"].default else url,
            None if settings.provider and kind == defaults["source_kind"].default else kind,
            settings.components,
        )
    except ConfigError as exc:
        raise ConfigError(f"MODBOT_PROVIDER: {exc}") from exc
    for warning in resolved.warnings:
        log.warning("MODBOT_PROVIDER: %s", warning)
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
        last_checked=settings.last_checked,
        provider=resolved.provider.name if resolved.provider else None,
        move_threshold=settings.move_threshold,
        reports=reports_config(settings),
    )


def _watch_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError("lower-case letters, digits and '-', up to 40 characters")
    return value


def _component_list(value: object) -> object:
    """The watches file writes a list; the model keeps a tuple, like the settings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('must be a list of names, e.g. ["API", "claude.ai"]')
    return tuple(value)


def _some_components(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError(
            "an empty list matches no component: leave the key out to get every component"
        )
    return value


WatchName = Annotated[str, AfterValidator(_watch_name)]
Components = Annotated[
    tuple[str, ...],
    BeforeValidator(_component_list),
    AfterValidator(component_names),
    AfterValidator(_some_components),
]


class WatchTable(BaseModel):
    """One ``[[watch]]`` table as written. A key left out takes the ``MODBOT_`` setting of
    the same name (``watch()``); checks that need those values run in ``_complete``, with
    the settings as the validation context."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: WatchName
    # A provider of the catalog (``modbot providers``): its page and kind, unless ``url``
    # and ``kind`` are given too. A watch needs one of ``provider`` and ``url``.
    provider: str | None = None
    url: StatusURL | None = None
    kind: SourceKind | None = None
    subreddit: Subreddit = None
    megathread_title: TitlePattern | None = None
    components: Components | None = None
    timezone: Timezone = None
    templates_dir: TemplatesFolder = None
    poll_interval: float | None = Field(default=None, gt=0, le=3600, allow_inf_nan=False)
    maintenance: bool | None = None
    wiki_templates: bool | None = None
    last_checked: bool | None = None
    move_threshold: int | None = Field(default=None, ge=1, le=1000)
    # Readers' reports: as the MODBOT_REPORTS_* settings of the same names.
    reports: ReportsMode | None = None
    reports_interval: float | None = Field(default=None, gt=0, le=3600, allow_inf_nan=False)
    reports_min_authors: int | None = Field(default=None, ge=1, le=1000)
    reports_window: float | None = Field(default=None, ge=60, le=86_400, allow_inf_nan=False)
    reports_factor: float | None = Field(default=None, ge=1, le=100, allow_inf_nan=False)
    reports_min_account_age: float | None = Field(default=None, ge=0, le=10 * 365 * 86_400)
    reports_link_window: float | None = Field(
        default=None, ge=0, le=7 * 86_400, allow_inf_nan=False
    )
    reports_action: ReportsAction | None = None
    reports_removal_reason: RemovalReason | None = None
    # Changes to the shipped report rules (modbot/data/report_rules.toml), by group:
    # [watch.report_rules.error-name] add = [...], remove = [...], masks = [...]
    report_rules: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> WatchTable:
        """Each message names its key: the model's own errors have no location."""
        settings = _settings_of(info)
        try:
            resolved = self.resolved(settings)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        if self.url is not None and resolved.kind != "atom":
            try:
                page_url(self.url)
            except ValueError as exc:
                raise ValueError(f"url: {exc}") from exc
        watch = self.watch(settings, resolved)
        floor = interval_floor(settings.test_fast)
        if watch.poll_interval < floor:
            raise ValueError(f"poll_interval: must be at least {floor:g} second")
        reports_floor = reports_interval_floor(settings.test_fast)
        if watch.reports.interval < reports_floor:
            raise ValueError(f"reports_interval: must be at least {reports_floor:g} seconds")
        if settings.has_reddit_credentials and not watch.subreddit:
            raise ValueError("subreddit: required when Reddit credentials are set")
        if watch.kind == "gcloud" and not watch.components:
            raise ValueError(
                "components: required for Google Cloud: the products to watch, "
                'e.g. ["Vertex Gemini API"]'
            )
        return self

    def resolved(self, settings: Settings) -> Resolved:
        """Its page, kind and component filter, the catalog's where it names a provider
        (raises ``ConfigError``)."""
        components = settings.components if self.components is None else self.components
        return resolve(self.provider, self.url, self.kind, components)

    def watch(self, settings: Settings, resolved: Resolved) -> Watch:
        """The watch this table describes; the settings fill in what it leaves out. A key
        that TOML can only give as text may say "none" by being empty (``subreddit = ""``),
        so those are taken from the settings only when absent."""
        given = self.model_fields_set
        return Watch(
            name=self.name,
            url=resolved.url,
            kind=resolved.kind,
            subreddit=self.subreddit if "subreddit" in given else settings.subreddit,
            megathread_title=self.megathread_title or settings.megathread_title,
            components=resolved.components,
            timezone=self.timezone if "timezone" in given else settings.timezone,
            templates_dir=(
                self.templates_dir if "templates_dir" in given else settings.templates_dir
            ),
            poll_interval=(
                settings.poll_interval if self.poll_interval is None else self.poll_interval
            ),
            maintenance=settings.maintenance if self.maintenance is None else self.maintenance,
            wiki_templates=(
                settings.wiki_templates if self.wiki_templates is None else self.wiki_templates
            ),
            last_checked=(
                settings.last_checked if self.last_checked is None else self.last_checked
            ),
            provider=resolved.provider.name if resolved.provider else None,
            move_threshold=(
                settings.move_threshold if self.move_threshold is None else self.move_threshold
            ),
            reports=self._reports(settings),
        )

    def _reports(self, settings: Settings) -> ReportsConfig:
        """The watch's reports settings: its own keys, the settings for the others."""
        values = {
            name: settings_value if (own := getattr(self, name)) is None else own
            for name in REPORTS_KEYS
            for settings_value in [getattr(settings, name)]
        }
        rules = None
        if self.report_rules is not None:
            try:
                rules = with_changes(shipped_rules(), self.report_rules, "report_rules")
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return reports_config(SimpleNamespace(**values), rules)


REPORTS_KEYS = (
    "reports",
    "reports_interval",
    "reports_min_authors",
    "reports_window",
    "reports_factor",
    "reports_min_account_age",
    "reports_link_window",
    "reports_action",
    "reports_removal_reason",
)


class WatchesFile(BaseModel):
    """The whole watches file: ``[[watch]]`` tables and nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    watch: list[WatchTable] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> WatchesFile:
        names = [table.name for table in self.watch]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"watch {name!r}: name: used by more than one watch")
        return self


def _settings_of(info: ValidationInfo) -> Settings:
    settings = info.context.get("settings") if isinstance(info.context, dict) else None
    if not isinstance(settings, Settings):
        raise TypeError("validate a watch with context={'settings': Settings}")
    return settings


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """Every problem on one line, each naming its watch (by name when it has a usable
    one, else by number) and key."""
    tables = data.get("watch")
    problems = []
    for error in exc.errors(include_url=False):
        location = error["loc"]
        if not location:  # a check of the whole file names its watch itself
            problems.append(problem(error))
        elif location[0] != "watch":
            problems.append(f"unknown key {location[0]!r} (only [[watch]] tables belong here)")
        elif len(location) == 1:
            problems.append("no [[watch]] tables")
        else:
            number = int(location[1])
            where = _which(tables[number] if isinstance(tables, list) else None, number)
            key = ".".join(str(part) for part in location[2:])
            problems.append(f"{where}: {_keyed(key, error)}")
    return "; ".join(problems)


def _which(table: object, number: int) -> str:
    name = table.get("name") if isinstance(table, dict) else None
    return f"watch {name!r}" if isinstance(name, str) and name else f"watch #{number + 1}"


def _keyed(key: str, error: Any) -> str:
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(WatchTable.model_fields))
        return f"{key}: unknown key (known: {known})"
    if error["type"] == "model_type":
        return "not a table"
    message = problem(error, show_input=True)
    return f"{key}: {message}" if key else message
