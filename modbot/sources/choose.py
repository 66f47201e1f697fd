"""Which status source reads a watch: one module per vendor, chosen by the watch's kind.

Every source turns what its vendor serves into the same snapshot (``IncidentsFeed``),
so everything downstream (diffing, rendering, delivery, filters) is shared. ``auto``
finds out from what the page serves, says which kind it chose, and for an Atlassian
page falls back to its ``history.atom`` while the JSON answers a bot-challenge page.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from modbot.core.feed import decode
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedMalformed, FeedNotJSON
from modbot.ports import Fetched
from modbot.sources import betterstack, datadog
from modbot.sources.betterstack import BetterstackClient
from modbot.sources.datadog import DatadogClient
from modbot.sources.feeds import FeedClient
from modbot.sources.fetch import Fetcher, make_http_client
from modbot.sources.gcloud import INCIDENTS_PATH as GCLOUD_INCIDENTS
from modbot.sources.gcloud import GcloudClient
from modbot.sources.incidentio import IncidentioClient
from modbot.sources.statuspage import INCIDENTS_PATH, StatuspageClient

if TYPE_CHECKING:
    import httpx

    from modbot.config.watches import Watch
    from modbot.ports import Source

__all__ = ["AutoSource", "make_http_client", "make_source"]

log = logging.getLogger(__name__)

FALLBACK_AFTER = 3  # HTML answers in a row before an Atlassian page is read from its feed
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
FEED_PATH = re.compile(r"(?i)(\.atom|\.rss|\.xml|/feed|/rss)$")
GOOGLE_CLOUD = "status.cloud.google.com"


def make_source(watch: Watch, http: httpx.AsyncClient | None, *, attempts: int = 3) -> Source:
    """The source for ``watch``'s kind (``auto`` finds out from what the page serves)."""
    assert http is not None
    if watch.kind == "auto":
        return AutoSource(watch, http, attempts=attempts)
    return source_for(watch.kind, watch, http, attempts)


def source_for(kind: str, watch: Watch, http: httpx.AsyncClient, attempts: int) -> Source:
    if kind == "incidentio":
        return IncidentioClient(
            watch.url,
            http,
            summary=bool(watch.components),
            maintenance=watch.maintenance,
            attempts=attempts,
        )
    if kind == "gcloud":
        return GcloudClient(watch.url, http, products=watch.components, attempts=attempts)
    if kind == "atom":
        return FeedClient(watch.url, http, attempts=attempts)
    if kind == "betterstack":
        return BetterstackClient(watch.url, http, components=watch.components, attempts=attempts)
    if kind == "datadog":
        return DatadogClient(watch.url, http, attempts=attempts)
    return StatuspageClient(watch.url, http, maintenance=watch.maintenance, attempts=attempts)


class AutoSource:
    """A source that finds out its vendor on the first good answer."""

    kind = "auto"

    def __init__(self, watch: Watch, http: httpx.AsyncClient, *, attempts: int = 3) -> None:
        self.watch = watch
        self.http = http
        self.attempts = attempts
        self.url = watch.url
        self.home = watch.url.rstrip("/")
        self.inner: Source | None = None
        self.fallback: FeedClient | None = None
        self._html_answers = 0
        self._falling_back = False

    @property
    def chosen(self) -> str | None:
        """The kind found (``None`` before the first good answer)."""
        return getattr(self.inner, "kind", None)

    async def fetch(self, since: Validators) -> Fetched:
        """Detect the vendor (once), then read through its source."""
        if self.inner is None:
            kind = await detect(self.watch.url, self.http)
            log.info("%s: %s is a%s page", self.watch.name, self.watch.url, _article(kind))
            self.inner = source_for(kind, self.watch, self.http, self.attempts)
            self.url = self.inner.url
            self.home = self.inner.home  # a feed's: the site its URL is on
            if kind == "statuspage":
                self.fallback = FeedClient(self.home + "/history.atom", self.http, home=self.home)
        if self.fallback is None:
            return await self.inner.fetch(since)
        return await self._with_fallback(self.inner, self.fallback, since)

    async def _with_fallback(
        self, json_source: Source, feed: FeedClient, since: Validators
    ) -> Fetched:
        """An Atlassian page: its JSON, or its ``history.atom`` while the JSON answers a
        challenge page (after a few in a row); back to the JSON once it answers."""
        try:
            fetched = await json_source.fetch(since)
        except FeedNotJSON:
            self._html_answers += 1
            if self._html_answers < FALLBACK_AFTER:
                raise
            if not self._falling_back:
                log.warning(
                    "%s: the JSON of %s answers a challenge page; reading %s instead until "
                    "it answers again",
                    self.watch.name,
                    self.home,
                    feed.url,
                )
                self._falling_back = True
            return await feed.fetch(since)
        self._html_answers = 0
        if self._falling_back:
            log.info("%s: the JSON answers again; reading it, not the feed", self.watch.name)
            self._falling_back = False
        return fetched


def _article(kind: str) -> str:
    names = {
        "statuspage": "n Atlassian Statuspage",
        "incidentio": "n incident.io",
        "gcloud": " Google Cloud status",
        "atom": "n Atom or RSS feed's",
        "betterstack": " Better Stack",
        "datadog": " Datadog status",
    }
    return names.get(kind, f" {kind}")


async def detect(url: str, http: httpx.AsyncClient) -> str:
    """The kind of page at ``url``, from what it serves: Google Cloud's host; a feed's
    address or content type; a Statuspage header or its 12-character ids; ULIDs. Where
    ``/api/v2/incidents.json`` is not JSON (a script shell, a 404), the documents other
    platforms serve instead: Datadog's ``config.json``, Better Stack's ``index.json``,
    Google Cloud's ``incidents.json``."""
    base = url.rstrip("/")
    by_address = _kind_of_address(base)
    if by_address is not None:
        return by_address
    fetcher = Fetcher(http)
    page = await fetcher.get(base + INCIDENTS_PATH)
    if "xml" in page.content_type or page.body.lstrip()[:5] == b"<?xml":
        return "atom"
    if page.status == 200 and not page.looks_like_html():
        return _kind_of_json(page.headers, page.body)
    for path, kind, recognised in PROBES:
        answer = await fetcher.get(base + path)
        if answer.status == 200 and not answer.looks_like_html() and recognised(answer.body):
            return kind
    if page.status == 200:
        return "statuspage"  # a challenge page in front of the JSON: Atlassian, probably
    raise FeedError(f"{url}: cannot tell what kind of status page this is (HTTP {page.status})")


def _json(body: bytes) -> object:
    try:
        return decode(body)
    except FeedMalformed:
        return None


def _gcloud_list(body: bytes) -> bool:
    data = _json(body)
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(i, Mapping) and "affected_products" in i for i in data)
    )


PROBES: tuple[tuple[str, str, Callable[[bytes], bool]], ...] = (
    (datadog.CONFIG_PATH, "datadog", lambda body: datadog.looks_like_config(_json(body))),
    (betterstack.INDEX_PATH, "betterstack", lambda body: betterstack.looks_like_index(_json(body))),
    (GCLOUD_INCIDENTS, "gcloud", _gcloud_list),
)


def _kind_of_address(base: str) -> str | None:
    if GOOGLE_CLOUD in base:
        return "gcloud"
    return "atom" if FEED_PATH.search(base) else None


def _kind_of_json(headers: Mapping[str, str], body: bytes) -> str:
    if "x-statuspage-version" in headers:
        return "statuspage"
    try:
        ids = [str(i.get("id", "")) for i in json.loads(body).get("incidents", [])]
    except (ValueError, AttributeError, TypeError, RecursionError):
        ids = []
    return "incidentio" if ids and all(ULID.fullmatch(i) for i in ids) else "statuspage"
