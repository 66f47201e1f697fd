"""Atlassian Statuspage: ``/api/v2/incidents.json``, read through the shared fetcher.

Each poll is a conditional GET: when the server sent an ``ETag`` or ``Last-Modified``,
the next request carries ``If-None-Match``/``If-Modified-Since`` and an unchanged feed
costs a 304 and no parsing; a server that sends neither costs a hash of the body and
no parsing. The client keeps no validators of its own: the poller passes in the ones
saved with its state and saves the new ones only together with the state they
describe, so a failed save can never make a later 304 hide a change.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from modbot.errors import FeedMalformed, FeedNotJSON, FeedUnavailable
from modbot.feed import IncidentsFeed, parse_incidents
from modbot.httpfetch import Fetcher, Page
from modbot.ports import Fetched
from modbot.records import Validators

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

INCIDENTS_PATH = "/api/v2/incidents.json"
# Statuspage ids are 12 lower-case letters and digits; incident.io's compatible API
# uses 26-character ULIDs. An id is part of the comment's marker and its link, so
# anything else is refused rather than escaped.
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def statuspage_io_hint(base_url: str) -> str:
    """The advice to try the page's ``<name>.statuspage.io`` origin instead."""
    host = urlsplit(base_url).hostname or ""
    if host.endswith(".statuspage.io"):
        return "check that MODBOT_STATUSPAGE_URL is the right page"
    return (
        "if this persists, set MODBOT_STATUSPAGE_URL to the page's "
        "https://<name>.statuspage.io origin (for status.claude.com: https://anthropic.statuspage.io)"
    )


class StatuspageClient:
    """Polls one status page (the ``Source`` port for Atlassian Statuspage)."""

    kind = "statuspage"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.home = self.base_url
        self.url = self.base_url + INCIDENTS_PATH
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._refused: set[str] = set()

    async def fetch(self, since: Validators) -> Fetched:
        """Fetch the incidents; raise a ``FeedError`` subclass when they cannot be used."""
        page = await self._fetcher.get(self.url, etag=since.etag, last_modified=since.last_modified)
        return self.read(page, since)

    def read(self, page: Page, since: Validators) -> Fetched:
        """What one answer of the incidents endpoint says."""
        size = len(page.body)
        if page.status == 304:
            return Fetched(feed=None, validators=since, status=304, received_bytes=size)
        if page.status != 200:
            raise FeedUnavailable(f"{self.url}: unexpected HTTP {page.status}")
        if page.looks_like_html():
            raise FeedNotJSON(
                f"{self.url} answered an HTML page (HTTP 200, likely an error or bot-challenge "
                f"page) instead of JSON; {statuspage_io_hint(self.base_url)}"
            )
        validators = Validators(
            etag=page.headers.get("etag"),
            last_modified=page.headers.get("last-modified"),
            digest=page.digest,
        )
        if since.digest is not None and validators.digest == since.digest:
            return Fetched(feed=None, validators=validators, status=200, received_bytes=size)
        try:
            feed = parse_incidents(page.body)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from None
        return Fetched(
            feed=self.valid(feed), validators=validators, status=200, received_bytes=size
        )

    def valid(self, feed: IncidentsFeed) -> IncidentsFeed:
        """The feed without incidents whose id is not a Statuspage id (warned once each)."""
        kept = [i for i in feed.incidents if INCIDENT_ID.fullmatch(i.id)]
        if len(kept) == len(feed.incidents):
            return feed
        for incident in feed.incidents:
            if not INCIDENT_ID.fullmatch(incident.id) and incident.id not in self._refused:
                self._refused.add(incident.id)
                log.warning(
                    "%s: skipping an incident whose id %r is not a Statuspage id",
                    self.url,
                    incident.id[:80],
                )
        return feed.model_copy(update={"incidents": kept})
