"""Google Cloud's status page (Gemini API and Vertex AI incidents).

``https://status.cloud.google.com/incidents.json`` lists every Google Cloud incident,
all products. A watch keeps those whose ``affected_products`` match its ``components``
(product titles): products get renamed, so a match on the old ``title`` and on the new
``current_title`` both count. The page sends Last-Modified but ignores
``If-Modified-Since``, so every poll is a full download, and an unchanged one is known by
the hash of the body, without parsing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from modbot.core.feed import IncidentsFeed, ParseCache, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import FeedMalformed
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, decoded

if TYPE_CHECKING:
    import httpx

INCIDENTS_PATH = "/incidents.json"
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
SEVERITY = {"low": "minor", "medium": "major", "high": "critical"}
UPDATE_STATUS = {
    "AVAILABLE": "resolved",
    "SERVICE_INFORMATION": "update",
    "SERVICE_DISRUPTION": "investigating",
    "SERVICE_OUTAGE": "investigating",
}


class GcloudClient:
    """Polls Google Cloud's incidents for some products (the ``Source`` port)."""

    kind = "gcloud"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        products: Collection[str],
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.home = base_url.rstrip("/")
        self.url = self.home + INCIDENTS_PATH
        self.products = {p.strip().casefold() for p in products}
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._parsed = ParseCache()  # what its last document parsed into

    async def fetch(self, since: Validators) -> Fetched:
        """The incidents of the watched products; "unchanged" by the body's hash."""
        page = await self._fetcher.json_page(self.url)
        validators = Validators(digest=page.digest)
        if since.digest == validators.digest:
            return Fetched(feed=None, validators=since, received_bytes=len(page.body))
        data = decoded(self.url, page.body)
        if not isinstance(data, list):
            raise FeedMalformed(f"{self.url}: not a list of incidents")
        return Fetched(
            feed=self.snapshot(data), validators=validators, received_bytes=len(page.body)
        )

    def snapshot(self, data: list[Any]) -> IncidentsFeed:
        """The watched products' incidents, in the snapshot every source produces."""
        incidents = [
            _incident(item, self.products)
            for item in data
            if isinstance(item, Mapping) and self._watched(item)
        ]
        page = {"name": "Google Cloud Service Health", "url": self.home}
        try:
            return parse_incidents_object({"page": page, "incidents": incidents}, self._parsed)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc

    def _watched(self, item: Mapping[str, Any]) -> bool:
        if not INCIDENT_ID.fullmatch(str(item.get("id", ""))):
            return False
        return any(_names(p) & self.products for p in _products(item))


def product_names(data: Any) -> list[str] | None:
    """Every product title (old and new) of the listed incidents, for ``check --connect``."""
    if not isinstance(data, list):
        return None
    names = {
        str(p.get(key) or "").strip()
        for item in data
        if isinstance(item, Mapping)
        for p in _products(item)
        for key in ("title", "current_title")
    }
    return sorted(n for n in names if n)


def _products(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = item.get("affected_products")
    return [p for p in value if isinstance(p, Mapping)] if isinstance(value, list) else []


def _names(product: Mapping[str, Any]) -> set[str]:
    """A product's names, old and new (products get renamed)."""
    return {str(product.get(k) or "").strip().casefold() for k in ("title", "current_title")} - {""}


def _incident(item: Mapping[str, Any], products: set[str]) -> dict[str, Any]:
    ident = str(item["id"])
    ended = item.get("end")
    listed = item.get("updates")
    updates = [u for u in listed if isinstance(u, Mapping)] if isinstance(listed, list) else []
    return {
        "id": ident,
        "name": item.get("external_desc") or "",
        "status": "resolved" if ended else "investigating",
        "impact": SEVERITY.get(str(item.get("severity") or ""), str(item.get("severity") or "")),
        "created_at": item.get("begin") or item.get("created"),
        "updated_at": item.get("modified"),
        "resolved_at": ended,
        "incident_updates": [_update(ident, u) for u in updates],
        "components": [
            {
                "id": str(p.get("id") or ""),
                "name": _watched_name(p, products),
                "status": "operational" if ended else "partial_outage",
            }
            for p in _products(item)
            if _names(p) & products
        ],
    }


def _watched_name(product: Mapping[str, Any], products: set[str]) -> str:
    """The product's name as the watch knows it (old or new), as the page writes it."""
    for key in ("current_title", "title"):
        name = str(product.get(key) or "").strip()
        if name.casefold() in products:
            return name
    return str(product.get("current_title") or product.get("title") or "")


def _update(ident: str, update: Mapping[str, Any]) -> dict[str, Any]:
    created = str(update.get("created") or update.get("when") or "")
    return {
        # Updates have no ids: their creation time names them (edits keep it).
        "id": ident + re.sub(r"\D", "", created),
        "status": UPDATE_STATUS.get(str(update.get("status") or ""), "update"),
        "body": update.get("text") or "",
        "created_at": created or None,
        "updated_at": update.get("modified"),
        "display_at": update.get("when") or created or None,
    }
