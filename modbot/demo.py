"""``modbot demo``: a real incident replayed offline, as a status source of its own."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from modbot import timeline
from modbot.feed import parse_incidents_object
from modbot.ports import Fetched
from modbot.records import Validators

DEMO_URL = "https://status.claude.com"


def demo_documents() -> tuple[list[dict[str, Any]], str]:
    """The bundled real incident as a list of feed snapshots, and its source note."""
    raw = resources.files("modbot").joinpath("data/demo_incident.json").read_text("utf-8")
    data = json.loads(raw)
    return timeline.replay(data["incident"], data["page"], postmortem=True), data["_source"]


class ReplaySource:
    """Serves prepared snapshots, one step at a time (the ``Source`` port, no network)."""

    url = DEMO_URL + "/api/v2/incidents.json"
    home = DEMO_URL

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents
        self.step = 0

    async def fetch(self, since: Validators) -> Fetched:
        """The current step's snapshot."""
        document = self.documents[self.step]
        return Fetched(feed=parse_incidents_object(document), validators=Validators())
