"""Replaying a finished incident one update at a time (for ``modbot demo`` and tests).

Given an incident as the page showed it at the end, ``replay`` returns the
incidents documents the page would have served along the way: one step per update,
oldest first, with the incident's status, times and component statuses as they were
at that step, and optionally a last step where the postmortem is published.
"""

from __future__ import annotations

import copy
from typing import Any

Document = dict[str, Any]
CLOSED = ("resolved", "postmortem")


def _time(update: dict[str, Any]) -> str:
    return str(update.get("display_at") or update.get("created_at") or "")


def _updates_oldest_first(incident: dict[str, Any]) -> list[dict[str, Any]]:
    updates = list(incident.get("incident_updates") or [])
    indexed = list(enumerate(updates))
    indexed.sort(key=lambda item: (_time(item[1]), -item[0]))
    return [update for _, update in indexed]


def step(incident: dict[str, Any], shown: list[dict[str, Any]]) -> dict[str, Any]:
    """The incident as it stood once ``shown`` (oldest first) had been posted."""
    current = copy.deepcopy(incident)
    latest = shown[-1]
    status = latest.get("status") or "investigating"
    current["status"] = status
    current["incident_updates"] = [copy.deepcopy(u) for u in reversed(shown)]
    current["updated_at"] = _time(latest)
    current["resolved_at"] = _time(latest) if status in CLOSED else None
    if current.get("monitoring_at") and not any(u.get("status") == "monitoring" for u in shown):
        current["monitoring_at"] = None
    degraded = "operational" if status in CLOSED else "partial_outage"
    for component in current.get("components") or []:
        component["status"] = degraded
    return current


def replay(
    incident: dict[str, Any], page: dict[str, Any] | None = None, *, postmortem: bool = False
) -> list[Document]:
    """Incidents documents, one per update of ``incident``, oldest first."""
    ordered = _updates_oldest_first(incident)
    documents = []
    for count in range(1, len(ordered) + 1):
        document: Document = {"page": page or {}, "incidents": [step(incident, ordered[:count])]}
        documents.append(document)
    if postmortem and documents:
        final = copy.deepcopy(documents[-1])
        last: dict[str, Any] = final["incidents"][0]
        last["status"] = "postmortem"
        documents.append(final)
    return documents
