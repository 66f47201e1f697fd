"""The platforms a status page can be served by, as comments, the log and ``modbot
status`` name them. Apart from ``moves`` (which needs the feed's models): the status
screen names a page's platform without importing pydantic."""

from __future__ import annotations

PLATFORM_NAMES = {
    "statuspage": "Atlassian Statuspage",
    "incidentio": "incident.io",
    "gcloud": "Google Cloud Service Health",
    "atom": "an Atom or RSS feed",
    "betterstack": "Better Stack",
    "datadog": "Datadog status pages",
}


def platform_name(kind: str) -> str:
    """How a comment and the log name a platform."""
    return PLATFORM_NAMES.get(kind, kind)
