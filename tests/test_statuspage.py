"""The Statuspage client over real HTTP against the fake page."""

from __future__ import annotations

import time

import httpx
import pytest

from modbot.core.records import Validators
from modbot.errors import FeedMalformed, FeedNotJSON, FeedRateLimited, FeedUnavailable
from modbot.ports import Fetched
from modbot.sources.fetch import make_http_client
from modbot.sources.statuspage import StatuspageClient
from tests.fakes.statuspage import FakeStatuspage, incident, update


class Polls:
    """The client with validators kept between fetches, as the poller keeps them."""

    def __init__(self, client: StatuspageClient) -> None:
        self.client = client
        self.since = Validators()

    async def fetch(self) -> Fetched:
        result = await self.client.fetch(self.since)
        self.since = result.validators
        return result


def client(page: FakeStatuspage, http: httpx.AsyncClient, url: str | None = None) -> Polls:
    return Polls(StatuspageClient(url or page.url, http, attempts=3, max_backoff=0.05))


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with make_http_client(timeout=0.5) as shared:
        yield shared


async def test_fetch_parses_then_unchanged_feed_costs_a_304(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    statuspage.set_incidents(
        [incident("a", "investigating", [update("u1", "investigating", "x", 1)])]
    )
    feed = client(statuspage, http)
    first = await feed.fetch()
    assert first.feed is not None
    assert first.feed.incidents[0].id == "a"
    second = await feed.fetch()
    assert second.feed is None
    assert second.status == 304
    assert statuspage.requests[-1].conditional
    assert statuspage.requests[-1].bytes_in + statuspage.requests[-1].bytes_out < 1024


async def test_last_modified_is_used_when_there_is_no_etag(http: httpx.AsyncClient) -> None:
    async with FakeStatuspage(use_etag=False, use_last_modified=True) as page:
        feed = client(page, http)
        assert (await feed.fetch()).feed is not None
        assert (await feed.fetch()).status == 304


async def test_changed_feed_is_fetched_again(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    feed = client(statuspage, http)
    await feed.fetch()
    statuspage.set_incidents([incident("b", "identified", [update("u1", "identified", "y", 1)])])
    result = await feed.fetch()
    assert result.feed is not None
    assert result.feed.incidents[0].id == "b"


async def test_html_with_status_200_suggests_the_statuspage_io_origin(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    statuspage.misbehave("html200")
    with pytest.raises(FeedNotJSON) as caught:
        await client(statuspage, http).fetch()
    message = str(caught.value)
    assert "HTML" in message
    assert "statuspage.io" in message
    assert "MODBOT_STATUSPAGE_URL" in message
    assert "\n" not in message


async def test_html_503_is_retried_then_reported(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    statuspage.misbehave("html503", count=None)
    with pytest.raises(FeedUnavailable, match=r"server error 503 \(an HTML error page\).*3 tries"):
        await client(statuspage, http).fetch()
    assert statuspage.count() == 3


async def test_a_passing_5xx_is_retried_and_succeeds(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    statuspage.misbehave("status", status=502, count=2)
    result = await client(statuspage, http).fetch()
    assert result.feed is not None
    assert statuspage.count() == 3


async def test_4xx_is_not_retried(statuspage: FakeStatuspage, http: httpx.AsyncClient) -> None:
    statuspage.misbehave("status", status=404)
    with pytest.raises(FeedUnavailable, match="HTTP 404"):
        await client(statuspage, http).fetch()
    assert statuspage.count() == 1


async def test_malformed_json_is_reported_and_not_cached(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    feed = client(statuspage, http)
    statuspage.misbehave("malformed")
    with pytest.raises(FeedMalformed, match="not a Statuspage incidents document"):
        await feed.fetch()
    assert (await feed.fetch()).feed is not None  # no validator was kept from the bad answer


async def test_a_hang_times_out_within_bounds(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    statuspage.misbehave("hang", count=None, seconds=30)
    started = time.monotonic()
    with pytest.raises(FeedUnavailable, match="timed out"):
        await client(statuspage, http).fetch()
    assert time.monotonic() - started < 3 * 0.5 + 1.5


async def test_429_reports_retry_after(statuspage: FakeStatuspage, http: httpx.AsyncClient) -> None:
    statuspage.misbehave("status", status=429, headers={"Retry-After": "42"})
    with pytest.raises(FeedRateLimited) as caught:
        await client(statuspage, http).fetch()
    assert caught.value.retry_after == 42.0


async def test_redirects_are_followed(statuspage: FakeStatuspage, http: httpx.AsyncClient) -> None:
    statuspage.set_incidents(
        [incident("a", "investigating", [update("u1", "investigating", "x", 1)])]
    )
    moved = StatuspageClient(statuspage.url + "/moved", http)
    result = await moved.fetch(Validators())
    assert result.feed is not None


async def test_connection_refused_is_feed_unavailable(http: httpx.AsyncClient) -> None:
    closed = StatuspageClient("http://127.0.0.1:9", http, attempts=2, max_backoff=0.01)
    with pytest.raises(FeedUnavailable, match="cannot connect"):
        await closed.fetch(Validators())


async def test_without_validators_an_unchanged_body_is_known_by_its_hash(
    http: httpx.AsyncClient,
) -> None:
    async with FakeStatuspage(use_etag=False) as page:
        page.set_incidents(
            [incident("a", "investigating", [update("u1", "investigating", "x", 1)])]
        )
        feed = client(page, http)
        assert (await feed.fetch()).feed is not None
        again = await feed.fetch()
        assert (again.status, again.feed) == (200, None)  # downloaded, not parsed
        assert not page.requests[-1].conditional


async def test_validators_are_only_what_the_caller_passes_in(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    """The client keeps nothing: a caller whose save failed passes the old validators
    again, and sees the change again (never a 304 that hides it)."""
    bare = StatuspageClient(statuspage.url, http)
    first = await bare.fetch(Validators())
    assert first.feed is not None
    assert (await bare.fetch(first.validators)).status == 304
    assert (await bare.fetch(Validators())).feed is not None
