"""Fake feeds: the real Atom and RSS captures in tests/data, served as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from tests.conftest import ROOT, SAMPLES

PROVIDERS = ROOT / "tests" / "data" / "providers"
FEEDS = {
    "statuspage": (SAMPLES / "anthropic-history.atom", "application/atom+xml"),
    "incidentio": (PROVIDERS / "openai-status-2026-09-04.atom", "application/atom+xml"),
    "incidentio-later": (PROVIDERS / "openai-status-2026-09-14.atom", "application/atom+xml"),
    "xai": (PROVIDERS / "xai-status-feed-rss-2026-10-07.xml", "application/rss+xml"),
    "flashduty": (
        PROVIDERS / "deepseek-flashduty-history-rss-2026-09-28.xml",
        "application/rss+xml",
    ),
}


def rss(link: str, items: list[tuple[str, str, str]]) -> tuple[bytes, str]:
    """A small RSS feed whose channel ``<link>`` is ``link``; items are (guid, item
    link, HTML description), dated now."""
    now = format_datetime(datetime.now(UTC), usegmt=True)
    entries = "".join(
        f"<item><title>Elevated errors</title><link>{escape(url)}</link>"
        f'<guid isPermaLink="false">{escape(guid)}</guid>'
        f"<description>{escape(html)}</description><pubDate>{now}</pubDate></item>"
        for guid, url, html in items
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Status</title><link>{escape(link)}</link>{entries}</channel></rss>"
    )
    return body.encode(), "application/rss+xml"


def feed(name: str) -> tuple[bytes, str]:
    """The body and content type of one captured feed."""
    path, content_type = FEEDS[name]
    return path.read_bytes(), content_type
