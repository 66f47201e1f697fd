"""Datadog status pages (status.openrouter.ai since September 2026).

The page itself is a script shell; everything it shows comes from one unauthenticated
document, ``/config.json``: the page's components (``ComponentGroup``s holding
``Component``s), its incidents, each with a ``timeline`` of updates newest first, and its
maintenances. Incidents brought over from another platform carry the move's time as
every update's ``createdAt``; the time the page shows is ``startedAt``, so that is the
update's time here. No validators were seen: an unchanged poll is known by the hash of
the body, without parsing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modbot.core.feed import NO_TEXT, IncidentsFeed, ParseCache, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import FeedMalformed
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, decoded

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

CONFIG_PATH = "/config.json"
INCIDENT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
COMPONENT_STATUS = {
    "operational": "operational",
    "degraded": "degraded_performance",
    "degraded_performance": "degraded_performance",
    "partial_outage": "partial_outage",
    "major_outage": "major_outage",
    "full_outage": "major_outage",
    "maintenance": "under_maintenance",
    "under_maintenance": "under_maintenance",
}
IMPACT_OF = {"degraded_performance": "minor", "partial_outage": "major", "major_outage": "critical"}


def _items(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def looks_like_config(data: Any) -> bool:
    """True for a Datadog status page's ``config.json`` (for ``auto``)."""
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("components"), list)
        and "incidents" in data
        and any(key in data for key in ("pageUrl", "domainPrefix", "visualizationType"))
    )


class DatadogClient:
    """Polls one Datadog status page (the ``Source`` port)."""

    kind = "datadog"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.home = base_url.rstrip("/")
        self.url = self.home + CONFIG_PATH
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._parsed = ParseCache()  # what its last document parsed into
        self._refused: set[str] = set()

    async def fetch(self, since: Validators) -> Fetched:
        """The page's incidents; "unchanged" by the body's hash."""
        page = await self._fetcher.json_page(self.url)
        validators = Validators(digest=page.digest)
        if since.digest == validators.digest:
            return Fetched(feed=None, validators=since, received_bytes=len(page.body))
        data = decoded(self.url, page.body)
        if not isinstance(data, Mapping):
            raise FeedMalformed(f"{self.url}: not a Datadog status page document")
        return Fetched(
            feed=self.snapshot(data), validators=validators, received_bytes=len(page.body)
        )

    def snapshot(self, data: Mapping[str, Any]) -> IncidentsFeed:
        """The page's incidents, in the snapshot every source produces."""
        groups = _groups(data)
        incidents = []
        for item in _items(data, "incidents"):
            ident = str(item.get("id") or "")
            if INCIDENT_ID.fullmatch(ident):
                incidents.append(_incident(item, groups))
            elif ident not in self._refused:
                self._refused.add(ident)
                log.warning("%s: skipping an incident whose id %r is odd", self.url, ident[:80])
        page = {"name": str(data.get("name") or ""), "url": self.home}
        try:
            return parse_incidents_object({"page": page, "incidents": incidents}, self._parsed)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc


def page_components(data: Mapping[str, Any]) -> list[str]:
    """Every group and component name of the page, for ``check --connect``."""
    names = []
    for item in _items(data, "components"):
        names.append(str(item.get("name") or ""))
        names += [str(c.get("name") or "") for c in _items(item, "components")]
    return [n for n in names if n]


def _groups(data: Mapping[str, Any]) -> dict[str, str]:
    """The group each grouped component sits in, by component id."""
    groups = {}
    for item in _items(data, "components"):
        if item.get("type") == "ComponentGroup":
            for member in _items(item, "components"):
                groups[str(member.get("id"))] = str(item.get("name") or "")
    return groups


def _status(value: Any) -> str:
    text = str(value or "").lower()
    return COMPONENT_STATUS.get(text, text)


def _component(item: Mapping[str, Any], groups: Mapping[str, str]) -> dict[str, Any]:
    ident = str(item.get("id") or "")
    return {
        "id": ident,
        "name": str(item.get("name") or ""),
        "status": _status(item.get("status")),
        "group_name": groups.get(ident, ""),
    }


def _incident(item: Mapping[str, Any], groups: Mapping[str, str]) -> dict[str, Any]:
    timeline = _items(item, "timeline")
    statuses = [
        _status(c.get("status")) for entry in timeline for c in _items(entry, "componentsAffected")
    ]
    impact = next(
        (IMPACT_OF[s] for s in ("major_outage", "partial_outage", "degraded_performance")
         if s in statuses),
        "none",
    )  # fmt: skip
    resolved = bool(item.get("resolved")) or item.get("currentStatus") == "resolved"
    return {
        "id": str(item["id"]),
        "name": item.get("title") or "",
        "status": str(item.get("currentStatus") or ("resolved" if resolved else "investigating")),
        "impact": impact,
        "created_at": item.get("publishedDate"),
        "updated_at": item.get("lastModifiedAt"),
        "resolved_at": item.get("resolvedDate") if resolved else None,
        "incident_updates": [_update(entry) for entry in timeline if entry.get("id")],
        "components": [_component(c, groups) for c in _items(item, "componentsAffected")],
    }


def _update(entry: Mapping[str, Any]) -> dict[str, Any]:
    # startedAt is the time the page shows; createdAt can be when the history moved in.
    shown = entry.get("startedAt") or entry.get("createdAt")
    return {
        "id": str(entry["id"]),
        "status": str(entry.get("status") or "update"),
        "body": entry.get("description") or NO_TEXT,
        "created_at": shown,
        "display_at": shown,
        "affected_components": [
            {"name": str(c.get("name") or ""), "new_status": _status(c.get("status"))}
            for c in _items(entry, "componentsAffected")
        ],
    }
