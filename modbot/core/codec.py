"""Incident views to and from compact JSON, the form the store keeps them in."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from modbot.core import moments
from modbot.core.records import ComponentView, IncidentView, UpdateView


def _time_to_json(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time_from_json(value: Any) -> datetime | None:
    # The same rule as the feed's: a view saved before it may hold a time it now refuses.
    return moments.from_text(value) if isinstance(value, str) else None


def view_to_json(view: IncidentView) -> str:
    """Serialise a view for storage (an update's part written once: an incident is saved
    again with every new update, and its earlier ones are what they were)."""
    data = {
        "id": view.id,
        "name": view.name,
        "status": view.status,
        "impact": view.impact,
        "shortlink": view.shortlink,
        "created_at": _time_to_json(view.created_at),
        "resolved_at": _time_to_json(view.resolved_at),
        "components": [[c.name, c.status] for c in view.components],
        "postmortem_body": view.postmortem_body,
        "maintenance": view.maintenance,
        "scheduled_for": _time_to_json(view.scheduled_for),
        "scheduled_until": _time_to_json(view.scheduled_until),
    }
    head = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return head[:-1] + ',"updates":[' + ",".join(map(_update_json, view.updates)) + "]}"


@lru_cache(maxsize=8192)
def _update_json(update: UpdateView) -> str:
    return json.dumps(
        [update.id, update.status, update.body, _time_to_json(update.shown_at)],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def pruned_to_json(incident_id: str, status: str) -> str:
    """What stays of a pruned incident's view: its id and status (read back as a view
    with nothing else, which is all it takes to know the incident again)."""
    return json.dumps({"id": incident_id, "status": status}, separators=(",", ":"))


def view_from_json(text: str) -> IncidentView:
    """Read back a view written by ``view_to_json`` (or ``pruned_to_json``)."""
    data = json.loads(text)
    return IncidentView(
        id=data["id"],
        name=data.get("name", ""),
        status=data["status"],
        impact=data.get("impact", ""),
        shortlink=data.get("shortlink"),
        created_at=_time_from_json(data.get("created_at")),
        resolved_at=_time_from_json(data.get("resolved_at")),
        components=tuple(
            ComponentView(name, status) for name, status in data.get("components", ())
        ),
        updates=tuple(
            UpdateView(uid, status, body, _time_from_json(shown))
            for uid, status, body, shown in data.get("updates", ())
        ),
        postmortem_body=data.get("postmortem_body"),
        maintenance=bool(data.get("maintenance", False)),
        scheduled_for=_time_from_json(data.get("scheduled_for")),
        scheduled_until=_time_from_json(data.get("scheduled_until")),
    )
