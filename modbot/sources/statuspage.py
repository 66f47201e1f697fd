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
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from modbot.core.feed import (
    Incident,
    IncidentsFeed,
    ParseCache,
    decode,
    parse_incidents,
    parse_incidents_object,
)
from modbot.core.records import Validators
from modbot.errors import FeedError, FeedMalformed, FeedNotJSON
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, Page, unexpected

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

INCIDENTS_PATH = "/api/v2/incidents.json"
MAINTENANCES_PATH = "/api/v2/scheduled-maintenances.json"
# Statuspage ids are 12 lower-case letters and digits; incident.io's compatible API
# uses 26-character ULIDs. An id is part of the comment's marker and its link, so
# anything else is refused rather than escaped.
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
VERSION_HEADER = "x-statuspage-version"


def platform_of(headers: Mapping[str, str], ids: Collection[str]) -> str | None:
    """Which platform serves a Statuspage-shaped list: Atlassian says its version in a
    header (not every proxy keeps it), and its ids are not ULIDs; incident.io's
    compatible layer sends no such header and gives ULIDs. None when neither tells
    (no header, no incidents)."""
    if VERSION_HEADER in headers:
        return "statuspage"
    if not ids:
        return None
    return "incidentio" if all(ULID.fullmatch(i) for i in ids) else "statuspage"


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
        maintenance: bool = False,
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.home = self.base_url
        self.url = self.base_url + INCIDENTS_PATH
        self.maintenances_url = self.base_url + MAINTENANCES_PATH
        self.maintenance = maintenance
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._parsed = ParseCache()  # what its last document parsed into
        self._maintenances_parsed = ParseCache()
        self._refused: set[str] = set()
        self._maintenances_missing = False

    async def fetch(self, since: Validators) -> Fetched:
        """Fetch the incidents; raise a ``FeedError`` subclass when they cannot be used."""
        if self.maintenance:
            return await self._fetch_with_maintenances(since)
        page = await self._fetcher.get(self.url, etag=since.etag, last_modified=since.last_modified)
        return self.read(page, since)

    async def _fetch_with_maintenances(self, since: Validators) -> Fetched:
        """Incidents (conditional GET) and maintenances (small; hashed), as one snapshot.

        The saved digest is both hashes joined, so either document changing is a change,
        and an unchanged pair still costs no parsing.
        """
        known_incidents, _, known_maintenances = (since.digest or "").partition("+")
        page = await self._fetcher.get(self.url, etag=since.etag, last_modified=since.last_modified)
        extra = await self._maintenances()
        extra_digest = extra.digest if extra is not None else "none"
        if extra_digest == known_maintenances:
            if page.status == 304:
                return Fetched(feed=None, validators=since, status=304)
            if page.status == 200 and page.digest == known_incidents:
                return Fetched(feed=None, validators=self._validators(page, extra_digest))
        if page.status == 304:  # only the maintenances changed: the incidents are needed too
            page = await self._fetcher.get(self.url)
        incidents = self.read(page, Validators())
        assert incidents.feed is not None  # read without a digest always parses
        validators = self._validators(page, extra_digest)
        size = incidents.received_bytes + (len(extra.body) if extra is not None else 0)
        feed = incidents.feed
        if extra is not None:
            feed = feed.model_copy(update={"incidents": feed.incidents + self._parse(extra)})
        return replace(incidents, feed=feed, validators=validators, received_bytes=size)

    @staticmethod
    def _validators(page: Page, extra_digest: str) -> Validators:
        return Validators(
            etag=page.etag,
            last_modified=page.last_modified,
            digest=f"{page.digest}+{extra_digest}",
        )

    async def _maintenances(self) -> Page | None:
        """The maintenances document, or None (said once) when it cannot be read."""
        try:
            page = await self._fetcher.get(self.maintenances_url)
        except FeedError as exc:
            self._no_maintenances(str(exc))
            return None
        if page.status != 200 or page.looks_like_html():
            self._no_maintenances(f"HTTP {page.status}")
            return None
        if self._maintenances_missing:
            log.info("%s: answers again", self.maintenances_url)
        self._maintenances_missing = False
        return page

    def _no_maintenances(self, reason: str) -> None:
        if not self._maintenances_missing:
            log.warning(
                "%s: cannot read scheduled maintenances (%s); incidents go on as usual",
                self.maintenances_url,
                reason,
            )
        self._maintenances_missing = True

    def _parse(self, page: Page) -> list[Incident]:
        """The maintenances, marked as such; an unreadable document is said once, not fatal."""
        try:
            data = decode(page.body)
            items = data.get("scheduled_maintenances") if isinstance(data, dict) else None
            feed = parse_incidents_object(
                {"incidents": items if isinstance(items, list) else []},
                self._maintenances_parsed,
            )
        except FeedMalformed as exc:
            self._no_maintenances(f"not a maintenances document: {exc}"[:200])
            return []
        marked = [i.model_copy(update={"maintenance": True}) for i in feed.incidents]
        return self.valid(feed.model_copy(update={"incidents": marked})).incidents

    def read(self, page: Page, since: Validators) -> Fetched:
        """What one answer of the incidents endpoint says."""
        size = len(page.body)
        if page.status == 304:
            return Fetched(feed=None, validators=since, status=304, received_bytes=size)
        if page.status != 200:
            raise unexpected(self.url, page)
        if page.looks_like_html():
            raise FeedNotJSON(
                f"{self.url} answered an HTML page (HTTP 200, likely an error or bot-challenge "
                f"page) instead of JSON; {statuspage_io_hint(self.base_url)}"
            )
        validators = Validators(
            etag=page.etag,
            last_modified=page.last_modified,
            digest=page.digest,
        )
        if since.digest is not None and validators.digest == since.digest:
            return Fetched(feed=None, validators=validators, status=200, received_bytes=size)
        try:
            feed = parse_incidents(page.body, self._parsed)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc
        kept = self.valid(feed)
        return Fetched(
            feed=kept,
            validators=validators,
            status=200,
            received_bytes=size,
            platform=platform_of(page.headers, [i.id for i in kept.incidents]),
        )

    def valid(self, feed: IncidentsFeed) -> IncidentsFeed:
        """The feed without incidents whose id is not a Statuspage id (warned once each,
        as are the entries the parser skipped for want of an id)."""
        for reason in feed.skipped:
            self._refuse(reason, f"skipping {reason}")
        kept = [i for i in feed.incidents if INCIDENT_ID.fullmatch(i.id)]
        if len(kept) == len(feed.incidents):
            return feed
        for incident in feed.incidents:
            if not INCIDENT_ID.fullmatch(incident.id):
                self._refuse(
                    incident.id,
                    f"skipping an incident whose id {incident.id[:80]!r} is not a Statuspage id",
                )
        return feed.model_copy(update={"incidents": kept})

    def _refuse(self, key: str, message: str) -> None:
        if key not in self._refused:
            self._refused.add(key)
            log.warning("%s: %s", self.url, message)
