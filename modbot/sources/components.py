"""The component names a page lists, for ``modbot check --connect``: what a watch's
``components`` can match there. A misspelt filter would otherwise post nothing, forever.

Each vendor lists them somewhere else: Statuspage in ``/api/v2/components.json``,
incident.io in the page's own summary (groups and components), Datadog in
``config.json``, Better Stack in ``index.json``. Google Cloud and feeds list no
components of their own, only those of the incidents they carry, so for them the list is
what those incidents name (``complete`` False).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modbot.core.feed import decode
from modbot.core.incidents import name_matches
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedMalformed
from modbot.sources import betterstack, datadog, gcloud, incidentio
from modbot.sources.choose import detect, source_for
from modbot.sources.fetch import Fetcher

if TYPE_CHECKING:
    import httpx

    from modbot.config.watches import Watch


@dataclass(frozen=True)
class Listed:
    """The names a page lists, and whether that is all it has."""

    names: tuple[str, ...]
    complete: bool

    def unmatched(self, wanted: tuple[str, ...]) -> list[str]:
        """The filter names that match none of the listed names."""
        return [w for w in wanted if not any(name_matches(n, {w.casefold()}) for n in self.names)]


async def listed_components(watch: Watch, http: httpx.AsyncClient) -> Listed | None:
    """The names the watch's page lists (``None``: the page does not say)."""
    kind = watch.kind if watch.kind != "auto" else await detect(watch.url, http)
    home = watch.url.rstrip("/")
    fetcher = Fetcher(http, attempts=1)
    if kind == "atom":
        fetched = await source_for(kind, watch, http, 1).fetch(Validators())
        feed = fetched.feed
        seen = {c.name for i in feed.incidents for c in i.components} if feed else set()
        return Listed(tuple(sorted(n for n in seen if n)), complete=False)
    paths = {
        "gcloud": gcloud.INCIDENTS_PATH,
        "statuspage": "/api/v2/components.json",
        "incidentio": f"/proxy/{urlsplit(home).hostname}",
        "datadog": datadog.CONFIG_PATH,
        "betterstack": betterstack.INDEX_PATH,
    }
    page = await fetcher.get(home + paths[kind])
    if page.status != 200 or page.looks_like_html():
        raise FeedError(f"{home + paths[kind]}: HTTP {page.status}, no list of components")
    try:
        data = decode(page.body)
    except FeedMalformed:
        return None
    names = _names(kind, data, page.body)
    return Listed(tuple(names), complete=kind != "gcloud") if names is not None else None


def _names(kind: str, data: Any, body: bytes) -> list[str] | None:
    if kind == "gcloud":
        return gcloud.product_names(data)
    if kind == "incidentio":
        return incidentio.page_components(body)
    if kind == "datadog":
        return datadog.page_components(data) if isinstance(data, Mapping) else None
    if kind == "betterstack":
        return betterstack.page_components(data)
    components = data.get("components") if isinstance(data, Mapping) else None
    if not isinstance(components, list):
        return None
    return [str(c.get("name")) for c in components if isinstance(c, Mapping) and c.get("name")]
