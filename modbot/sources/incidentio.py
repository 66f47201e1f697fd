"""incident.io status pages (status.openai.com, Perplexity, Groq, Cohere).

Their ``/api/v2/incidents.json`` is a Statuspage-compatible layer: ULID ids, real update
bodies, but no components, no shortlink, ``display_at`` earlier than ``created_at``, a
list not sorted by creation, and no ETag or Last-Modified at all. So every poll is a
full download, and an unchanged one is known by the hash of the body, without parsing.

Update bodies have come back empty from that layer (OpenAI's, March 2026): an empty one
is taken from the page's own feed of incidents, ``/proxy/<host>/incidents`` (by update
id, else by time), and where that cannot be read either the update says "(no text
published)": a comment never shows an update line with no text.

Which components an ongoing incident touches (for a component filter) and the scheduled
maintenances come from the page's own summary, ``/proxy/<host>``, which its frontend
reads. It is undocumented: every field is optional, and when it cannot be read the
watch says so once and posts unfiltered rather than nothing. An incident that is no
longer ongoing keeps the components it was seen with (``components_known`` False).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modbot.core.feed import (
    NO_TEXT,
    Component,
    Incident,
    IncidentsFeed,
    ParseCache,
    decode,
    parse_incidents_object,
)
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedMalformed
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, Page
from modbot.sources.statuspage import INCIDENTS_PATH, StatuspageClient, platform_of

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# incident.io's component and maintenance statuses, in Statuspage's words.
COMPONENT_STATUS = {
    "operational": "operational",
    "degraded_performance": "degraded_performance",
    "partial_outage": "partial_outage",
    "full_outage": "major_outage",
    "under_maintenance": "under_maintenance",
}
MAINTENANCE_STATUS = {
    "maintenance_scheduled": "scheduled",
    "maintenance_in_progress": "in_progress",
    "maintenance_complete": "completed",
}
UNDEFINED = "$undefined"  # how the page's frontend data marks a missing value


def _value(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    return None if value == UNDEFINED else value


def _items(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = _value(data, key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


class IncidentioClient:
    """Polls one incident.io page (the ``Source`` port)."""

    kind = "incidentio"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        summary: bool = False,
        maintenance: bool = False,
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.home = base_url.rstrip("/")
        self.url = self.home + INCIDENTS_PATH
        self.summary_url = f"{self.home}/proxy/{urlsplit(self.home).hostname}"
        self.wants_summary = summary or maintenance
        self.maintenance = maintenance
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._cache = ParseCache()  # what its last document parsed into
        self.texts_url = self.summary_url + "/incidents"
        self._ids = StatuspageClient(self.home, http)  # its id check, nothing else
        self._summary_missing = False
        self._texts_wanted = False  # the last list had empty bodies: read the texts too
        self._texts_missing = False

    async def fetch(self, since: Validators) -> Fetched:
        """Both documents; "unchanged" when neither body changed (no parsing then)."""
        page = await self._fetcher.json_page(self.url)
        summary = await self._summary() if self.wants_summary else None
        texts = await self._texts() if self._texts_wanted else None
        bodies = [page.body, summary.body if summary else b"", texts or b""]
        size = sum(len(b) for b in bodies)
        if since.digest == _digest(bodies):
            return Fetched(feed=None, validators=since, received_bytes=size)
        feed = self._parsed(page.body)
        platform = platform_of(page.headers, [i.id for i in feed.incidents])
        if _empty_bodies(feed):
            if texts is None:
                self._texts_wanted = True
                texts = await self._texts()
                bodies[2] = texts or b""
            feed = with_texts(feed, texts)
        else:
            self._texts_wanted = False
        if self.wants_summary:
            feed = self._with_summary(feed, summary)
        return Fetched(
            feed=feed,
            validators=Validators(digest=_digest(bodies)),
            received_bytes=size,
            platform=platform,
        )

    def snapshot(
        self, body: bytes, summary: Page | None, texts: bytes | None = None
    ) -> IncidentsFeed:
        """The incidents list (with the texts of updates it left empty, and the summary,
        when wanted), in the snapshot every source produces."""
        feed = self._parsed(body)
        if _empty_bodies(feed):
            feed = with_texts(feed, texts)
        return self._with_summary(feed, summary) if self.wants_summary else feed

    def _parsed(self, body: bytes) -> IncidentsFeed:
        try:
            feed = parse_incidents_object(decode(body), self._cache)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc
        return self._ids.valid(feed)

    async def _texts(self) -> bytes | None:
        """The page's own feed of incidents with their update texts, or None (said once)."""
        try:
            page = await self._fetcher.get(self.texts_url)
        except FeedError as exc:
            self._no_texts(str(exc))
            return None
        if page.status != 200 or page.looks_like_html():
            self._no_texts(f"HTTP {page.status}")
            return None
        self._texts_missing = False
        return page.body

    def _no_texts(self, reason: str) -> None:
        if not self._texts_missing:
            log.warning(
                "%s: updates without text, and their text cannot be read here (%s): they "
                "show %r until it can",
                self.texts_url,
                reason,
                NO_TEXT,
            )
        self._texts_missing = True

    async def _summary(self) -> Page | None:
        """The page's own summary, or None (said once) when it cannot be read."""
        try:
            page = await self._fetcher.get(self.summary_url)
        except FeedError as exc:
            self._missing(str(exc))
            return None
        if page.status != 200 or page.looks_like_html():
            self._missing(f"HTTP {page.status}")
            return None
        if self._summary_missing:
            log.info("%s: the page's summary answers again", self.summary_url)
        self._summary_missing = False
        return page

    def _missing(self, reason: str) -> None:
        if not self._summary_missing:
            log.warning(
                "%s: cannot read the page's summary (%s): posting every incident, "
                "unfiltered by component, until it answers again",
                self.summary_url,
                reason,
            )
        self._summary_missing = True

    def _with_summary(self, feed: IncidentsFeed, page: Page | None) -> IncidentsFeed:
        summary = _summary_of(page)
        if summary is None:
            unknown = [i.model_copy(update={"components_known": False}) for i in feed.incidents]
            return feed.model_copy(update={"incidents": unknown})
        names = Names(summary)
        ongoing = {str(item.get("id")): item for item in _items(summary, "ongoing_incidents")}
        incidents = []
        for incident in feed.incidents:
            item = ongoing.get(incident.id)
            if item is None:
                incidents.append(incident.model_copy(update={"components_known": False}))
            else:
                incidents.append(incident.model_copy(update={"components": _impacts(item, names)}))
        if not self.maintenance:
            return feed.model_copy(update={"incidents": incidents})
        incidents += [_maintenance(m, names) for m in _items(summary, "scheduled_maintenances")]
        return feed.model_copy(update={"incidents": incidents, "lists_open_maintenances": True})


def _digest(bodies: list[bytes]) -> str:
    return hashlib.sha256(b"\0".join(bodies)).hexdigest()


def _empty_bodies(feed: IncidentsFeed) -> bool:
    return any(not u.body.strip() for i in feed.incidents for u in i.incident_updates)


def with_texts(feed: IncidentsFeed, texts: bytes | None) -> IncidentsFeed:
    """``feed`` with every empty update body taken from the page's own feed of incidents
    (``texts``), by update id, else by the update's time; ``NO_TEXT`` where neither has it."""
    by_id, by_time = _texts_of(texts)
    incidents = []
    for incident in feed.incidents:
        updates = []
        for update in incident.incident_updates:
            if update.body.strip():
                updates.append(update)
                continue
            stamp = update.shown_at.isoformat() if update.shown_at else ""
            text = by_id.get(update.id) or by_time.get((incident.id, stamp)) or NO_TEXT
            updates.append(update.model_copy(update={"body": text}))
        incidents.append(incident.model_copy(update={"incident_updates": updates}))
    return feed.model_copy(update={"incidents": incidents})


def _texts_of(body: bytes | None) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Update texts of the page's own incidents feed, by update id and by (incident, time)."""
    by_id: dict[str, str] = {}
    by_time: dict[tuple[str, str], str] = {}
    try:
        data = decode(body) if body else None
    except FeedMalformed:
        data = None
    for incident in _incident_items(data):
        for update in _items(incident, "updates"):
            text = _message(update).strip()
            if not text:
                continue
            by_id[str(update.get("id"))] = text
            when = _iso(_value(update, "published_at"))
            if when:
                by_time[(str(incident.get("id")), when)] = text
    return by_id, by_time


def _incident_items(data: Any) -> list[Mapping[str, Any]]:
    """The incidents of the feed, whether bare or under ``incidents`` (or ``summary``)."""
    if isinstance(data, list):
        return [d for d in data if isinstance(d, Mapping)]
    if not isinstance(data, Mapping):
        return []
    for key in ("incidents", "ongoing_incidents"):
        if isinstance(data.get(key), list):
            return _items(data, key)
    return _incident_items(data.get("summary"))


def _iso(value: Any) -> str:
    """An ISO time as the core writes it (aware UTC), or ''."""
    if not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _summary_of(page: Page | None) -> Mapping[str, Any] | None:
    if page is None:
        return None
    try:
        data = decode(page.body)
    except FeedMalformed:
        return None
    summary = data.get("summary") if isinstance(data, Mapping) else None
    return summary if isinstance(summary, Mapping) else None


class Names:
    """A page's component names by id, and the group each sits in."""

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self.names = {
            str(c.get("id")): str(c.get("name") or "") for c in _items(summary, "components")
        }
        self.groups: dict[str, str] = {}
        structure = _value(summary, "structure")
        for item in _items(structure, "items") if isinstance(structure, Mapping) else []:
            component = _value(item, "component")
            if isinstance(component, Mapping) and component.get("component_id"):
                self._add(component, "")
            group = _value(item, "group")
            if isinstance(group, Mapping):
                for member in _items(group, "components"):
                    self._add(member, str(_value(group, "name") or ""))

    def _add(self, component: Mapping[str, Any], group: str) -> None:
        if component.get("component_id"):
            ident = str(component["component_id"])
            self.names.setdefault(ident, str(component.get("name") or ""))
            if group:
                self.groups[ident] = group

    def component(self, ident: str, status: str) -> Component:
        return Component(
            id=ident,
            name=self.names.get(ident, ""),
            status=status,
            group_name=self.groups.get(ident, ""),
        )

    def listed(self) -> list[str]:
        """Every group and component name, for ``check --connect``."""
        groups = sorted(set(self.groups.values()))
        return groups + sorted({n for n in self.names.values() if n} - set(groups))


def page_components(body: bytes) -> list[str] | None:
    """The names a filter can pick on a page, from its summary (``None``: unreadable)."""
    try:
        data = decode(body)
    except FeedMalformed:
        return None
    summary = data.get("summary") if isinstance(data, Mapping) else None
    return Names(summary).listed() if isinstance(summary, Mapping) else None


def _impacts(item: Mapping[str, Any], names: Names) -> list[Component]:
    """The components an ongoing incident or maintenance affects, with their status."""
    seen: dict[str, Component] = {}
    for impact in _items(item, "component_impacts") + _items(item, "affected_components"):
        component_id = str(impact.get("component_id") or "")
        status = COMPONENT_STATUS.get(str(_value(impact, "status") or ""), "degraded_performance")
        if component_id and component_id not in seen:
            seen[component_id] = names.component(component_id, status)
    return sorted(seen.values(), key=lambda c: c.name)


def _maintenance(item: Mapping[str, Any], names: Names) -> Incident:
    """A scheduled maintenance of the summary, as an incident the core can diff."""
    updates = []
    for update in _items(item, "updates"):
        message = _message(update)
        updates.append(
            {
                "id": str(update.get("id")),
                "status": MAINTENANCE_STATUS.get(str(_value(update, "to_status") or ""), "update"),
                "body": message,
                "created_at": _value(update, "published_at"),
            }
        )
    status = MAINTENANCE_STATUS.get(str(_value(item, "status") or ""), "scheduled")
    starts, ends = _window(item, "start_at"), _window(item, "end_at")
    return Incident.model_validate(
        {
            "id": str(item.get("id")),
            "name": _value(item, "name") or "",
            "status": status,
            "impact": "maintenance",
            "created_at": _value(item, "published_at"),
            "incident_updates": updates,
            "components": [c.model_dump() for c in _impacts(item, names)],
            "maintenance": True,
            "scheduled_for": min(starts, default=None),
            "scheduled_until": max(ends, default=None),
        }
    )


def _message(update: Mapping[str, Any]) -> str:
    """An update's text: the plain string when there is one, else its markdown, else the
    text of its document tree."""
    text = _value(update, "message_string")
    if isinstance(text, str) and text.strip():
        return text
    message = _value(update, "message")
    if not isinstance(message, Mapping):
        return ""
    markdown = _value(message, "markdown")
    if isinstance(markdown, str) and markdown.strip():
        return markdown
    return _tree_text(_value(message, "text_node")).strip()


BLOCKS = frozenset({"paragraph", "listItem", "heading", "blockquote", "codeBlock"})


def _tree_text(node: Any) -> str:
    """The text of a document tree (``{"type", "text", "content": [...]}``), one line per
    paragraph or list item."""
    if not isinstance(node, Mapping):
        return ""
    own = _value(node, "text")
    text = own if isinstance(own, str) else ""
    children = _value(node, "content")
    if isinstance(children, list):
        text += "".join(_tree_text(child) for child in children)
    return text + "\n" if _value(node, "type") in BLOCKS and not text.endswith("\n") else text


def _window(item: Mapping[str, Any], key: str) -> list[str]:
    """The ``key`` times (``start_at``/``end_at``) of a maintenance's windows, as ISO text."""
    windows = _items(item, "status_summaries") + _items(item, "component_impacts")
    return [w[key] for w in windows if isinstance(w.get(key), str) and w[key][:1].isdigit()]
