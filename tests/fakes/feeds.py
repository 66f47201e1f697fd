"""Fake feeds: the real Atom and RSS captures in tests/data, served as they were."""

from __future__ import annotations

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


def feed(name: str) -> tuple[bytes, str]:
    """The body and content type of one captured feed."""
    path, content_type = FEEDS[name]
    return path.read_bytes(), content_type
