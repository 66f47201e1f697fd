"""A fake Google Cloud status page: ``/incidents.json`` built from the real capture
(a Vertex Gemini API incident whose product was being renamed), with Last-Modified
sent and If-Modified-Since ignored, as the real page does."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import ROOT
from tests.fakes.site import FakeSite

CAPTURE = json.loads(
    (
        ROOT
        / "tests/data/providers/gcp-incidents-json-vertex-gemini-incident-fixture-2026-09-15.json"
    ).read_text()
)
GEMINI = CAPTURE[0]  # affected: Agent Assist, Dialogflow CX, Vertex Gemini API (renamed), Support


def other_product(incident_id: str, title: str = "Cloud Storage") -> dict[str, Any]:
    """An incident of a product nobody watches."""
    item = copy.deepcopy(GEMINI)
    item["id"] = incident_id
    item["affected_products"] = [{"id": "x", "title": title, "current_title": title}]
    return item


class FakeGcloud:
    """The fake page; ``site.url`` is its base URL."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.set([])

    def set(self, incidents: list[dict[str, Any]]) -> None:
        self.site.put(
            "/incidents.json",
            json.dumps(incidents),
            headers={"Last-Modified": "Tue, 15 Sep 2026 12:17:47 GMT"},
        )
