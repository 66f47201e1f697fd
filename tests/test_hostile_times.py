"""Every datetime edge (tests/edges.py) through every source and every zone: the
snapshot keeps both incidents, the core diffs them, the store's codec round-trips them,
and each renders, its times shown or "unknown time", never an exception.

The CI profile draws 60 examples per source; ``--hypothesis-profile=long`` far more.
"""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from hypothesis import given
from hypothesis import strategies as st

from modbot import default_templates_dir
from modbot.core.codec import view_from_json, view_to_json
from modbot.core.feed import IncidentsFeed, parse_incidents
from modbot.core.incidents import diff
from modbot.core.markdown import marker
from modbot.core.records import PageInfo
from modbot.core.render import Renderer, incident_context, incident_job, link_hosts
from modbot.rendering.files import read_templates
from modbot.sources.feeds import FeedClient
from modbot.sources.fetch import Page
from modbot.sources.gcloud import GcloudClient
from modbot.sources.incidentio import IncidentioClient
from tests import edges
from tests.fakes.gcloud import GEMINI
from tests.fakes.incidentio import COMPAT, SUMMARY
from tests.fakes.statuspage import incident, update

HOME = "https://status.example.com"
PAGE = PageInfo("status.example.com", HOME)
RENDERER = Renderer(read_templates(default_templates_dir()))
BASELINE = datetime(2026, 10, 7, 12, tzinfo=UTC)
SHOWN = re.compile(r"[A-Z][a-z]{2} \d\d, \d\d:\d\d (\S+ / \d\d:\d\d )?UTC")
UNUSED_HTTP = httpx.AsyncClient()  # the clients want one; snapshot() never uses it
TIME_KEYS = ("created_at", "updated_at", "started_at", "monitoring_at", "resolved_at")
MORE_TIME_KEYS = ("postmortem_published_at", "scheduled_for", "scheduled_until")
UPDATE_TIME_KEYS = ("created_at", "updated_at", "display_at")


def assert_every_incident_renders(
    feed: IncidentsFeed, ids: set[str], zone: ZoneInfo | None
) -> None:
    assert ids <= {i.id for i in feed.incidents}
    first = diff({}, feed, baseline_at=None)
    later = diff({}, feed, baseline_at=BASELINE)  # compares each one's last activity
    for tracked in [*first.changed.values(), *later.changed.values()]:
        view = tracked.view
        assert view_from_json(view_to_json(view)) == view
        context = incident_context(view, PAGE, zone, "sub", link_hosts(HOME))
        times = [context["incident"]["started"], *(u["time"] for u in context["updates"])]
        for key in ("resolved", "scheduled_for", "scheduled_until"):
            times += [context["incident"][key]] if context["incident"][key] else []
        assert all(t == "unknown time" or SHOWN.fullmatch(t) for t in times), times
        job = incident_job(view, PAGE, hosts=link_hosts(HOME), zone=zone, subreddit="sub")
        body = RENDERER.body(job).body
        assert body.startswith("### ")
        assert body.endswith(marker("inc", view.id))


# --- JSON sources ----------------------------------------------------------------------------


def odd_statuspage_incident(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(["investigating", "resolved", "in_progress"]))
    updates = [update(f"oddu{n}", status, "b", n) for n in range(draw(st.integers(0, 3)))]
    odd = incident("odd", status, updates)
    for key in TIME_KEYS + MORE_TIME_KEYS:
        odd[key] = draw(edges.json_times)
    for item in updates:
        for key in UPDATE_TIME_KEYS:
            item[key] = draw(edges.json_times)
    odd["maintenance"] = status == "in_progress"
    return odd


@given(data=st.data(), zone=edges.zones)
def test_statuspage(data: st.DataObject, zone: ZoneInfo | None) -> None:
    fine = incident("fine", "investigating", [update("fineu", "investigating", "b", 1)])
    odd = odd_statuspage_incident(data.draw)
    feed = parse_incidents(json.dumps({"incidents": [odd, fine]}))
    assert_every_incident_renders(feed, {"odd", "fine"}, zone)


@given(data=st.data(), zone=edges.zones)
def test_incidentio(data: st.DataObject, zone: ZoneInfo | None) -> None:
    odd, fine = copy.deepcopy(COMPAT["incidents"][:2])
    for key in TIME_KEYS:
        odd[key] = data.draw(edges.json_times)
    for item in odd["incident_updates"]:
        for key in UPDATE_TIME_KEYS:
            item[key] = data.draw(edges.json_times)
    summary = copy.deepcopy(SUMMARY)
    (planned,) = summary["scheduled_maintenances"][:1]
    planned["status"] = "maintenance_in_progress"
    planned["published_at"] = data.draw(edges.json_times)
    for item in planned.get("updates", []):
        item["published_at"] = data.draw(edges.json_times)
    for window in planned.get("status_summaries", []) + planned.get("component_impacts", []):
        window["start_at"], window["end_at"] = (
            data.draw(edges.json_times),
            data.draw(edges.json_times),
        )
    body = json.dumps({"incidents": [odd, fine]}).encode()
    answer = Page(HOME, 200, json.dumps({"summary": summary}).encode(), {})
    feed = IncidentioClient(HOME, UNUSED_HTTP, maintenance=True).snapshot(body, answer)
    assert_every_incident_renders(feed, {odd["id"], fine["id"], planned["id"]}, zone)


@given(data=st.data(), zone=edges.zones)
def test_google_cloud(data: st.DataObject, zone: ZoneInfo | None) -> None:
    odd = dict(copy.deepcopy(GEMINI), id="odd1")
    for key in ("begin", "created", "modified", "end"):
        odd[key] = data.draw(st.one_of(st.none(), edges.json_times))
    for item in odd["updates"]:
        for key in ("created", "when", "modified"):
            item[key] = data.draw(edges.json_times)
    client = GcloudClient(HOME, UNUSED_HTTP, products=["Vertex Gemini API"])
    feed = client.snapshot([odd, GEMINI])
    assert_every_incident_renders(feed, {"odd1", GEMINI["id"]}, zone)


# --- Atom and RSS ----------------------------------------------------------------------------

ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><link href="{home}"/>
<entry><id>tag:x,2005:Incident/1</id><published>{published}</published>
<updated>{updated}</updated><link href="{home}/incidents/odd1"/><title>A</title>
<content type="html">{content}</content></entry>
<entry><id>tag:x,2005:Incident/2</id><updated>2026-10-07T13:00:00Z</updated>
<link href="{home}/incidents/fine"/><title>B</title>
<content type="html">Status: Investigating</content></entry></feed>"""
HISTORY_UPDATE = (
    "<p><small>{month} <var>{day}</var>, <var>{hour:02d}:{minute:02d}</var> UTC</small><br>"
    "<strong>Resolved</strong> - gone {number}</p>"
)
RSS = """<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>
<link>{home}</link>
<item><title>[API] A</title><link>{home}/incidents/odd1</link><pubDate>{published}</pubDate>
<description>{content}</description></item>
<item><title>B</title><link>{home}/incidents/fine</link>
<pubDate>Wed, 07 Oct 2026 00:24:33 GMT</pubDate><description>hello</description></item>
</channel></rss>"""
XAI_UPDATE = "<div><p><strong>{when}</strong></p><h3>Resolved</h3><p>gone {number}</p></div>"
FLASHDUTY = "<p><strong>Status:</strong> resolved</p><p>gone</p>"


def snapshot(template: str, content: str, published: str, updated: str) -> IncidentsFeed:
    body = template.format(
        home=HOME,
        content=html.escape(content),
        published=html.escape(published),
        updated=html.escape(updated),
    )
    return FeedClient(HOME + "/feed", UNUSED_HTTP).snapshot(body.encode())


@given(
    published=edges.iso_texts,
    updated=edges.iso_texts,
    stamps=st.lists(edges.history_stamps, max_size=3),
    zone=edges.zones,
)
def test_a_statuspage_history_feed(
    published: str, updated: str, stamps: list[tuple[str, int, int, int]], zone: ZoneInfo | None
) -> None:
    content = "".join(
        HISTORY_UPDATE.format(month=month, day=day, hour=hour, minute=minute, number=number)
        for number, (month, day, hour, minute) in enumerate(stamps)
    )
    feed = snapshot(ATOM, content or "Status: Investigating", published, updated)
    assert_every_incident_renders(feed, {"odd1", "fine"}, zone)


@given(
    published=edges.rfc_texts,
    whens=st.lists(edges.rfc_texts, max_size=3),
    flashduty=st.booleans(),
    zone=edges.zones,
)
def test_an_rss_feed(
    published: str, whens: list[str], flashduty: bool, zone: ZoneInfo | None
) -> None:
    updates = "".join(
        XAI_UPDATE.format(when=html.escape(when), number=n) for n, when in enumerate(whens)
    )
    content = FLASHDUTY if flashduty else "<h3>Status: RESOLVED</h3>" + updates
    feed = snapshot(RSS, content, published, published)
    assert_every_incident_renders(feed, {"odd1", "fine"}, zone)
