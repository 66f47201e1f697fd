"""Random strings in every field of a feed, and every datetime edge in its times shown in
any zone, rendered by Reddit's own markdown library: never a link, mention, heading,
table or marker that the template did not put there, and never an exception."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.feed import parse_incidents_object
from modbot.incidents import view_of
from modbot.poller import page_info_from
from modbot.render import Renderer, incident_job, link_hosts, modmail_url, read_templates
from modbot.settings import default_templates_dir
from tests import edges
from tests.snudown import Snudown, missing

CONFIGURED = "https://status.example.com"
SUBREDDIT = "ClaudeAI"
RENDERER = Renderer(read_templates(default_templates_dir()))
TOKENS = [
    "[", "]", "(", ")", "](", "[](", "#", "# ", "\n# ", "*", "_", "~~", "^", "^(", "|", "\n|-|-|\n",
    "<", ">", ">!", "!<", "`", "\\", "&", "&#64;", "@", ";", ":", "/", "u/spez", "/u/spez",
    "r/all", "/r/all", "https://", "http://evil.example/x", "https://status.example.com/x",
    "www.evil.example", "mailto:a@b.c", "ftp://x.y", "#modbot-inc-victim", "[](#modbot-inc-victim)",
    "\n", "\n\n", "    ", "1. ", "- ", "+ ", "=== ", "---", "***", " ", "x", "Text", "é", "\t",
]  # fmt: skip
hostile = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join), st.text(max_size=40)
)


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
        "shortlink": draw(st.one_of(st.none(), st.just("https://stspg.io/x"), hostile)),
        "created_at": draw(st.one_of(st.just("2026-10-07T13:00:00Z"), edges.json_times)),
        "resolved_at": draw(edges.json_times),
        "postmortem_body": draw(st.one_of(st.none(), hostile)),
        "components": [{"id": "c", "name": draw(hostile), "status": draw(hostile)}],
        "incident_updates": [update(draw, n) for n in range(draw(st.integers(1, 3)))],
    }
    page = {"name": draw(hostile), "url": draw(st.one_of(st.just(CONFIGURED), hostile))}
    return {"page": page, "incidents": [incident]}


@pytest.fixture(scope="module")
def snudown() -> Iterator[Snudown]:
    reason = missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the snudown test: {reason}")
        pytest.skip(reason)
    renderer = Snudown()
    yield renderer
    renderer.close()


HREF = re.compile(r'<a href="([^"]*)"')


def test_snudown_sees_what_an_attacker_would_want(snudown: Snudown) -> None:
    """The checks below can fail: unescaped text does make links, pings and headings."""
    html = snudown.html("u/spez [x](https://evil.example) https://evil.example\n\n# head")
    assert HREF.findall(html) == ["/u/spez", "https://evil.example", "https://evil.example"]
    assert "<h1>" in html


@settings(max_examples=300, deadline=None)
@given(document=snapshots(), zone=edges.zones)
def test_no_field_can_add_a_link_mention_heading_table_or_marker(
    snudown: Snudown, document: dict[str, Any], zone: ZoneInfo | None
) -> None:
    feed = parse_incidents_object(document)
    view = view_of(feed.incidents[0])
    page = page_info_from(feed, CONFIGURED)
    body = RENDERER.body(incident_job(view, page, zone=zone, subreddit=SUBREDDIT)).body
    html = snudown.html(body)
    hosts = link_hosts(page)
    own = {page.url, modmail_url(SUBREDDIT), f"{page.url}/incidents/abc123def456"}
    markers = [h for h in HREF.findall(html) if h.startswith("#")]
    assert markers == ["#modbot-inc-abc123def456"], body
    for href in HREF.findall(html):
        if href.startswith("#") or href in own:
            continue
        # A bare URL in the feed's text stays a link only on the page's own hosts.
        assert re.match(r"https?://([^/:?#]+)", href), (href, body)
        host = re.match(r"https?://([^/:?#]+)", href).group(1).lower()  # type: ignore[union-attr]
        assert host in hosts, (href, body)
    assert not re.search(r'href="/?[ur]/', html), body
    assert not re.search(r"<h[124-6]>", html), body
    assert html.count("<h3>") == 1, body
    assert "<table>" not in html, body
