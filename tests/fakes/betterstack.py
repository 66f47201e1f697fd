"""A fake Better Stack status page: ``/feed.rss`` and ``/index.json``.

CONSTRUCTED, NOT CAPTURED: no stored copy of a real Better Stack response could be found
(see tests/data/providers/SOURCES.md, "Constructed"). The documents below follow what
is on record about them, and nothing else:

* the feed: RSS 2.0 with a channel and one ``<item>`` per update (title, description,
  pubDate, link, guid), titles such as "[Resolved] ..." (Better Stack's documentation of
  its status-page feed);
* Together's, Fireworks' and Hugging Face's items: every ``<link>`` is the page's home and
  the items of one incident share a guid ``https://<page>/#<hash>``; titles "X went down" /
  "X recovered"; Modal's items: ``<link>`` is ``/incident/<n>`` and each item's guid adds its
  own ``#<hash>``; scheduled maintenance items are in the feed too (bentleypark/aiwatch's
  parser tests, worker/src/parsers/__tests__/betterstack.test.ts, which record these
  shapes but are themselves hand-written);
* ``index.json``: a JSON:API document, ``data.type`` "status_page" and ``included`` items of
  type ``status_page_resource`` with ``attributes.public_name`` and ``status`` (Better
  Stack's documentation of the status page API, as quoted by several projects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from tests.fakes.site import FakeSite

START = datetime(2026, 9, 20, 10, 0, tzinfo=UTC)


@dataclass
class Item:
    """One update of the feed."""

    title: str
    description: str
    minutes: float  # after START
    link: str  # a path on the page, "/" for its home
    guid: str  # a path and fragment on the page


def home_style(key: str, name: str, *, recovered_after: float | None, at: float = 0) -> list[Item]:
    """An incident as Together's and Hugging Face's feeds carry it: home links, one guid."""
    items = [Item(f"{name} went down", f"{name} is down.", at, "/", f"/#{key}")]
    if recovered_after is not None:
        items.append(
            Item(f"{name} recovered", f"{name} is back up.", at + recovered_after, "/", f"/#{key}")
        )
    return items


def modal_style(number: int, title: str, texts: list[tuple[float, str]]) -> list[Item]:
    """An incident as Modal's feed carries it: an incident link, a guid per update."""
    return [
        Item(title, text, minutes, f"/incident/{number}", f"/incident/{number}#u{index}")
        for index, (minutes, text) in enumerate(texts)
    ]


def rss(base: str, items: list[Item]) -> str:
    """The feed's text, newest item first."""
    entries = []
    for item in sorted(items, key=lambda i: -i.minutes):
        when = format_datetime(START + timedelta(minutes=item.minutes))
        entries.append(
            "    <item>\n"
            f"      <title>{item.title}</title>\n"
            f"      <description>{item.description}</description>\n"
            f"      <pubDate>{when}</pubDate>\n"
            f"      <link>{base}{item.link}</link>\n"
            f"      <guid>{base}{item.guid}</guid>\n"
            "    </item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n  <channel>\n'
        "    <title>Example AI status</title>\n"
        f"    <link>{base}</link>\n" + "".join(entries) + "  </channel>\n</rss>\n"
    )


def index(resources: list[tuple[str, str]]) -> str:
    """The page's index.json with these (name, status) resources."""
    return json.dumps(
        {
            "data": {
                "id": "1",
                "type": "status_page",
                "attributes": {"company_name": "Example AI", "aggregate_state": "operational"},
            },
            "included": [
                {
                    "id": str(100 + n),
                    "type": "status_page_resource",
                    "attributes": {"public_name": name, "status": status},
                }
                for n, (name, status) in enumerate(resources)
            ],
        }
    )


class FakeBetterstack:
    """The fake page; ``site.url`` is its base URL."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        shell = "<!DOCTYPE html><html><body></body></html>"
        for path in ("/", "/api/v2/incidents.json", "/config.json", "/incidents.json"):
            site.put(path, shell, content_type="text/html")
        site.put("/index.json", index([("API", "operational"), ("Inference", "operational")]))
        self.set([])

    def set(self, items: list[Item]) -> None:
        self.site.put("/feed.rss", rss(self.site.url, items), content_type="application/rss+xml")
