"""Fetching status pages over HTTP: the only module that uses httpx.

One ``httpx.AsyncClient`` per process (``make_http_client``) serves every watch. A
``Fetcher`` makes one GET with the validators it is given, retries transport errors
and 5xx a few times with jittered exponential backoff (tenacity), and answers 429 with
``FeedRateLimited``; nothing else is retried, because a 4xx, an HTML challenge page or
a malformed body will not fix itself within seconds. Every source module reads pages
through it, so timeouts, redirects and retries are the same for every vendor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from modbot import __version__
from modbot.core import moments
from modbot.errors import FeedError, FeedGone, FeedRateLimited, FeedUnavailable

USER_AGENT = f"modbot/{__version__} (+status page watcher)"
# A page asking for a longer wait is not taken at its word: one header must not stall a
# watch for years.
MAX_RETRY_AFTER = 3600.0


class _RetryableError(Exception):
    """A transport error or 5xx worth another try."""


@dataclass(frozen=True)
class Page:
    """One HTTP answer, as much of it as the sources need."""

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-case names

    @property
    def digest(self) -> str:
        """The body's hash: "unchanged" for servers that send no validators."""
        return hashlib.sha256(self.body).hexdigest()

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def looks_like_html(self) -> bool:
        """True for an HTML page (an error or bot-challenge page, where data was asked)."""
        if "html" in self.content_type:
            return True
        return self.is_html_document()

    def is_html_document(self) -> bool:
        """True when the body itself is an HTML page, whatever its content type says (some
        servers send feeds as ``text/html``)."""
        return self.body[:64].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def make_http_client(timeout: float) -> httpx.AsyncClient:
    """The process's one HTTP client for status pages: timeouts, redirects, a UA."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


class Fetcher:
    """GETs with retries, over the process's HTTP client."""

    def __init__(self, http: httpx.AsyncClient, *, attempts: int = 3, max_backoff: float = 4.0):
        self.http = http
        self.attempts = attempts
        self.max_backoff = max_backoff

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "application/json",
    ) -> Page:
        """The answer to one GET (2xx, 304 or 4xx other than 429); raises
        ``FeedUnavailable`` after the retries, ``FeedRateLimited`` on 429."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.5, max=self.max_backoff),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    page = await self._get(url, headers)
        except _RetryableError as exc:
            raise FeedUnavailable(f"{url}: {exc} (after {self.attempts} tries)") from exc
        if page.status == 429:
            raise FeedRateLimited(
                f"{url}: rate limited (429)", retry_after(page.headers.get("retry-after"))
            )
        return page

    async def _get(self, url: str, headers: Mapping[str, str]) -> Page:
        try:
            response = await self.http.get(url, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise _RetryableError("timed out") from exc
        except httpx.TransportError as exc:
            raise _RetryableError(f"cannot connect ({str(exc) or type(exc).__name__})") from exc
        page = Page(
            url=str(response.url),
            status=response.status_code,
            body=response.content,
            headers={k.lower(): v for k, v in response.headers.items()},
        )
        if page.status >= 500:
            kind = " (an HTML error page)" if page.looks_like_html() else ""
            raise _RetryableError(f"server error {page.status}{kind}")
        return page


def unexpected(url: str, page: Page) -> FeedError:
    """The error for an answer that is neither 200 nor 304: ``FeedGone`` when the
    document is not there (404, 410), as on a page that moved to another platform."""
    message = f"{url}: unexpected HTTP {page.status}"
    if page.status in (404, 410):
        return FeedGone(message)
    return FeedUnavailable(message)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), if given and
    usable, at most ``MAX_RETRY_AFTER``."""
    if not value:
        return None
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = _seconds_until(value)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _seconds_until(value: str) -> float | None:
    try:
        moment = moments.in_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (moment - datetime.now(UTC)).total_seconds() if moment is not None else None
