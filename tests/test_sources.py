"""Google Cloud, Atom and RSS feeds, and telling vendors apart, against fakes serving
the real captures (tests/data/providers, origins in its SOURCES.md)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.config.watches import Watch
from modbot.core.incidents import view_of
from modbot.core.records import Validators
from modbot.sources.choose import AutoSource, detect
from modbot.sources.feeds import FeedClient
from modbot.sources.fetch import make_http_client
from modbot.sources.gcloud import GcloudClient
from tests.fakes.feeds import feed
from tests.fakes.gcloud import GEMINI, FakeGcloud, other_product
from tests.fakes.incidentio import FakeIncidentio
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with FakeSite() as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(2.0) as client:
        yield client


def watch(url: str, kind: str = "auto", components: tuple[str, ...] = ()) -> Watch:
    return Watch(
        name="w", url=url, kind=kind, subreddit=None, megathread_title="Megathread",
        components=components, timezone=None, templates_dir=None, poll_interval=0.1,
        maintenance=False,
    )  # fmt: skip


# --- Google Cloud ----------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["Vertex Gemini API", "Gemini on Agent Platform"])
async def test_google_cloud_keeps_the_watched_products_old_name_or_new(
    site: FakeSite, http: httpx.AsyncClient, product: str
) -> None:
    FakeGcloud(site).set([GEMINI, other_product("storage123")])
    fetched = await GcloudClient(site.url, http, products=[product]).fetch(Validators())
    assert fetched.feed is not None
    (gemini,) = fetched.feed.incidents
    view = view_of(gemini)
    assert view.id == GEMINI["id"]
    assert view.status == "resolved"  # it has an end
    assert view.impact == "minor"  # severity: low
    assert [c.name for c in view.components] == [product]  # as the watch knows it
    assert len(view.updates) == 3
    assert view.updates[-1].body.startswith("# Incident Report")  # newest, by its time


async def test_google_cloud_ignores_if_modified_since_so_the_body_hash_decides(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    FakeGcloud(site).set([GEMINI])
    client = GcloudClient(site.url, http, products=["Vertex Gemini API"])
    first = await client.fetch(Validators())
    again = await client.fetch(first.validators)
    assert again.feed is None
    assert site.requests["/incidents.json"] == 2


async def test_a_google_cloud_watch_posts_only_its_products(
    site: FakeSite, make_settings: Callable[..., Settings]
) -> None:
    gcloud = FakeGcloud(site)
    settings = make_settings(
        statuspage_url=site.url, source_kind="gcloud", components=("Vertex Gemini API",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        ongoing = dict(GEMINI, id="gemini2", end=None)
        gcloud.set([ongoing, other_product("storage123")])
        await app.run_once()
    assert out.getvalue().count("[dry-run] NEW") == 1
    assert "incident gemini2" in out.getvalue()
    assert f"{site.url}/incidents/gemini2" in out.getvalue()


# --- feeds -----------------------------------------------------------------------------------


async def test_a_statuspage_history_feed_has_the_whole_timeline(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    site.put("/history.atom", *feed("statuspage"))
    fetched = await FeedClient(site.url + "/history.atom", http).fetch(Validators())
    assert fetched.feed is not None
    by_id = {i.id: view_of(i) for i in fetched.feed.incidents}
    monitoring = by_id["978mjkgw6mh7"]
    assert monitoring.status == "monitoring"
    assert [u.status for u in monitoring.updates] == [
        "investigating",
        "update",
        "identified",
        "monitoring",
    ]
    assert str(monitoring.updates[0].shown_at) == "2026-10-07 13:25:00+00:00"
    assert by_id["vmys9qn874h4"].status == "resolved"  # opened directly as resolved


async def test_a_new_order_of_affected_components_is_no_change(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    site.put("/feed.atom", *feed("incidentio"))
    client = FeedClient(site.url + "/feed.atom", http)
    before = await client.fetch(Validators())
    site.put("/feed.atom", *feed("incidentio-later"))
    after = await client.fetch(before.validators)
    assert before.feed is not None
    assert after.feed is not None
    same = "01M1KWEDH417T2CF44YYHZDFCR"  # its <li> list came in another order
    old = next(view_of(i) for i in before.feed.incidents if i.id == same)
    new = next(view_of(i) for i in after.feed.incidents if i.id == same)
    assert old == new


async def test_xai_repeats_an_incident_per_product_and_it_becomes_one(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    site.put("/feed.xml", *feed("xai"))
    fetched = await FeedClient(site.url + "/feed.xml", http).fetch(Validators())
    assert fetched.feed is not None
    ids = [i.id for i in fetched.feed.incidents]
    assert ids.count("INC578e0bc8") == 1
    outage = next(view_of(i) for i in fetched.feed.incidents if i.id == "INC578e0bc8")
    assert {c.name for c in outage.components} == {"Global (api.x.ai)", "US (us.api.x.ai)"}
    assert [u.status for u in outage.updates] == ["investigating", "investigating", "resolved"]


async def test_flashduty_dates_and_escaped_html_are_read(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    site.put("/history.rss", *feed("flashduty"))
    fetched = await FeedClient(site.url + "/history.rss", http).fetch(Validators())
    assert fetched.feed is not None
    first = view_of(fetched.feed.incidents[0])
    assert first.id == "7023110499287"
    assert first.status == "resolved"
    assert str(first.updates[0].shown_at) == "2026-09-23 22:20:46+00:00"  # +0800 in the feed
    assert "服务已恢复" in first.updates[0].body
    assert "<p>" not in first.updates[0].body
    assert len(first.components) == 3


# --- telling vendors apart ---------------------------------------------------------------------


async def test_auto_tells_statuspage_incidentio_gcloud_and_feeds_apart(
    statuspage: FakeStatuspage, site: FakeSite, http: httpx.AsyncClient
) -> None:
    assert await detect(statuspage.url, http) == "statuspage"
    FakeIncidentio(site)
    assert await detect(site.url, http) == "incidentio"
    assert await detect(site.url + "/feed.xml", http) == "atom"
    assert await detect("https://status.cloud.google.com", http) == "gcloud"


@pytest.mark.parametrize(
    "body", ['{"incidents": 5}', '{"incidents": "abc"}', '{"incidents": ' + "[" * 100_000]
)
async def test_auto_takes_a_document_of_the_wrong_shape_for_statuspage(
    site: FakeSite, http: httpx.AsyncClient, body: str
) -> None:
    site.put("/api/v2/incidents.json", body)
    assert await detect(site.url, http) == "statuspage"  # whose parser then says what is wrong


async def test_auto_reads_an_atlassian_page_from_its_feed_while_the_json_is_challenged(
    statuspage: FakeStatuspage, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    statuspage.set_incidents(
        [incident("abc", "investigating", [update("u1", "investigating", "x", 1)])]
    )
    source = AutoSource(watch(statuspage.url), http, attempts=1)
    assert (await source.fetch(Validators())).feed is not None
    assert source.chosen == "statuspage"
    site_feed, _ = feed("statuspage")
    source.fallback.url = statuspage.url + "/feed-served-elsewhere"  # type: ignore[union-attr]
    async with FakeSite() as elsewhere:
        elsewhere.put("/history.atom", site_feed, "application/atom+xml")
        source.fallback.url = elsewhere.url + "/history.atom"  # type: ignore[union-attr]
        statuspage.misbehave("html200", count=None)
        for _ in range(2):
            with pytest.raises(Exception, match="HTML"):
                await source.fetch(Validators())
        fell_back = await source.fetch(Validators())  # the third challenge in a row
        assert fell_back.feed is not None
        assert {i.id for i in fell_back.feed.incidents} >= {"978mjkgw6mh7"}
        await source.fetch(Validators())
        statuspage.heal()
        back = await source.fetch(Validators())
    assert back.feed is not None
    assert [i.id for i in back.feed.incidents] == ["abc"]
    said = [r.getMessage() for r in caplog.records if "challenge page" in r.getMessage()]
    assert len(said) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_auto_says_which_kind_it_chose(
    site: FakeSite, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    FakeIncidentio(site)
    settings = make_settings(statuspage_url=site.url)
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        await app.run_once()
    assert any("is an incident.io page" in r.getMessage() for r in caplog.records)
