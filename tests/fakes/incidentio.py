"""A fake incident.io status page, built from the real responses in tests/data/providers.

It serves the Statuspage-compatible ``/api/v2/incidents.json`` (OpenAI's, as captured:
ULID ids, no components, no validators, not sorted by creation), the page's own
summary at ``/proxy/<host>`` (Groq's, as captured: components, structure, a scheduled
maintenance), into which tests put the ongoing incidents and their component impacts,
and the page's own feed of incidents at ``/proxy/<host>/incidents``, whose updates carry
their text the three ways the captured summary's maintenance update does
(``message_string``, ``message.markdown``, ``message.text_node``). ``empty_bodies``
makes the compatible list lose its update texts, as OpenAI's did in March 2026.
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


# The captured maintenance update: the keys every update of the page's own data carries.
CAPTURED_UPDATE = SUMMARY["scheduled_maintenances"][0]["updates"][0]


def own_update(update: dict[str, Any], text_as: str) -> dict[str, Any]:
    """An update of the compatible list as the page's own data writes it, its text put
    the one way ``text_as`` names (``string``, ``markdown`` or ``tree``)."""
    body = str(update.get("body") or "")
    tree = {
        "type": "doc",
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]}
            for line in body.split("\n")
            if line
        ],
    }
    message = dict(CAPTURED_UPDATE["message"], markdown="$undefined", text_node=tree)
    if text_as == "markdown":
        message["markdown"] = body
    own = dict(
        CAPTURED_UPDATE,
        id=update["id"],
        published_at=update.get("display_at") or update.get("created_at"),
        to_status=update.get("status"),
        message=message,
        message_string=body if text_as == "string" else "$undefined",
    )
    own.pop("component_statuses", None)
    return own


class FakeIncidentio:
    """The fake page; ``site.url`` is its base URL."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.incidents: list[dict[str, Any]] = copy.deepcopy(COMPAT["incidents"])
        self.summary: dict[str, Any] = copy.deepcopy(SUMMARY)
        self.summary["ongoing_incidents"] = []
        self.bodies_empty = False
        self.text_as = "string"
        self.page_url: str | None = None  # the URL the page gives for itself (its own)
        self.publish()

    @property
    def summary_path(self) -> str:
        return f"/proxy/{self.site.host.split(':')[0]}"

    @property
    def texts_path(self) -> str:
        return self.summary_path + "/incidents"

    def empty_bodies(self, text_as: str = "string") -> None:
        """Serve every update of the compatible list with an empty body (the page's own
        feed keeps the texts, written the ``text_as`` way)."""
        self.bodies_empty, self.text_as = True, text_as
        self.publish()

    def publish(self) -> None:
        """Serve the current incidents and summary (no ETag, no Last-Modified: as real)."""
        page = dict(COMPAT["page"], url=self.page_url or self.site.url + "/")
        listed = copy.deepcopy(self.incidents)
        if self.bodies_empty:
            for item in listed:
                for update in item.get("incident_updates") or []:
                    update["body"] = ""
        self.site.put(INCIDENTS_PATH, json.dumps({"page": page, "incidents": listed}))
        self.site.put(self.summary_path, json.dumps({"summary": self.summary}))
        own = [
            {
                "id": item["id"],
                "name": item["name"],
                "status": item["status"],
                "updates": [own_update(u, self.text_as) for u in item["incident_updates"]],
            }
            for item in self.incidents
        ]
        self.site.put(self.texts_path, json.dumps({"incidents": own}))

    def set(
        self, incidents: list[dict[str, Any]], ongoing_incidents: list[dict[str, Any]] | None = None
    ) -> None:
        self.incidents = copy.deepcopy(incidents)
        self.summary["ongoing_incidents"] = list(ongoing_incidents or [])
        self.publish()
