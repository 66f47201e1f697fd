"""Fetching status pages over HTTP: the only module that uses httpx.

One ``httpx.AsyncClient`` per process (``make_http_client``) serves every watch, and
keeps one connection alive per host for every one of them, so an unchanged poll opens
no connection. A ``Fetcher`` makes one GET with the validators it is given, retries
transport errors and 5xx a few times with jittered exponential backoff, and answers
429 with ``FeedRateLimited``; nothing else is retried, because a 4xx, an HTML challenge
page or a malformed body will not fix itself within seconds. Every source module reads
pages through it, so timeouts, redirects and retries are the same for every vendor.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from modbot import __version__
from modbot.core import moments
from modbot.core.feed import decode
from modbot.errors import (
    FeedError,
    FeedGone,
    FeedMalformed,
    FeedNotJSON,
    FeedRateLimited,
    FeedUnavailable,
)

USER_AGENT = f"modbot/{__version__} (+status page watcher)"
# A page asking for a longer wait is not taken at its word: one header must not stall a
# watch for years.
MAX_RETRY_AFTER = 3600.0


# A validator goes back to the page as a header: one no header can carry (not printable
# ASCII; httpx cannot even send it), or so long that a server refuses the request, is not
# kept, and the body's hash tells a change instead.
_VALIDATOR = re.compile(r"[\x20-\x7e]{1,512}")


def usable(validator: str | None) -> str | None:
    """``validator`` if it can be sent back as it is, else None."""
    return validator if validator is not None and _VALIDATOR.fullmatch(validator) else None


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

    @property
    def etag(self) -> str | None:
        """The ``ETag`` to send back next time, if it can be (``usable``)."""
        return usable(self.headers.get("etag"))

    @property
    def last_modified(self) -> str | None:
        """The ``Last-Modified`` to send back next time, if it can be (``usable``)."""
        return usable(self.headers.get("last-modified"))

    def looks_like_html(self) -> bool:
        """True for an HTML page (an error or bot-challenge page, where data was asked)."""
        if "html" in self.content_type:
            return True
        return self.is_html_document()

    def is_html_document(self) -> bool:
        """True when the body itself is an HTML page, whatever its content type says (some
        servers send feeds as ``text/html``)."""
        return self.body[:64].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def make_http_client(timeout: float, *, poll_interval: float = 15.0) -> httpx.AsyncClient:
    """The process's one HTTP client for status pages: timeouts, redirects, a UA, and a
    pool that keeps a connection alive to every host however many watches there are
    (httpx's default keeps 20, each for 5 s: every watch past the 20th, and every watch
    polling less often than every 5 s, would reconnect on each poll). An idle connection
    is kept for two of the longest ``poll_interval`` (60 s at least); a server that
    closes it sooner costs one new connection."""
    limits = httpx.Limits(
        max_connections=None,
        max_keepalive_connections=None,
        keepalive_expiry=max(2 * poll_interval, 60.0),
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        limits=limits,
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
        # Checked again as they go out: a state kept by an older version may hold one.
        if usable(etag):
            headers["If-None-Match"] = str(etag)
        if usable(last_modified):
            headers["If-Modified-Since"] = str(last_modified)
        attempt = 1
        while True:
            try:
                page = await self._get(url, headers)
                break
            except _RetryableError as exc:
                if attempt >= self.attempts:
                    raise FeedUnavailable(f"{url}: {exc} (after {self.attempts} tries)") from exc
            # Full jitter: up to 0.5 s, then 1 s, 2 s ... at most ``max_backoff``.
            await asyncio.sleep(random.uniform(0, min(0.5 * 2 ** (attempt - 1), self.max_backoff)))  # noqa: S311 - jitter
            attempt += 1
        if page.status == 429:
            raise FeedRateLimited(
                f"{url}: rate limited (429)", retry_after(page.headers.get("retry-after"))
            )
        return page

    async def json_page(self, url: str) -> Page:
        """A 200 answer that is no HTML page, where a JSON document is expected; the error
        of ``unexpected`` for another status, ``FeedNotJSON`` for HTML (a page that
        moved, or a challenge in front of it)."""
        page = await self.get(url)
        if page.status != 200:
            raise unexpected(url, page)
        if page.looks_like_html():
            raise FeedNotJSON(f"{url} answered an HTML page instead of JSON")
        return page

    async def _get(self, url: str, headers: Mapping[str, str]) -> Page:
        try:
            response = await self.http.get(url, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise _RetryableError("timed out") from exc
        except httpx.TransportError as exc:
            raise _RetryableError(f"cannot connect ({str(exc) or type(exc).__name__})") from exc
        except httpx.TooManyRedirects as exc:
            raise FeedUnavailable(f"{url}: too many redirects") from exc
        except httpx.RequestError as exc:  # a body that cannot be decoded (a broken gzip)
            raise FeedUnavailable(
                f"{url}: unreadable answer ({str(exc) or type(exc).__name__})"
            ) from exc
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


def decoded(url: str, body: bytes) -> Any:
    """The JSON document ``url`` answered; ``FeedMalformed`` naming the URL if it is none."""
    try:
        return decode(body)
    except FeedMalformed as exc:
        raise FeedMalformed(f"{url}: {exc}") from exc


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
