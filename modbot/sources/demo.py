"""``modbot demo``: a real incident replayed offline, as a status source of its own."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from modbot.core import timeline
from modbot.core.feed import parse_incidents_object
from modbot.core.records import Validators
from modbot.ports import Fetched

DEMOS = {"statuspage": "https://status.claude.com", "incidentio": "https://status.openai.com"}
DATA = {"statuspage": "data/demo_incident.json", "incidentio": "data/demo_incidentio.json"}


def demo_documents(kind: str = "statuspage") -> tuple[list[dict[str, Any]], str]:
    """The bundled real incident of that vendor as feed snapshots, and its source note."""
    raw = resources.files("modbot").joinpath(DATA[kind]).read_text("utf-8")
    data = json.loads(raw)
    postmortem = kind == "statuspage"  # incident.io's compatible API never says postmortem
    return timeline.replay(data["incident"], data["page"], postmortem=postmortem), data["_source"]


class ReplaySource:
    """Serves prepared snapshots, one step at a time (the ``Source`` port, no network)."""

    kind = "replay"

    def __init__(self, documents: list[dict[str, Any]], home: str) -> None:
        self.documents = documents
        self.home = home
        self.url = home + "/api/v2/incidents.json"
        self.step = 0

    async def fetch(self, since: Validators) -> Fetched:
        """The current step's snapshot."""
        document = self.documents[self.step]
        return Fetched(feed=parse_incidents_object(document), validators=Validators())
