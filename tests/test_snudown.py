"""Random strings in every field of a feed, and every datetime edge in its times shown in
any zone, rendered by Reddit's own markdown library: never a link, mention, heading,
table or marker that the template did not put there, and never an exception."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbot import default_templates_dir
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.markdown import escape_text
from modbot.core.records import PageInfo
from modbot.core.render import Renderer, incident_job, link_hosts, modmail_url, notice_job
from modbot.rendering.files import read_templates
from modbot.shell.poller import page_info
from tests import edges
from tests.snudown import Snudown

CONFIGURED = "https://status.example.com"
SUBREDDIT = "ClaudeAI"
RENDERER = Renderer(read_templates(default_templates_dir()))
TOKENS = [
    "[", "]", "(", ")", "](", "[](", "#", "# ", "\n# ", "*", "_", "~~", "^", "^(", "|", "\n|-|-|\n",
    "<", ">", ">!", "!<", "`", "\\", "&", "&#64;", "@", ";", ":", "/", "u/spez", "/u/spez",
    "r/all", "/r/all", "https://", "http://evil.example/x", "https://status.example.com/x",
    "www.evil.example", "www.", ".www.", "http://www.\"", "https://www.)", "http://www.'",
    "http://www.`", "HTTP://WWW.|", "https://x.www.", "mailto:a@b.c", "ftp://x.y",
    "#modbot-inc-victim", "[](#modbot-inc-victim)", "\r", "\r\n", "\r===\r", "\r---",
    "\n", "\n\n", "    ", "1. ", "- ", "+ ", "=== ", "---", "***", " ", "x", "Text", "é", "\t",
]  # fmt: skip
hostile = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join), st.text(max_size=40)
)
# Pages and links a feed might name, the configured page's among them.
URLS = [
    CONFIGURED, CONFIGURED + "/incidents/x", "https://stspg.io/x", "https://evil.example",
    "https://evil.example/incidents/abc123def456", "http://status.example.com.evil.example/",
    "https://status.example.com@evil.example/", "https://stspg.io.evil.example/x",
    "https://evil.example/#status.example.com", "javascript:alert(1)",
]  # fmt: skip
urls = st.one_of(st.sampled_from(URLS), hostile)
LINKABLE = {"status.example.com", "stspg.io"}  # the configured page's host, the vendor's


def update(draw: Any, number: int) -> dict[str, Any]:
    return {
        "id": draw(st.one_of(st.just(f"u{number}"), hostile)),
        "status": draw(st.one_of(st.sampled_from(["investigating", "resolved"]), hostile)),
        "body": draw(hostile),
        "created_at": draw(st.one_of(st.just(f"2026-10-07T13:{number:02d}:00Z"), edges.json_times)),
        "affected_components": [
            {"name": draw(hostile), "old_status": draw(hostile), "new_status": draw(hostile)}
        ],
    }


@st.composite
def snapshots(draw: Any) -> dict[str, Any]:
    incident = {
        "id": "abc123def456",
        "name": draw(hostile),
        "status": draw(st.one_of(st.sampled_from(["investigating", "postmortem"]), hostile)),
        "impact": draw(st.one_of(st.just("major"), hostile)),
        "shortlink": draw(st.one_of(st.none(), urls)),
        "created_at": draw(st.one_of(st.just("2026-10-07T13:00:00Z"), edges.json_times)),
        "resolved_at": draw(edges.json_times),
        "postmortem_body": draw(st.one_of(st.none(), hostile)),
        "components": [{"id": "c", "name": draw(hostile), "status": draw(hostile)}],
        "incident_updates": [update(draw, n) for n in range(draw(st.integers(1, 3)))],
    }
    page = {"name": draw(hostile), "url": draw(urls)}
    return {"page": page, "incidents": [incident]}


HREF = re.compile(r'<a href="([^"]*)"')


def test_snudown_sees_what_an_attacker_would_want(snudown: Snudown) -> None:
    """The checks below can fail: unescaped text does make links, pings and headings."""
    html = snudown.html("u/spez [x](https://evil.example) https://evil.example\n\n# head")
    assert HREF.findall(html) == ["/u/spez", "https://evil.example", "https://evil.example"]
    assert "<h1>" in html


@pytest.mark.parametrize(
    "text",
    [
        'http://www."evil',
        "see http://www.'x",
        "https://www.)",
        "http://www.`",
        "ftp://www.|",
        'https://status.example.com.www."x',
        'HTTP://WWW."x',
    ],
)
def test_a_www_after_a_scheme_is_never_a_link(snudown: Snudown, text: str) -> None:
    """Split from its trailing dot, the escaped URL left a bare "www." for Reddit to link."""
    html = snudown.html(escape_text(text, frozenset({"status.example.com"})))
    assert "<a " not in html, html


def assert_links_only_to_the_configured_page(html: str, body: str) -> None:
    for href in HREF.findall(html):
        if href.startswith("#") or href == modmail_url(SUBREDDIT):
            continue
        host = re.match(r"https?://([^/:?#]+)", href)
        assert host is not None, (href, body)
        assert host.group(1).lower() in LINKABLE, (href, body)


@settings(max_examples=300, deadline=None)
@given(
    document=snapshots(),
    stale=st.one_of(st.none(), st.builds(PageInfo, hostile, urls)),
    zone=edges.zones,
)
def test_no_field_can_add_a_link_mention_heading_table_or_marker(
    snudown: Snudown, document: dict[str, Any], stale: PageInfo | None, zone: ZoneInfo | None
) -> None:
    """Whatever page the feed names (and whatever page the store remembers from an
    older version, ``stale``), links go to the configured page's host or stspg.io."""
    feed = parse_incidents_object(document)
    view = view_of(feed.incidents[0])
    page = stale or page_info(CONFIGURED)
    job = incident_job(view, page, hosts=link_hosts(CONFIGURED), zone=zone, subreddit=SUBREDDIT)
    body = RENDERER.body(job).body
    html = snudown.html(body)
    markers = [h for h in HREF.findall(html) if h.startswith("#")]
    assert markers == ["#modbot-inc-abc123def456"], body
    assert_links_only_to_the_configured_page(html, body)
    assert not re.search(r'href="/?[ur]/', html), body
    assert not re.search(r"<h[124-6]>", html), body
    assert html.count("<h3>") == 1, body
    assert "<table>" not in html, body


@settings(max_examples=300, deadline=None)
@given(text=hostile)
def test_a_notice_cannot_add_a_link_mention_heading_table_or_marker(
    snudown: Snudown, text: str
) -> None:
    """A moderator's words, however odd, are shown as words: the manual template's
    heading-free layout, its one rule and footer link, and the marker stay its own."""
    hosts = link_hosts(CONFIGURED)
    job = notice_job(text or "x", "n1", page_info(CONFIGURED), hosts=hosts, subreddit=SUBREDDIT)
    body = RENDERER.body(job).body
    html = snudown.html(body)
    assert [h for h in HREF.findall(html) if h.startswith("#")] == ["#modbot-note-n1"], body
    assert_links_only_to_the_configured_page(html, body)
    assert not re.search(r'href="/?[ur]/', html), body
    assert not re.search(r"<h\d>", html), body
    assert html.count("<hr/>") == 1, body
    assert "<table>" not in html, body
