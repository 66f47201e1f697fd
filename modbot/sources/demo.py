"""``modbot demo``: a real incident replayed offline, as a status source of its own.

``modbot demo --provider NAME`` reads the real sample its catalog entry names with the
very code that reads that platform live (the Atom reader for a feed, Google's or
Datadog's reader for theirs), takes one incident and replays it update by update.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

from modbot.config.catalog import Provider
from modbot.core import timeline
from modbot.core.feed import IncidentsFeed, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import ModbotError
from modbot.ports import Fetched
from modbot.sources.datadog import DatadogClient
from modbot.sources.feeds import FeedClient
from modbot.sources.gcloud import GcloudClient

DEMOS = {"statuspage": "https://status.claude.com", "incidentio": "https://status.openai.com"}
DATA = {"statuspage": "data/demo_incident.json", "incidentio": "data/demo_incidentio.json"}


def demo_documents(kind: str = "statuspage") -> tuple[list[dict[str, Any]], str]:
    """The bundled real incident of that vendor as feed snapshots, and its source note."""
    raw = resources.files("modbot").joinpath(DATA[kind]).read_text("utf-8")
    data = json.loads(raw)
    postmortem = kind == "statuspage"  # incident.io's compatible API never says postmortem
    return timeline.replay(data["incident"], data["page"], postmortem=postmortem), data["_source"]


PREPARED = {"demo_incident.json": "statuspage", "demo_incidentio.json": "incidentio"}
NO_NETWORK = cast("Any", None)  # the readers' snapshot() parses a body; it fetches nothing


def provider_demo(provider: Provider) -> tuple[list[dict[str, Any]], str, str]:
    """The replay of ``provider``'s demo incident, the page's home, and its source note;
    one line saying why when there is none."""
    if not provider.demo_sample:
        why = (
            provider.unsupported
            if not provider.supported
            else f"no real incident of {provider.display_name}'s platform ({provider.platform}) "
            "is stored with modbot yet"
        )
        raise ModbotError(f"no demo for {provider.name}: {why}")
    home = provider.page.rstrip("/")
    if provider.demo_sample in PREPARED:
        documents, note = demo_documents(PREPARED[provider.demo_sample])
        return documents, home, f"{provider.demo_note}. {note}" if provider.demo_note else note
    raw = resources.files("modbot").joinpath("data", provider.demo_sample).read_bytes()
    feed = _read(provider, raw)
    chosen = [i for i in feed.incidents if i.id == provider.demo_incident]
    if not chosen:
        raise ModbotError(f"no demo for {provider.name}: its sample lacks its demo incident")
    incident = chosen[0].model_dump(mode="json")
    page = {
        "name": feed.page.name if feed.page else provider.display_name,
        "url": feed.page.url if feed.page and feed.page.url else home,  # a feed's own page
    }
    note = (
        f"the real sample {provider.demo_sample} shipped with modbot (origin in "
        "modbot/data/samples/SOURCES.md), read as the live page is read"
    )
    if provider.demo_note:
        note = f"{provider.demo_note}; {note}"
    return timeline.replay(incident, page), home, note


def _read(provider: Provider, raw: bytes) -> IncidentsFeed:
    """The sample, read by the reader of the provider's platform."""
    home = provider.page.rstrip("/")
    if provider.kind == "gcloud":
        reader = GcloudClient(home, NO_NETWORK, products=provider.default_components)
        return reader.snapshot(json.loads(raw))
    if provider.kind == "datadog":
        return DatadogClient(home, NO_NETWORK).snapshot(json.loads(raw))
    if provider.kind == "atom":
        return FeedClient(home, NO_NETWORK).snapshot(raw)
    return parse_incidents_object(json.loads(raw))


TIME_KEYS = ("created_at", "updated_at", "resolved_at", "started_at", "monitoring_at", "display_at")


def moved_to(documents: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The replay with every time moved so that its first update is ``now``: an incident
    that was resolved at its one and only update is news only when it happens after the
    bot started (a resolved incident older than that is never posted)."""
    stamps = [
        _parse(u[key])
        for document in documents
        for incident in document["incidents"]
        for u in [incident, *incident.get("incident_updates", [])]
        for key in TIME_KEYS
        if isinstance(u.get(key), str)
    ]
    if not stamps:
        return documents
    shift = now - min(stamps)
    moved = copy.deepcopy(documents)
    for document in moved:
        for incident in document["incidents"]:
            for item in [incident, *incident.get("incident_updates", [])]:
                for key in TIME_KEYS:
                    if isinstance(item.get(key), str):
                        item[key] = (_parse(item[key]) + shift).isoformat()
    return moved


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReplaySource:
    """Serves prepared snapshots, one step at a time (the ``Source`` port, no network)."""

    kind = "replay"

    def __init__(self, documents: list[dict[str, Any]], home: str) -> None:
        self.documents = documents
        self.home = home
        self.url = (
            home
            if home.endswith((".xml", ".rss", ".atom", "/"))
            else home + "/api/v2/incidents.json"
        )
        self.step = 0

    async def fetch(self, since: Validators) -> Fetched:
        """The current step's snapshot."""
        document = self.documents[self.step]
        return Fetched(feed=parse_incidents_object(document), validators=Validators())
