"""A time that is no usable time costs that field, shown as unknown: never the incident,
never the watch. Every source, the store's codec, the comment and ``Retry-After``."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import httpx
import pytest

from modbot.core import moments
from modbot.core.codec import view_from_json, view_to_json
from modbot.core.feed import parse_incidents, parse_incidents_object
from modbot.core.incidents import diff, view_of
from modbot.core.records import Validators
from modbot.core.render import format_time
from modbot.sources.feeds import FeedClient
from modbot.sources.fetch import MAX_RETRY_AFTER, make_http_client, retry_after
from modbot.sources.gcloud import GcloudClient
from modbot.sources.incidentio import IncidentioClient
from modbot.sources.statuspage import StatuspageClient
from tests.fakes.gcloud import GEMINI, FakeGcloud
from tests.fakes.incidentio import FakeIncidentio
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(2.0) as client:
        yield client


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with FakeSite() as served:
        yield served


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-10-07T13:00:00.123-07:00", datetime(2026, 10, 7, 20, 0, 0, 123000, tzinfo=UTC)),
        ("2026-10-07T13:00:00", datetime(2026, 10, 7, 13, tzinfo=UTC)),  # naive: UTC
        ("2026-10-07t13:00:00z", datetime(2026, 10, 7, 13, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),  # leap second
        ("2026-10-07T24:00:00Z", datetime(2026, 10, 8, tzinfo=UTC)),  # the end of a day
        ("2026-10-07T24:00", datetime(2026, 10, 8, tzinfo=UTC)),
        (1_791_378_000, datetime(2026, 10, 7, 13, tzinfo=UTC)),  # epoch seconds
        (1_791_378_000.5, datetime(2026, 10, 7, 13, 0, 0, 500000, tzinfo=UTC)),
        (-86_400, datetime(1969, 12, 31, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", None),  # after year 9999 in UTC
        (GO_ZERO_TIME, None),  # Go's "never set"; no zone west of UTC can show it
        ("9999-12-31T23:59:59Z", None),
        ("2026-10-07T24:00:01Z", None),
        ("9999-12-31T24:00:00Z", None),
        ("2026-10-07T13:00:00+24:00", None),
        ("", None),
        ("   ", None),
        ("garbage", None),
        ("1791378000", None),  # numeric text is not a time
        ("2026-02-30T00:00:00Z", None),
        (10**30, None),
        (-(10**30), None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ([], None),
        ({"at": "2026-10-07T13:00:00Z"}, None),
        (None, None),
    ],
)
def test_what_counts_as_a_time(value: object, expected: datetime | None) -> None:
    assert moments.parse(value) == expected


def test_every_usable_time_shows_in_every_zone_near_the_calendars_edges() -> None:
    for name in sorted(available_timezones()):
        for moment in (moments.EARLIEST, moments.LATEST):
            assert format_time(moment, ZoneInfo(name)).endswith(" UTC")


def test_a_time_that_no_zone_can_show_is_an_unknown_time() -> None:
    zero = datetime(1, 1, 1, tzinfo=UTC)  # what older versions may have stored
    assert format_time(zero, LOS_ANGELES) == "unknown time"
    assert format_time(datetime.max.replace(tzinfo=UTC), None) == "unknown time"


# --- the feed's other fields -----------------------------------------------------------------


def ordinary(incident_id: str = "fine") -> dict[str, Any]:
    return incident(
        incident_id, "investigating", [update(f"{incident_id}u", "investigating", "b", 1)]
    )


def test_a_field_of_the_wrong_type_costs_that_field() -> None:
    odd = ordinary("odd")
    odd.update(name=42, status=["investigating"], impact={"x": 1}, shortlink=7)
    odd["incident_updates"] += ["not an update", {"status": "no id"}, None]
    odd["incident_updates"][0].update(body=3.5, affected_components="API")
    odd["components"] = [{"name": ["API"], "status": 1, "group": "maybe"}, "API"]
    feed = parse_incidents_object({"page": "not a page", "incidents": [odd, ordinary()]})
    assert [i.id for i in feed.incidents] == ["odd", "fine"]
    view = view_of(feed.incidents[0])
    assert (view.name, view.status, view.impact, view.shortlink) == ("odd", "", "none", None)
    assert [(u.id, u.body) for u in view.updates] == [("oddu", "")]
    assert view.components == ()
    assert feed.page is None


def test_an_incident_without_a_usable_id_is_skipped_and_named() -> None:
    document = {"incidents": [{"name": "x"}, {"id": 12, "name": "y"}, "z", ordinary()]}
    feed = parse_incidents_object(document)
    assert [i.id for i in feed.incidents] == ["fine"]
    assert feed.skipped == (
        "an incident without an id",
        "an incident whose id is a number, not text",
        "an entry that is text, not an incident",
    )


async def test_a_statuspage_warns_once_of_an_incident_without_an_id(
    statuspage: FakeStatuspage, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    statuspage.set_incidents([{"name": "no id"}, ordinary()])
    client = StatuspageClient(statuspage.url, http)
    for _ in range(2):
        fetched = await client.fetch(Validators())
        assert fetched.feed is not None
        assert [i.id for i in fetched.feed.incidents] == ["fine"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{client.url}: skipping an incident without an id"]


# --- every source ----------------------------------------------------------------------------


async def test_statuspage_times_at_the_calendars_edges_are_unknown(
    statuspage: FakeStatuspage, http: httpx.AsyncClient
) -> None:
    odd = ordinary("odd")
    odd.update(created_at="0001-01-01T00:00:00+01:00", started_at="", resolved_at=12**40)
    odd["incident_updates"][0].update(
        created_at="9999-12-31T23:59:59-14:00", display_at="24:00", updated_at=None
    )
    statuspage.set_incidents([odd, ordinary()])
    fetched = await StatuspageClient(statuspage.url, http).fetch(Validators())
    assert fetched.feed is not None
    first, second = (view_of(i) for i in fetched.feed.incidents)
    assert (first.created_at, first.resolved_at, first.updates[0].shown_at) == (None, None, None)
    assert second.created_at == datetime(2026, 10, 7, 13, 1, tzinfo=UTC)


async def test_incidentio_times_at_the_calendars_edges_are_unknown(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    page = FakeIncidentio(site)
    incidents = copy.deepcopy(page.incidents[:2])
    incidents[0]["created_at"] = "0001-01-01T00:00:00+14:00"
    incidents[0]["incident_updates"][0]["display_at"] = GO_ZERO_TIME
    maintenance = page.summary["scheduled_maintenances"][0]
    maintenance["published_at"] = "9999-12-31T23:59:59-01:00"
    for window in maintenance.get("status_summaries", []) + maintenance["component_impacts"]:
        window["start_at"] = "0001-01-01T00:00:00+00:01"
    page.set(incidents)
    client = IncidentioClient(site.url, http, maintenance=True)
    fetched = await client.fetch(Validators())
    assert fetched.feed is not None
    views = {i.id: view_of(i) for i in fetched.feed.incidents}
    assert views[incidents[0]["id"]].created_at is None
    assert views[incidents[1]["id"]].created_at is not None
    (planned,) = [v for v in views.values() if v.maintenance]
    assert planned.created_at is None
    assert planned.scheduled_for is None


async def test_google_cloud_times_and_shapes_at_the_edges_cost_their_field(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    odd = copy.deepcopy(GEMINI)
    odd.update(id="odd1", begin="0001-01-01T00:00:00+05:30", modified=-(2**80), end="")
    odd["updates"][0].update(created="9999-12-31T23:59:59-12:00", when=1e300, modified="")
    broken = dict(copy.deepcopy(GEMINI), id="broken1", updates=12)
    FakeGcloud(site).set([odd, broken, GEMINI])
    client = GcloudClient(site.url, http, products=["Vertex Gemini API"])
    fetched = await client.fetch(Validators())
    assert fetched.feed is not None
    views = {i.id: view_of(i) for i in fetched.feed.incidents}
    assert views["odd1"].created_at is None
    assert views["odd1"].updates[0].shown_at is None  # an unknown time sorts first
    assert views["broken1"].updates == ()
    assert views[GEMINI["id"]].created_at is not None


ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<link rel="alternate" href="https://status.example.com"/>
<entry><id>tag:x,2005:Incident/1</id><updated>{when}</updated>
<link rel="alternate" href="https://status.example.com/incidents/{ident}"/><title>A</title>
<content type="html">{content}</content></entry>
<entry><id>tag:x,2005:Incident/2</id><updated>2026-10-07T13:00:00Z</updated>
<link rel="alternate" href="https://status.example.com/incidents/fine"/><title>B</title>
<content type="html">Status: Investigating</content></entry></feed>"""
HISTORY_UPDATE = (
    "&lt;p&gt;&lt;small&gt;{month} &lt;var&gt;{day}&lt;/var&gt;, &lt;var&gt;{time}&lt;/var&gt; "
    "UTC&lt;/small&gt;&lt;br&gt;&lt;strong&gt;Resolved&lt;/strong&gt; - gone&lt;/p&gt;"
)
RSS = """<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>
<link>https://status.example.com</link>
<item><title>[API] A</title><guid>odd1</guid><pubDate>{when}</pubDate>
<description><![CDATA[<h3>Status: RESOLVED</h3><div><p><strong>{update}</strong></p>
<h3>Resolved</h3><p>gone</p></div>]]></description></item>
<item><title>B</title><guid>fine</guid><pubDate>Wed, 07 Oct 2026 00:24:33 GMT</pubDate>
<description>hello</description></item></channel></rss>"""


@pytest.mark.parametrize(
    ("when", "month", "day", "time"),
    [
        ("0001-01-01T00:00:00+01:00", "Jan", "1", "00:00"),  # a year-0 struct_time
        ("9999-12-31T23:59:59-14:00", "Dec", "31", "23:59"),  # a year-10000 one
        ("2027-03-01T00:00:00Z", "Feb", "29", "12:00"),  # no Feb 29 in 2027 or 2026
        ("0001-06-01T00:00:00Z", "Dec", "31", "23:00"),  # "last December": year 0
        ("garbage", "Oct", "99", "99:99"),
    ],
)
def test_an_atom_history_feed_with_impossible_dates_keeps_its_incidents(
    http: httpx.AsyncClient, when: str, month: str, day: str, time: str
) -> None:
    content = HISTORY_UPDATE.format(month=month, day=day, time=time)
    body = ATOM.format(when=when, ident="odd1", content=content).encode()
    feed = FeedClient("https://status.example.com/history.atom", http).snapshot(body)
    assert [i.id for i in feed.incidents] == ["odd1", "fine"]
    odd = view_of(feed.incidents[0])
    assert [u.body for u in odd.updates] == ["gone"]


@pytest.mark.parametrize(
    ("when", "update_time"),
    [
        ("Mon, 01 Jan 0001 00:00:00 +0100", "Mon, 01 Jan 0001 00:00:00 +0100"),
        ("Fri, 31 Dec 9999 23:59:59 -1400", "Fri, 31 Dec 9999 23:59:59 -1400"),
        ("Wed, 07 Oct 2026 23:59:60 GMT", "Wed, 07 Oct 2026 24:00:00 GMT"),
        ("", "Fri, 31 Dec 9999 23:59:59 -0000"),
    ],
)
def test_an_rss_feed_with_impossible_dates_keeps_its_incidents(
    http: httpx.AsyncClient, when: str, update_time: str
) -> None:
    body = RSS.format(when=when, update=update_time).encode()
    feed = FeedClient("https://status.example.com/feed.xml", http).snapshot(body)
    assert [i.id for i in feed.incidents] == ["odd1", "fine"]
    odd = view_of(feed.incidents[0])
    assert [(u.status, u.body) for u in odd.updates] == [("resolved", "gone")]


# --- the store, the comment, the page's Retry-After ------------------------------------------


def test_a_view_stored_with_a_time_now_refused_reads_back_as_unknown() -> None:
    feed = parse_incidents(
        b'{"incidents": [{"id": "a1", "created_at": "2026-10-07T13:00:00Z", '
        b'"incident_updates": [{"id": "u1", "created_at": "2026-10-07T13:00:00Z"}]}]}'
    )
    view = diff({}, feed, baseline_at=None).changed["a1"].view
    stored = view_to_json(view).replace("2026-10-07T13:00:00+00:00", "0001-01-01T00:00:00+00:00")
    back = view_from_json(stored)
    assert (back.created_at, back.updates[0].shown_at) == (None, None)
    assert view_from_json(view_to_json(view)) == view


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("-5", 0.0),
        ("1e30", MAX_RETRY_AFTER),
        ("inf", MAX_RETRY_AFTER),
        ("nan", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),  # too near the edge to be a time
        ("Fri, 31 Dec 9998 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Mon, 01 Jan 0001 00:00:00 +0100", 0.0),  # email reads year 1 as 2001
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # naive: UTC, long past
        ("Wed, 21 Oct 2015 07:28:60 GMT", None),
        ("soon", None),
    ],
)
def test_retry_after_is_a_bounded_number_of_seconds(header: str, expected: float | None) -> None:
    assert retry_after(header) == expected
