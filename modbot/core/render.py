"""Turning incident views and notices into comment bodies with moderators' templates.

Two halves. The first is pure data: ``incident_context`` and ``notice_context`` build the
plain dicts a template receives, every string from the feed already escaped for Reddit
markdown, and ``finish`` appends the bot's hidden marker, so a template can neither
forget nor forge it. The second, ``Renderer``, runs a set of templates in Jinja2's
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, caps the output while it is
generated, and keeps a body under the length limit by dropping the oldest updates.

The running bot never calls ``Renderer`` on its event loop: ``sandbox`` runs it in a
worker process with a time and memory limit, because Jinja's sandbox bounds what a
template may touch, not how long it runs or how much it allocates.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from modbot.core import markdown, moments
from modbot.core.early import CONFIRMED, OPEN, SUBSIDED, Tally, lead_text
from modbot.core.records import (
    ComponentView,
    EarlyRow,
    IncidentView,
    PageInfo,
    Rendered,
    UpdateView,
)
from modbot.errors import TemplateError

if TYPE_CHECKING:
    import jinja2

INCIDENT_TEMPLATE = "incident.md.j2"
MANUAL_TEMPLATE = "manual.md.j2"
MAINTENANCE_TEMPLATE = "maintenance.md.j2"
EARLY_TEMPLATE = "early.md.j2"
REPLY_TEMPLATE = "reply.md.j2"
TEMPLATE_NAMES = (
    INCIDENT_TEMPLATE,
    MANUAL_TEMPLATE,
    MAINTENANCE_TEMPLATE,
    EARLY_TEMPLATE,
    REPLY_TEMPLATE,
)
# Added after moderators had their own folders: when a folder lacks one, the shipped one
# is used, so an upgrade never breaks a working set of templates.
OPTIONAL_TEMPLATES = frozenset({MAINTENANCE_TEMPLATE, EARLY_TEMPLATE, REPLY_TEMPLATE})
# The bot's own comments on Reddit: the only links an early notice shows besides the page.
REDDIT_HOSTS = frozenset({"www.reddit.com", "reddit.com", "old.reddit.com"})
QUIET_COMMAND = "!quiet 2h"  # what every early notice says holds them
OUTPUT_CAP = 50_000  # characters a template may produce before it is stopped
# Every field a template receives has a length cap, counted in escaped characters (cut
# by ``markdown.shorten``, which never splits an escape), so that no value, however
# long, can push a comment past OUTPUT_CAP or push the template's own footer out of
# Reddit's 10,000 characters: at their caps, everything but the updates fits in about
# 7,500 characters with the shipped templates, and updates are left out, oldest first,
# to make room. Real values sit far below these caps.
MAX_TITLE_CHARS = 300  # an incident's name
MAX_LABEL_CHARS = 60  # a status, an impact, a component's status
MAX_NAME_CHARS = 200  # a component's name, the page's name
MAX_COMPONENTS_CHARS = 2_000  # the components' labels together; further ones are left out
MAX_ID_CHARS = 100  # an incident's or an update's id (sources accept 64 for incidents)
MAX_URL_CHARS = 500  # a link from the feed (the short link): a longer one is not shown
MAX_UPDATE_CHARS = 4_000  # an update's text, the postmortem
# The raw value is cut to this many times its cap before escaping, so that a huge value
# costs no more to escape, or to keep in the escape caches, than a long one.
RAW_FACTOR = 4

STATUS_LABELS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "postmortem": "Postmortem",
    "update": "Update",
    "scheduled": "Scheduled",
    "in_progress": "In progress",
    "verifying": "Verifying",
    "completed": "Completed",
    "moved": "Page moved",
}
IMPACT_LABELS = {
    "none": "None",
    "minor": "Minor",
    "major": "Major",
    "critical": "Critical",
    "maintenance": "Maintenance",
}
COMPONENT_LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
# Short-link hosts of the vendors: Statuspage's incident links live on stspg.io.
VENDOR_LINK_HOSTS = frozenset({"stspg.io"})


def label(value: str, labels: Mapping[str, str]) -> str:
    """A readable label for a status or impact; a value we do not know is escaped text."""
    known = labels.get(value)
    if known is not None:
        return known
    words = value[: MAX_LABEL_CHARS * RAW_FACTOR].replace("_", " ").capitalize()
    return _field(words, MAX_LABEL_CHARS) or "Unknown"


def enum(value: str, labels: Mapping[str, str]) -> str:
    """A status or impact for templates to compare: known values as they are, anything
    else as escaped text (it can never equal a known value by accident)."""
    return value if value in labels else _field(value, MAX_LABEL_CHARS)


def _field(value: str, limit: int, hosts: frozenset[str] = frozenset()) -> str:
    """A one-line field, escaped and at most ``limit`` characters."""
    return markdown.shorten(markdown.escape_field(value[: limit * RAW_FACTOR], hosts), limit)


def _text(value: str, limit: int, hosts: frozenset[str]) -> str:
    """Multi-line text, escaped and at most ``limit`` characters."""
    return markdown.shorten(markdown.escape_text(value[: limit * RAW_FACTOR], hosts), limit)


def _link(url: str | None, hosts: frozenset[str]) -> str | None:
    """A URL from the feed or the store as a link, if it may be one (see ``clean_url``)."""
    if url is None or len(url) > MAX_URL_CHARS:
        return None
    return markdown.clean_url(url, hosts)


def digest(body: str) -> str:
    """The hash that decides whether a body changed."""
    return hashlib.sha256(body.encode()).hexdigest()


def format_time(moment: datetime | None, zone: ZoneInfo | None) -> str:
    """``Oct 07, 14:05 UTC``, or ``Oct 07, 07:05 PDT / 14:05 UTC`` with a zone; ``unknown
    time`` for none, or one too near the calendar's edges to show in every zone."""
    utc = moments.in_utc(moment) if moment is not None else None
    if utc is None:
        return "unknown time"
    text = utc.strftime("%b %d, %H:%M UTC")
    if zone is None:
        return text
    local = utc.astimezone(zone)
    return local.strftime("%b %d, %H:%M %Z") + " / " + utc.strftime("%H:%M UTC")


# --- templates as data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Templates:
    """One set of template sources and where they came from (a folder, for now)."""

    origin: str
    sources: tuple[tuple[str, str], ...]  # (name, source), in TEMPLATE_NAMES order

    @cached_property
    def digest(self) -> str:
        """Identifies this exact set of sources."""
        return digest(repr(self.sources))

    def source(self, name: str) -> str:
        """The text of one template."""
        return dict(self.sources)[name]


# --- contexts: the plain data a template receives -------------------------------------------


# Every string a template receives passes through here, typed: one-line fields and
# free text are escaped, statuses are known values or escaped text, ids and URLs are
# checked. Nothing from a feed reaches a template any other way.


def _component(component: ComponentView, hosts: frozenset[str]) -> dict[str, str]:
    status = label(component.status, COMPONENT_LABELS)
    name = _field(component.name, MAX_NAME_CHARS, hosts)
    text = name if component.status in ("operational", "") else f"{name} ({status.lower()})"
    return {"name": name, "status": enum(component.status, COMPONENT_LABELS), "label": text}


def _components(
    components: tuple[ComponentView, ...], hosts: frozenset[str]
) -> list[dict[str, str]]:
    """The components whose labels, listed, fit in MAX_COMPONENTS_CHARS (an incident
    touching more is rare, and its list would not be read)."""
    kept: list[dict[str, str]] = []
    size = 0
    for component in components:
        item = _component(component, hosts)
        size += len(item["label"]) + 2  # and a ", " between two
        if size > MAX_COMPONENTS_CHARS:
            break
        kept.append(item)
    return kept


def _update(update: UpdateView, zone: ZoneInfo | None, hosts: frozenset[str]) -> dict[str, str]:
    return dict(_update_context(update, zone, hosts))


@lru_cache(maxsize=4096)
def _update_context(
    update: UpdateView, zone: ZoneInfo | None, hosts: frozenset[str]
) -> dict[str, str]:
    """An update's context, made once: an incident's comment is rendered again with
    every new update, and its earlier updates' texts and times are what they were."""
    return {
        "id": _field(update.id, MAX_ID_CHARS),
        "status": enum(update.status, STATUS_LABELS),
        "status_label": label(update.status, STATUS_LABELS),
        "body": _text(update.body, MAX_UPDATE_CHARS, hosts),
        "time": format_time(update.shown_at, zone),
    }


def _page(page: PageInfo, hosts: frozenset[str]) -> dict[str, str]:
    # A page off the linkable hosts (one remembered from before they were the configured
    # page's alone) is named, never linked.
    url = _link(page.url, hosts) or ""
    return {"name": _field(page.name, MAX_NAME_CHARS), "url": url}


def link_hosts(home: str) -> frozenset[str]:
    """Hosts whose URLs a comment may show as links: the host of ``home``, the page the
    moderator configured, and the vendors' short-link hosts. Never a host a feed names,
    whether as its page's URL or in its text: a feed must not choose where readers go."""
    host = markdown.host_of(home)
    return VENDOR_LINK_HOSTS | ({host} if host else set())


@dataclass(frozen=True)
class Readers:
    """What an incident's comment shows of readers' reports: counts and rule labels
    (never a reader's words), how far ahead of the page they were, the early notice."""

    tally: Tally = field(default_factory=Tally)
    lead: float | None = None  # seconds from the first reports to the incident's opening
    notice_link: str | None = None  # the early notice's comment


def _labelled(counts: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"label": _field(label, MAX_LABEL_CHARS), "count": count} for label, count in counts]


def readers_context(readers: Readers | None) -> dict[str, Any]:
    """The ``reports`` a template receives: labels are the rules' and the components'
    names, escaped all the same."""
    found = readers or Readers()
    return {
        "authors": found.tally.authors,
        "errors": _labelled(found.tally.errors),
        "products": _labelled(found.tally.products),
        "lead": lead_text(found.lead),
        "early_notice": markdown.clean_url(found.notice_link, REDDIT_HOSTS) or "",
    }


def incident_context(
    view: IncidentView,
    page: PageInfo,
    zone: ZoneInfo | None,
    subreddit: str | None,
    hosts: frozenset[str],
    *,
    readers: Readers | None = None,
) -> dict[str, Any]:
    """The plain data an incident template receives (all updates, newest first); only
    URLs on ``hosts`` (``link_hosts``) are links."""
    page_data = _page(page, hosts)
    ident = _field(view.id, MAX_ID_CHARS)
    url = f"{page_data['url']}/incidents/{ident}" if page_data["url"] else ""
    postmortem = view.postmortem_body
    return {
        "incident": {
            "id": ident,
            "name": _field(view.name, MAX_TITLE_CHARS, hosts),
            "status": enum(view.status, STATUS_LABELS),
            "status_label": label(view.status, STATUS_LABELS),
            "impact": enum(view.impact, IMPACT_LABELS),
            "impact_label": label(view.impact, IMPACT_LABELS),
            "is_open": view.is_open,
            "url": url,
            "shortlink": _link(view.shortlink, hosts) or url,
            "started": format_time(view.created_at, zone),
            "resolved": format_time(view.resolved_at, zone) if view.resolved_at else "",
            "components": _components(view.components, hosts),
            "postmortem": _text(postmortem, MAX_UPDATE_CHARS, hosts) if postmortem else "",
            "maintenance": view.maintenance,
            "scheduled_for": format_time(view.scheduled_for, zone) if view.scheduled_for else "",
            "scheduled_until": (
                format_time(view.scheduled_until, zone) if view.scheduled_until else ""
            ),
        },
        "updates": [_update(u, zone, hosts) for u in reversed(view.updates)],
        "omitted_updates": 0,
        "page": page_data,
        "modmail_url": modmail_url(subreddit),
        "last_checked": "",
        "reports": readers_context(readers),
    }


def checked_time(stamp: float) -> str:
    """``14:05 UTC``: when the bot last read the page, for the ``last_checked`` line."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M UTC")


@dataclass(frozen=True)
class Confirmation:
    """The incident that confirmed an early notice, as the notice shows it."""

    name: str
    link: str | None  # the incident's own comment, once it is posted
    lead: float | None


def early_context(
    row: EarlyRow,
    page: PageInfo,
    zone: ZoneInfo | None,
    subreddit: str | None,
    hosts: frozenset[str],
    *,
    confirmation: Confirmation | None = None,
) -> dict[str, Any]:
    """The plain data the early notice's template receives: times, counts and labels."""
    incident = {"name": "", "url": "", "lead": ""}
    if confirmation is not None:
        incident = {
            "name": _field(confirmation.name, MAX_TITLE_CHARS, hosts),
            "url": markdown.clean_url(confirmation.link, REDDIT_HOSTS) or "",
            "lead": lead_text(confirmation.lead),
        }
    state = row.state if row.state in (OPEN, CONFIRMED, SUBSIDED) else OPEN
    return {
        "notice": {
            "id": _field(row.notice_id, MAX_ID_CHARS),
            "state": state,
            "began": format_time(_moment(row.began), zone),
            "detected": format_time(_moment(row.detected), zone),
            "ended": format_time(_moment(row.ended), zone) if row.ended else "",
            "authors": row.authors,
            "errors": _labelled(row.errors),
            "products": _labelled(row.products),
        },
        "incident": incident,
        "page": _page(page, hosts),
        "quiet_command": QUIET_COMMAND,
        "modmail_url": modmail_url(subreddit),
    }


def reply_context(
    about: str,
    name: str,
    link: str,
    *,
    removed: bool,
    page: PageInfo,
    subreddit: str | None,
    hosts: frozenset[str],
) -> dict[str, Any]:
    """What the reply to a reader's stray post receives: what it points to, never the
    post's words."""
    return {
        "about": "incident" if about == "inc" else "early",
        "name": _field(name, MAX_TITLE_CHARS, hosts) if about == "inc" else "",
        "link": markdown.clean_url(link, REDDIT_HOSTS) or "",
        "removed": removed,
        "page": _page(page, hosts),
        "modmail_url": modmail_url(subreddit),
    }


def _moment(stamp: float | None) -> datetime | None:
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def notice_context(
    text: str, page: PageInfo, subreddit: str | None, hosts: frozenset[str]
) -> dict[str, Any]:
    """What the notice template receives; ``text`` is data shown literally, never code."""
    return {
        "text": markdown.escape_text(text, hosts),
        "page": _page(page, hosts),
        "modmail_url": modmail_url(subreddit),
    }


def modmail_url(subreddit: str | None) -> str:
    """A link to message the subreddit's moderators ("" when there is no subreddit)."""
    if not subreddit:
        return ""
    return f"https://www.reddit.com/message/compose?to=/r/{subreddit}"


def incident_tail(incident_id: str, watch: str = markdown.LEGACY_WATCH) -> str:
    """What the bot appends to an incident's body: its hidden marker."""
    return "\n\n" + markdown.marker("inc", incident_id, watch)


def notice_tail(note_id: str, watch: str = markdown.LEGACY_WATCH) -> str:
    """What the bot appends to a notice's body: its hidden marker."""
    return "\n\n" + markdown.marker("note", note_id, watch)


def reply_tail(post_id: str, watch: str = markdown.LEGACY_WATCH) -> str:
    """What the bot appends to its reply to a stray post: its hidden marker."""
    return "\n\n" + markdown.marker("route", post_id, watch)


def early_tail(notice_id: str, watch: str = markdown.LEGACY_WATCH) -> str:
    """What the bot appends to an early notice's body: its hidden marker."""
    return "\n\n" + markdown.marker("early", notice_id, watch)


@dataclass(frozen=True)
class Job:
    """One body to render: which template, its context, the room it has, the marker."""

    name: str
    context: dict[str, Any]
    limit: int
    tail: str

    def finish(self, text: str, omitted: int = 0) -> Rendered:
        """The final body: the template's output and the bot's marker after it. Whatever
        a template wrote (a literal lone surrogate, "\ud800", included) becomes a body
        that can be hashed, stored and sent."""
        body = markdown.sound(text) + self.tail
        if self.name == MANUAL_TEMPLATE:
            return Rendered(body, digest(body), cut_chars=omitted)
        return Rendered(body, digest(body), omitted_updates=omitted)


def incident_job(
    view: IncidentView,
    page: PageInfo,
    *,
    hosts: frozenset[str],
    zone: ZoneInfo | None = None,
    subreddit: str | None = None,
    max_length: int = 10_000,
    watch: str = markdown.LEGACY_WATCH,
    checked_at: float | None = None,
    readers: Readers | None = None,
) -> Job:
    """The job of rendering one incident's comment; ``checked_at``: the time its
    ``last_checked`` line shows while it is open (None: no such line)."""
    tail = incident_tail(view.id, watch)
    context = incident_context(view, page, zone, subreddit, hosts, readers=readers)
    if checked_at is not None and view.is_open:
        context["last_checked"] = checked_time(checked_at)
    name = MAINTENANCE_TEMPLATE if view.maintenance else INCIDENT_TEMPLATE
    return Job(name, context, max_length - len(tail), tail)


def notice_job(
    text: str,
    note_id: str,
    page: PageInfo,
    *,
    hosts: frozenset[str],
    subreddit: str | None = None,
    max_length: int = 10_000,
    watch: str = markdown.LEGACY_WATCH,
) -> Job:
    """The job of rendering a moderator's notice."""
    tail = notice_tail(note_id, watch)
    context = notice_context(text, page, subreddit, hosts)
    return Job(MANUAL_TEMPLATE, context, max_length - len(tail), tail)


def early_job(
    row: EarlyRow,
    page: PageInfo,
    *,
    hosts: frozenset[str],
    zone: ZoneInfo | None = None,
    subreddit: str | None = None,
    max_length: int = 10_000,
    watch: str = markdown.LEGACY_WATCH,
    confirmation: Confirmation | None = None,
) -> Job:
    """The job of rendering an early notice."""
    tail = early_tail(row.notice_id, watch)
    context = early_context(row, page, zone, subreddit, hosts, confirmation=confirmation)
    return Job(EARLY_TEMPLATE, context, max_length - len(tail), tail)


def reply_job(
    post_id: str,
    context: dict[str, Any],
    *,
    max_length: int = 10_000,
    watch: str = markdown.LEGACY_WATCH,
) -> Job:
    """The job of rendering the reply to a stray post (``context`` from ``reply_context``)."""
    tail = reply_tail(post_id, watch)
    return Job(REPLY_TEMPLATE, context, max_length - len(tail), tail)


def sample_incident() -> IncidentView:
    """A made-up incident used to check that templates render."""
    moment = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    return IncidentView(
        id="sample0000001",
        name="Elevated errors on the API",
        status="monitoring",
        impact="major",
        shortlink="https://stspg.io/sample",
        created_at=moment,
        resolved_at=None,
        components=(ComponentView("API", "partial_outage"),),
        updates=(
            UpdateView("u1", "investigating", "We are investigating.", moment),
            UpdateView("u2", "monitoring", "A fix is in place.", moment),
        ),
        postmortem_body="A short write-up.",
    )


def sample_maintenance() -> IncidentView:
    """A made-up maintenance in progress, used to check the maintenance template."""
    start = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    return IncidentView(
        id="sample0000002",
        name="Planned database maintenance",
        status="in_progress",
        impact="maintenance",
        shortlink="https://stspg.io/sample2",
        created_at=start,
        resolved_at=None,
        components=(ComponentView("API", "under_maintenance"),),
        updates=(UpdateView("m1", "in_progress", "The maintenance has started.", start),),
        maintenance=True,
        scheduled_for=start,
        scheduled_until=start.replace(hour=5),
    )


SAMPLE_PAGE = PageInfo("status.example.com", "https://status.example.com")
SAMPLE_NOTICE = "A sample notice."
SAMPLE_READERS = Readers(
    Tally(23, (("529 overloaded", 12), ("500", 5)), (("API", 9),)),
    lead=14 * 60.0,
    notice_link="https://www.reddit.com/r/sample/comments/abc/sample/def/",
)


def sample_early(state: str = CONFIRMED) -> EarlyRow:
    """A made-up early notice, used to check the early notice's template."""
    began = datetime(2026, 1, 2, 2, 50, tzinfo=UTC).timestamp()
    return EarlyRow(
        watch="sample",
        notice_id="e1767322200",
        began=began,
        detected=began + 240,
        authors=7,
        errors=(("529 overloaded", 4), ("500", 2)),
        products=(("API", 5),),
        state=state,
        body="",
        body_hash="",
        created_at=began + 240,
        incident_id="sample0000001" if state == CONFIRMED else None,
        ended=began + 3600 if state == SUBSIDED else None,
    )


SAMPLE_CONFIRMATION = Confirmation(
    "Elevated errors on the API",
    "https://www.reddit.com/r/sample/comments/abc/sample/ghi/",
    lead=14 * 60.0,
)


def sample_jobs(templates: Templates) -> list[tuple[str, dict[str, Any]]]:
    """Every template with sample data: what a template must render to be accepted."""
    del templates  # every set has the same templates; the argument keeps call sites honest
    page, hosts = SAMPLE_PAGE, link_hosts(SAMPLE_PAGE.url)
    incident = sample_incident()
    return [
        (
            INCIDENT_TEMPLATE,
            # Every optional part shown at once: readers' counts and the "last checked" line.
            incident_context(incident, page, None, "sample", hosts, readers=SAMPLE_READERS)
            | {"last_checked": checked_time(1_700_000_000.0)},
        ),
        (INCIDENT_TEMPLATE, incident_context(incident, page, None, "sample", hosts)),
        (MANUAL_TEMPLATE, notice_context(SAMPLE_NOTICE, page, "sample", hosts)),
        (MAINTENANCE_TEMPLATE, incident_context(sample_maintenance(), page, None, "sample", hosts)),
        *(
            (
                EARLY_TEMPLATE,
                early_context(
                    sample_early(state), page, None, "sample", hosts, confirmation=confirmation
                ),
            )
            for state, confirmation in (
                (OPEN, None),
                (CONFIRMED, SAMPLE_CONFIRMATION),
                (SUBSIDED, None),
            )
        ),
        *(
            (
                REPLY_TEMPLATE,
                reply_context(
                    about,
                    "Elevated errors on the API",
                    "https://www.reddit.com/r/sample/comments/abc/sample/def/",
                    removed=removed,
                    page=page,
                    subreddit="sample",
                    hosts=hosts,
                ),
            )
            for about, removed in (("inc", False), ("early", True))
        ),
    ]


# --- running templates ----------------------------------------------------------------------


class Renderer:
    """A compiled set of templates. Construction compiles every template (errors name the
    file and line); ``render`` runs one with a context."""

    def __init__(self, templates: Templates) -> None:
        import jinja2  # noqa: PLC0415 - only the render worker and the tests load Jinja
        from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415

        self.templates = templates
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.DictLoader(dict(templates.sources)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._compiled: dict[str, jinja2.Template] = {}
        for name, _ in templates.sources:
            self._compiled[name] = self._compile(env, name)

    def _compile(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        """One template, compiled. Jinja computes constant output while compiling
        (``{{ 'a' * 10**8 }}``), so compiling can run out of memory or raise what the
        expression raises; it runs in the worker, within its limits, like a render."""
        import jinja2  # noqa: PLC0415 - only the render worker and the tests load Jinja

        try:
            return env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self._path(name)}, line {exc.lineno}: {exc.message}") from exc
        except MemoryError:
            # from None: the traceback would keep the huge constant alive.
            raise TemplateError(f"{self._path(name)}: exceeds the memory limit") from None
        except Exception as exc:  # whatever else computing a constant raises
            raise TemplateError(f"{self._path(name)}: {type(exc).__name__}: {exc}") from exc

    def _path(self, name: str) -> str:
        return str(Path(self.templates.origin) / name)

    def _run(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            pieces = self._pieces(name, context)
        except TemplateError:
            raise
        except MemoryError:
            # Nothing to add: a MemoryError says no more than this message, and keeping it
            # would hold the frames that filled the memory.
            raise TemplateError(f"{self._path(name)}: exceeds the memory limit") from None
        except Exception as exc:  # any error a template can raise, reported with its line
            raise TemplateError(f"{self._path(name)}{_template_line(exc, name)}: {exc}") from exc
        return "".join(pieces).strip()

    def _pieces(self, name: str, context: Mapping[str, Any]) -> list[str]:
        """The template's output, piece by piece, stopped past ``OUTPUT_CAP``. Its render
        function is run directly (``generate`` adds a generator around every piece, a
        fifth of a comment's rendering); an error gets the template's own lines in its
        traceback, as ``generate`` gives it."""
        template = self._compiled[name]
        pieces: list[str] = []
        size = 0
        try:
            for piece in template.root_render_func(template.new_context(dict(context))):
                size += len(piece)
                if size > OUTPUT_CAP:
                    raise TemplateError(
                        f"{self._path(name)}: output exceeds {OUTPUT_CAP} characters"
                    )
                pieces.append(piece)
        except (TemplateError, MemoryError):
            raise
        except Exception:  # re-raised by Jinja, with the template's lines
            template.environment.handle_exception()
        return pieces

    def body(self, job: Job) -> Rendered:
        """Run ``job`` here, in this process (the tests do; the bot uses the worker)."""
        text, omitted = self.render(job.name, job.context, job.limit)
        return job.finish(text, omitted)

    def render(self, name: str, context: Mapping[str, Any], limit: int) -> tuple[str, int]:
        """The output for ``context``, at most ``limit`` characters, and how much was left
        out to fit: the oldest updates of an incident (how many), or the end of a notice's
        words (how many characters). The template's own text, its footer, is never cut."""
        if isinstance(context.get("text"), str):
            return self._fit_text(name, context, limit)
        updates = context.get("updates")
        if not isinstance(updates, list) or not updates:
            return markdown.shorten(self._run(name, context), limit), 0
        # Leave out the oldest updates that cannot fit before rendering, so that any
        # incident renders within the output cap, however long its history.
        keep = _fitting(updates, limit)
        if keep < len(updates):
            context = _trimmed(context, keep)
            updates = context["updates"]
        omitted = int(context.get("omitted_updates", 0))
        text = self._run(name, context)
        if len(text) <= limit:
            return text, omitted
        return self._fit(name, context, limit, omitted)

    def _fit_text(self, name: str, context: Mapping[str, Any], limit: int) -> tuple[str, int]:
        """Cut a notice's words (never the template around them) until the body fits."""
        words = str(context["text"])
        output = self._run(name, context)
        for _ in range(8):
            if len(output) <= limit or not words:
                break
            words = markdown.shorten(words, max(len(words) - (len(output) - limit) - 1, 0))
            output = self._run(name, dict(context, text=words))
        cut = len(str(context["text"])) - len(words)
        return markdown.shorten(output, limit), cut

    def _fit(
        self, name: str, context: Mapping[str, Any], limit: int, omitted: int
    ) -> tuple[str, int]:
        """Keep the newest updates that fit (binary search on how many)."""
        updates = context["updates"]
        best: tuple[int, str] | None = None
        low, high = 0, len(updates) - 1
        while low <= high:
            keep = (low + high) // 2
            text = self._run(name, _trimmed(context, keep, omitted))
            if len(text) <= limit:
                best, low = (keep, text), keep + 1
            else:
                high = keep - 1
        if best is None:
            text = markdown.shorten(self._run(name, _trimmed(context, 0, omitted)), limit)
            best = (0, text)
        kept, text = best
        return text, omitted + len(updates) - kept


UPDATE_OVERHEAD = 40  # characters a template adds around each update, at least


def _fitting(updates: list[Any], limit: int) -> int:
    """How many of the newest updates could fit in ``limit`` (always at least one)."""
    total = 0
    for count, update in enumerate(updates):
        body = update.get("body", "") if isinstance(update, Mapping) else ""
        total += len(str(body)) + UPDATE_OVERHEAD
        if total > limit:
            return max(count, 1)
    return len(updates)


def _trimmed(context: Mapping[str, Any], keep: int, already: int = 0) -> dict[str, Any]:
    updates = context["updates"]
    return dict(context, updates=updates[:keep], omitted_updates=already + len(updates) - keep)


def _template_line(exc: BaseException, name: str) -> str:
    """``, line N`` of the template frame in the traceback, when Jinja left one."""
    tb: TracebackType | None = exc.__traceback__
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.endswith(name) or frame.f_code.co_filename == "<template>":
            line = lineno
    return f", line {line}" if line else ""
