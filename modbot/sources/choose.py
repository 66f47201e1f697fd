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
from dataclasses import replace
from typing import TYPE_CHECKING

from modbot.config import fields
from modbot.core import moves
from modbot.core.feed import decode
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedGone, FeedMalformed, FeedNotJSON, FeedUnrecognised
from modbot.ports import Fetched
from modbot.sources import betterstack, datadog
from modbot.sources.betterstack import BetterstackClient
from modbot.sources.datadog import DatadogClient
from modbot.sources.feeds import FeedClient
from modbot.sources.fetch import Fetcher, make_http_client
from modbot.sources.gcloud import INCIDENTS_PATH as GCLOUD_INCIDENTS
from modbot.sources.gcloud import GcloudClient
from modbot.sources.incidentio import IncidentioClient
from modbot.sources.statuspage import INCIDENTS_PATH, StatuspageClient, platform_of

if TYPE_CHECKING:
    import httpx

    from modbot.config.watches import Watch
    from modbot.ports import Source

__all__ = ["AutoSource", "make_http_client", "make_source"]

log = logging.getLogger(__name__)

FALLBACK_AFTER = 3  # HTML answers in a row before an Atlassian page is read from its feed
MAX_DETECT_GAP = 32  # polls between two looks at a page no platform answers for
KINDS = frozenset(fields.KINDS) - {"auto"}  # what a page can be read as
FEED_PATH = re.compile(r"(?i)(\.atom|\.rss|\.xml|/feed|/rss)$")
GOOGLE_CLOUD = "status.cloud.google.com"


def make_source(watch: Watch, http: httpx.AsyncClient | None, *, attempts: int = 3) -> Source:
    """The source for ``watch``: its kind's (``auto`` finds out from what the page
    serves), followed to another platform when the page moves."""
    assert http is not None
    return AutoSource(watch, http, attempts=attempts)


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


def looks_moved(error: FeedError) -> bool:
    """A failure a page that moved to another platform gives: HTML where JSON was (the
    new platform's page, or a redirect to it), a document it cannot read, or nothing
    there (404, 410). Timeouts, 5xx and rate limits are an outage, not a move."""
    return isinstance(error, FeedNotJSON | FeedMalformed | FeedGone)


class AutoSource:
    """A watch's source: the platform its kind names, or the one found from what the
    page serves (``auto``), followed when the page moves to another.

    * A move the page does not announce (the same address answering with another
      platform's ids or without its header) shows in ``Fetched.platform``: the next poll
      reads the page the new platform's way.
    * ``move_threshold`` failed polls in a row that look like a move (``looks_moved``)
      run detection again; when another platform answers for the page, the source
      switches to it and says so once, and that poll is read from it. Detection runs
      again after twice as many such failures, and so on, while none answers.
    * An Atlassian page whose JSON keeps answering a challenge page is read from its
      ``history.atom`` (same ids, same platform) until the JSON answers again.
    """

    def __init__(self, watch: Watch, http: httpx.AsyncClient, *, attempts: int = 3) -> None:
        self.watch = watch
        self.http = http
        self.attempts = attempts
        self.kind = watch.kind
        self.move_threshold = watch.move_threshold
        self.url = watch.url
        self.home = watch.url.rstrip("/")
        self.inner: Source | None = None
        self.fallback: FeedClient | None = None
        self._html_answers = 0
        self._falling_back = False
        self._strange = 0  # failed polls in a row that look like a move
        self._next_look = self.move_threshold
        self._skip, self._gap, self._unrecognised = 0, 1, ""  # ``auto`` on an unknown page
        if watch.kind != "auto":
            self._use(source_for(watch.kind, watch, http, attempts))

    @property
    def chosen(self) -> str | None:
        """The kind read now (``None`` before the first good answer of ``auto``)."""
        return getattr(self.inner, "kind", None)

    def resume(self, platform: str) -> None:
        """Read the page the way of the platform that served it last (the store
        remembers it across restarts), when that is not the way it would start."""
        if platform not in KINDS or platform == self.chosen:
            return
        log.info(
            "%s: %s was last served by %s; reading it that way",
            self.watch.name,
            self.watch.url,
            moves.platform_name(platform),
        )
        self._use(source_for(platform, self.watch, self.http, self.attempts))

    async def _detect(self) -> str:
        """The page's kind. A page that answers as no platform modbot reads is asked
        again after 1, 2, 4 ... polls (at most ``MAX_DETECT_GAP``), not every poll; a
        page that cannot be reached is tried every poll, as ever."""
        if self._skip:
            self._skip -= 1
            raise FeedUnrecognised(f"{self._unrecognised}; looking again in a few polls")
        try:
            return await detect(self.watch.url, self.http)
        except FeedUnrecognised as exc:
            self._unrecognised = str(exc)
            self._skip, self._gap = self._gap, min(self._gap * 2, MAX_DETECT_GAP)
            raise

    def _use(self, inner: Source) -> None:
        self.inner = inner
        self.url = inner.url
        self.home = inner.home  # a feed's: the site its URL is on
        self.fallback = None
        if inner.kind == "statuspage":
            self.fallback = FeedClient(self.home + "/history.atom", self.http, home=self.home)
        self._html_answers = 0
        self._falling_back = False

    async def fetch(self, since: Validators) -> Fetched:
        """Detect the vendor (once), then read through its source; follow a move."""
        if self.inner is None:
            kind = await self._detect()
            log.info("%s: %s is a%s page", self.watch.name, self.watch.url, _article(kind))
            self._use(source_for(kind, self.watch, self.http, self.attempts))
        inner = self.inner
        assert inner is not None
        try:
            fetched = await self._read(inner, since)
        except FeedError as exc:
            moved = await self._failed(exc)
            if moved is None:
                raise
            return moved
        self._strange, self._next_look = 0, self.move_threshold
        self._follow(fetched.platform)
        return fetched

    async def _read(self, inner: Source, since: Validators) -> Fetched:
        if self.fallback is None:
            fetched = await inner.fetch(since)
        else:
            fetched = await self._with_fallback(inner, self.fallback, since)
        if fetched.feed is not None and fetched.platform is None and inner.kind != "statuspage":
            fetched = replace(fetched, platform=inner.kind)
        return fetched

    def _follow(self, platform: str | None) -> None:
        """A page that answers as another platform does now (a move it did not
        announce) is read that platform's way from the next poll on."""
        if platform is None or platform == self.chosen or platform not in KINDS:
            return
        log.info(
            "%s: %s is served by %s now, not %s; reading it that way",
            self.watch.name,
            self.watch.url,
            moves.platform_name(platform),
            moves.platform_name(self.chosen or "?"),
        )
        self._use(source_for(platform, self.watch, self.http, self.attempts))

    async def _failed(self, error: FeedError) -> Fetched | None:
        """Count a failure that looks like a move; at the threshold (then at twice as
        many, ...), look for another platform answering for the page. The first poll
        of the platform found, or None."""
        if not looks_moved(error):
            return None
        self._strange += 1
        if self._strange < self._next_look:
            return None
        self._next_look *= 2
        found = await self._another_platform()
        if found is None:
            log.warning(
                "%s: %d polls in a row failed as if %s had moved (%s), but no other "
                "platform answers for it; trying again",
                self.watch.name,
                self._strange,
                self.watch.url,
                error,
            )
            return None
        before = self.chosen
        source, fetched = found
        log.info(
            "%s: %s answers as %s now, not %s; reading it that way",
            self.watch.name,
            self.watch.url,
            moves.platform_name(source.kind),
            moves.platform_name(before or "?"),
        )
        self._use(source)
        self._strange, self._next_look = 0, self.move_threshold
        if fetched.platform is None:
            fetched = replace(fetched, platform=source.kind)
        return fetched

    async def _another_platform(self) -> tuple[Source, Fetched] | None:
        """A source of another platform that reads the page now, with its first answer."""
        try:
            kind = await detect(self.watch.url, self.http)
        except FeedError:
            log.debug("%s: detection failed", self.watch.name, exc_info=True)
            return None
        if kind == self.chosen:
            return None
        source = source_for(kind, self.watch, self.http, self.attempts)
        try:
            fetched = await source.fetch(Validators())
        except FeedError:
            log.debug("%s: %s does not answer as %s", self.watch.name, self.watch.url, kind)
            return None
        if fetched.feed is None:
            return None
        return source, fetched

    async def _with_fallback(
        self, json_source: Source, feed: FeedClient, since: Validators
    ) -> Fetched:
        """An Atlassian page: its JSON, or its ``history.atom`` while the JSON answers a
        challenge page (after a few in a row); back to the JSON once it answers. The
        feed names the incidents by the JSON's ids: the same platform, read another way."""
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
            read = await feed.fetch(since)
            return replace(read, platform="statuspage" if read.feed is not None else None)
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
    raise FeedUnrecognised(
        f"{url}: cannot tell what kind of status page this is (HTTP {page.status})"
    )


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
    try:
        ids = [str(i.get("id", "")) for i in json.loads(body).get("incidents", [])]
    except (ValueError, AttributeError, TypeError, RecursionError):
        ids = []
    return platform_of(headers, ids) or "statuspage"
