"""Reading a Statuspage's public JSON API over HTTP (the only module that uses httpx).

One ``httpx.AsyncClient`` per process is passed in. Each poll is a conditional GET of
``/api/v2/incidents.json``: when the server sent an ``ETag`` or ``Last-Modified``, the
next request carries ``If-None-Match``/``If-Modified-Since`` and an unchanged feed
costs a 304 and no parsing; a server that sends neither costs a hash of the body and
no parsing. The client keeps no validators of its own: the poller passes in the ones
saved with its state and saves the new ones only together with the state they
describe, so a failed save can never make a later 304 hide a change.

Transport errors and 5xx are retried a few times with jittered exponential backoff
(tenacity); nothing else is, because a 4xx, an HTML challenge page or malformed JSON
will not fix itself within seconds.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from modbot import __version__
from modbot.errors import FeedMalformed, FeedNotJSON, FeedRateLimited, FeedUnavailable
from modbot.feed import IncidentsFeed, parse_incidents
from modbot.ports import Fetched
from modbot.records import Validators

log = logging.getLogger(__name__)

INCIDENTS_PATH = "/api/v2/incidents.json"
# Statuspage ids are 12 lower-case letters and digits; incident.io's compatible API
# uses 26-character ULIDs. An id is part of the comment's marker and its link, so
# anything else is refused rather than escaped.
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
USER_AGENT = f"modbot/{__version__} (+status page watcher)"


class _RetryableError(Exception):
    """A transport error or 5xx worth another try."""


def make_http_client(timeout: float) -> httpx.AsyncClient:
    """The process's one HTTP client for status pages: timeouts, redirects, a UA."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


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
        self._http = http
        self._attempts = attempts
        self._max_backoff = max_backoff
        self._refused: set[str] = set()

    async def fetch(self, since: Validators) -> Fetched:
        """Fetch the incidents; raise a ``FeedError`` subclass when they cannot be used."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableError),
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.5, max=self._max_backoff),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._get(since)
        except _RetryableError as exc:
            raise FeedUnavailable(f"{self.url}: {exc} (after {self._attempts} tries)") from None
        return self._read(response, since)

    async def _get(self, since: Validators) -> httpx.Response:
        headers = {}
        if since.etag:
            headers["If-None-Match"] = since.etag
        if since.last_modified:
            headers["If-Modified-Since"] = since.last_modified
        try:
            response = await self._http.get(self.url, headers=headers)
        except httpx.TimeoutException:
            raise _RetryableError("timed out") from None
        except httpx.TransportError as exc:
            raise _RetryableError(_describe_transport(exc)) from None
        if response.status_code >= 500:
            kind = " (an HTML error page)" if _looks_like_html(response) else ""
            raise _RetryableError(f"server error {response.status_code}{kind}")
        return response

    def _read(self, response: httpx.Response, since: Validators) -> Fetched:
        size = len(response.content)
        if response.status_code == 304:
            return Fetched(feed=None, validators=since, status=304, received_bytes=size)
        if response.status_code == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise FeedRateLimited(f"{self.url}: rate limited (429)", retry_after)
        if response.status_code != 200:
            raise FeedUnavailable(f"{self.url}: unexpected HTTP {response.status_code}")
        if _looks_like_html(response):
            raise FeedNotJSON(
                f"{self.url} answered an HTML page (HTTP 200, likely an error or bot-challenge "
                f"page) instead of JSON; {statuspage_io_hint(self.base_url)}"
            )
        validators = Validators(
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            digest=hashlib.sha256(response.content).hexdigest(),
        )
        if since.digest is not None and validators.digest == since.digest:
            return Fetched(feed=None, validators=validators, status=200, received_bytes=size)
        try:
            feed = parse_incidents(response.content)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from None
        return Fetched(
            feed=self._valid(feed), validators=validators, status=200, received_bytes=size
        )

    def _valid(self, feed: IncidentsFeed) -> IncidentsFeed:
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


def _looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type:
        return True
    return response.content[:64].lstrip().lower().startswith((b"<!doctype", b"<html", b"<"))


def _describe_transport(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return f"cannot connect ({text})"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)
