"""incident.io status pages (status.openai.com, Perplexity, Groq, Cohere).

Their ``/api/v2/incidents.json`` is a Statuspage-compatible layer: ULID ids, real update
bodies, but no components, no shortlink, ``display_at`` earlier than ``created_at``, a
list not sorted by creation, and no ETag or Last-Modified at all. So every poll is a
full download, and an unchanged one is known by the hash of the body, without parsing.

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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modbot.core.feed import Component, Incident, IncidentsFeed, decode, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedMalformed, FeedNotJSON, FeedUnavailable
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, Page
from modbot.sources.statuspage import INCIDENTS_PATH, StatuspageClient

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
        self._ids = StatuspageClient(self.home, http)  # its id check, nothing else
        self._summary_missing = False

    async def fetch(self, since: Validators) -> Fetched:
        """Both documents; "unchanged" when neither body changed (no parsing then)."""
        page = await self._fetcher.get(self.url)
        if page.status != 200:
            raise FeedUnavailable(f"{self.url}: unexpected HTTP {page.status}")
        if page.looks_like_html():
            raise FeedNotJSON(f"{self.url} answered an HTML page instead of JSON")
        summary = await self._summary() if self.wants_summary else None
        digest = hashlib.sha256(page.body + b"\0" + (summary.body if summary else b"")).hexdigest()
        size = len(page.body) + (len(summary.body) if summary else 0)
        if since.digest == digest:
            return Fetched(feed=None, validators=since, received_bytes=size)
        feed = self.snapshot(page.body, summary)
        return Fetched(feed=feed, validators=Validators(digest=digest), received_bytes=size)

    def snapshot(self, body: bytes, summary: Page | None) -> IncidentsFeed:
        """The incidents list (and the summary, when wanted), in the snapshot every source
        produces."""
        try:
            feed = parse_incidents_object(decode(body))
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from None
        feed = self._ids.valid(feed)
        return self._with_summary(feed, summary) if self.wants_summary else feed

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
        names = _component_names(summary)
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


def _summary_of(page: Page | None) -> Mapping[str, Any] | None:
    if page is None:
        return None
    try:
        data = decode(page.body)
    except FeedMalformed:
        return None
    summary = data.get("summary") if isinstance(data, Mapping) else None
    return summary if isinstance(summary, Mapping) else None


def _component_names(summary: Mapping[str, Any]) -> dict[str, str]:
    names = {str(c.get("id")): str(c.get("name") or "") for c in _items(summary, "components")}
    structure = _value(summary, "structure")
    for item in _items(structure, "items") if isinstance(structure, Mapping) else []:
        component = _value(item, "component")
        if isinstance(component, Mapping) and component.get("component_id"):
            names.setdefault(str(component["component_id"]), str(component.get("name") or ""))
    return names


def _impacts(item: Mapping[str, Any], names: Mapping[str, str]) -> list[Component]:
    """The components an ongoing incident or maintenance affects, with their status."""
    seen: dict[str, Component] = {}
    for impact in _items(item, "component_impacts") + _items(item, "affected_components"):
        component_id = str(impact.get("component_id") or "")
        status = COMPONENT_STATUS.get(str(_value(impact, "status") or ""), "degraded_performance")
        if component_id and component_id not in seen:
            seen[component_id] = Component(
                id=component_id, name=names.get(component_id, ""), status=status
            )
    return sorted(seen.values(), key=lambda c: c.name)


def _maintenance(item: Mapping[str, Any], names: Mapping[str, str]) -> Incident:
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
    """An update's text: the plain string when there is one, else its markdown."""
    text = _value(update, "message_string")
    if isinstance(text, str) and text.strip():
        return text
    message = _value(update, "message")
    markdown = _value(message, "markdown") if isinstance(message, Mapping) else None
    return markdown if isinstance(markdown, str) else ""


def _window(item: Mapping[str, Any], key: str) -> list[str]:
    """The ``key`` times (``start_at``/``end_at``) of a maintenance's windows, as ISO text."""
    windows = _items(item, "status_summaries") + _items(item, "component_impacts")
    return [w[key] for w in windows if isinstance(w.get(key), str) and w[key][:1].isdigit()]
