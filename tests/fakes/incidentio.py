"""A fake incident.io status page, built from the real responses in tests/data/providers.

It serves the Statuspage-compatible ``/api/v2/incidents.json`` (OpenAI's, as captured:
ULID ids, no components, no validators, not sorted by creation) and the page's own
summary at ``/proxy/<host>`` (Groq's, as captured: components, structure, a scheduled
maintenance), into which tests put the ongoing incidents and their component impacts.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import ROOT
from tests.fakes.site import FakeSite

PROVIDERS = ROOT / "tests" / "data" / "providers"
COMPAT = json.loads(
    (PROVIDERS / "openai-incidentio-statuspage-compat-incidents-2026-09-28.json").read_text()
)
SUMMARY = json.loads((PROVIDERS / "groq-incidentio-summary-embedded-2026-09-29.json").read_text())
INCIDENTS_PATH = "/api/v2/incidents.json"


def component_id(name: str) -> str:
    """The id of a component of the captured summary, by name."""
    return next(c["id"] for c in SUMMARY["components"] if c["name"] == name)


def ongoing(
    incident: dict[str, Any], *components: str, status: str = "partial_outage"
) -> dict[str, Any]:
    """An ongoing incident as the page's frontend lists it, affecting ``components``."""
    return {
        "id": incident["id"],
        "name": incident["name"],
        "status": incident["status"],
        "component_impacts": [
            {
                "component_id": component_id(name),
                "status": status,
                "start_at": incident["created_at"],
            }
            for name in components
        ],
    }


class FakeIncidentio:
    """The fake page; ``site.url`` is its base URL."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.incidents: list[dict[str, Any]] = copy.deepcopy(COMPAT["incidents"])
        self.summary: dict[str, Any] = copy.deepcopy(SUMMARY)
        self.summary["ongoing_incidents"] = []
        self.page_url: str | None = None  # the URL the page gives for itself (its own)
        self.publish()

    @property
    def summary_path(self) -> str:
        return f"/proxy/{self.site.host.split(':')[0]}"

    def publish(self) -> None:
        """Serve the current incidents and summary (no ETag, no Last-Modified: as real)."""
        page = dict(COMPAT["page"], url=self.page_url or self.site.url + "/")
        self.site.put(INCIDENTS_PATH, json.dumps({"page": page, "incidents": self.incidents}))
        self.site.put(self.summary_path, json.dumps({"summary": self.summary}))

    def set(
        self, incidents: list[dict[str, Any]], ongoing_incidents: list[dict[str, Any]] | None = None
    ) -> None:
        self.incidents = copy.deepcopy(incidents)
        self.summary["ongoing_incidents"] = list(ongoing_incidents or [])
        self.publish()
