"""A status page that moves to another platform at the same address (on ``FakeSite``).

Tests give incidents in Statuspage's shape (``tests.fakes.statuspage.incident``) and
say which platform serves them, each the way the real one does (see
``../shared/notes/providers.md`` and the captures in tests/data/providers):

* ``statuspage``: ``/api/v2/incidents.json`` with the ``x-statuspage-version`` header,
  and its ``history.atom`` (one entry per incident, the whole timeline in its content,
  linked as ``/incidents/<id>``), as an Atlassian page serves both;
* ``incidentio``: the compatible ``/api/v2/incidents.json`` (no header, no components,
  no shortlink), as OpenAI's kept answering after its move;
* ``datadog``: ``/config.json`` (the captured OpenRouter page's, with these incidents)
  and a script shell at every other path a bot tries;
* ``html``: a challenge page where the JSON was (``atom`` keeps the feed answering).

``ulid`` and ``renamed`` give incidents the new ids a platform hands out when it takes
them over.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from tests.fakes.datadog import CAPTURE, SHELL
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import HTML_PAGE, PAGE

INCIDENTS_PATH = "/api/v2/incidents.json"
MAINTENANCES_PATH = "/api/v2/scheduled-maintenances.json"
ATOM_PATH = "/history.atom"
SHELL_PATHS = ("/", INCIDENTS_PATH, "/index.json", "/incidents.json", ATOM_PATH)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
Incident = dict[str, Any]


def ulid(seed: str) -> str:
    """A 26-character ULID-shaped id, the same for the same ``seed``."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:17], "big")
    return "".join(CROCKFORD[(number >> (5 * i)) & 31] for i in range(26))


def renamed(incident: Incident, ident: str, *, update_ids: bool = True) -> Incident:
    """``incident`` under the id ``ident``, its updates under ids of the same form."""
    out = copy.deepcopy(incident)
    out["id"] = ident
    for update in out.get("incident_updates") or []:
        if update_ids:
            update["id"] = ulid(ident + update["id"]) if len(ident) == 26 else update["id"]
        update["incident_id"] = ident
    return out


def compat(incident: Incident) -> Incident:
    """An incident as incident.io's compatible list gives it."""
    out = copy.deepcopy(incident)
    for key in ("components", "shortlink", "started_at", "page_id"):
        out.pop(key, None)
    for update in out.get("incident_updates") or []:
        update["affected_components"] = []
    return out


def _datadog(incident: Incident) -> Incident:
    """An incident as a Datadog page's ``config.json`` gives it."""
    closed = incident["status"] in ("resolved", "postmortem")
    affected = [
        {"id": f"c-{c['name']}", "name": c["name"], "status": "degraded", "type": "Component"}
        for c in incident.get("components") or []
    ]
    timeline = [
        {
            "componentsAffected": affected,
            "createdAt": u.get("created_at"),
            "startedAt": u.get("display_at") or u.get("created_at"),
            "lastModifiedAt": u.get("updated_at"),
            "description": u.get("body"),
            "id": u["id"],
            "status": u.get("status"),
        }
        for u in incident.get("incident_updates") or []
    ]
    return {
        "componentsAffected": affected,
        "currentStatus": incident["status"],
        "description": (incident.get("incident_updates") or [{}])[0].get("body", ""),
        "id": incident["id"],
        "lastModifiedAt": incident.get("updated_at"),
        "publishedDate": incident.get("created_at"),
        "resolved": closed,
        "resolvedDate": incident.get("resolved_at") if closed else None,
        "timeline": timeline,
        "title": incident["name"],
    }


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def history_atom(url: str, incidents: list[Incident]) -> str:
    """An Atlassian page's ``history.atom`` for ``incidents``: each entry links its
    incident's page and holds its whole timeline, newest first, to the minute."""
    entries = []
    for incident in incidents:
        parts = []
        for update in incident.get("incident_updates") or []:
            shown = _moment(update.get("display_at") or update["created_at"])
            parts.append(
                f"<p><small>{shown:%b} <var data-var='date'>{shown.day}</var>, "
                f"<var data-var='time'>{shown:%H:%M}</var> UTC</small><br>"
                f"<strong>{escape(str(update['status']).title())}</strong> - "
                f"{escape(str(update.get('body') or ''))}</p>"
            )
        entries.append(
            f"<entry><id>tag:fake,2005:Incident/{ulid(incident['id'])}</id>"
            f"<published>{incident['created_at']}</published>"
            f"<updated>{incident['updated_at']}</updated>"
            f'<link rel="alternate" type="text/html" href="{url}/incidents/{incident["id"]}"/>'
            f"<title>{escape(incident['name'])}</title>"
            f'<content type="html">{escape("".join(parts))}</content></entry>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xml:lang="en-US" '
        f'xmlns="http://www.w3.org/2005/Atom"><id>tag:fake,2005:/history</id>'
        f'<link rel="alternate" type="text/html" href="{url}"/>'
        f"<title>Fake Status - Incident History</title>"
        f"<updated>2026-10-08T02:59:46Z</updated>{''.join(entries)}</feed>"
    )


class MovingPage:
    """One page at ``site.url``, served by whichever platform was set last."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.platform = ""

    @property
    def url(self) -> str:
        return self.site.url

    def clear(self) -> None:
        """Serve nothing (before another fake fills the site)."""
        self._clear()

    def _clear(self) -> None:
        self.site.answers.clear()
        self.site.heal()

    def statuspage(
        self, incidents: list[Incident], maintenances: list[Incident] | None = None
    ) -> None:
        """Atlassian Statuspage: the JSON with its header (and its scheduled
        maintenances), and the history feed."""
        self._clear()
        self.platform = "statuspage"
        page = dict(PAGE, url=self.url)
        header = {"x-statuspage-version": "2b8e3a1"}
        self.site.put(
            INCIDENTS_PATH, json.dumps({"page": page, "incidents": incidents}), headers=header
        )
        self.site.put(
            MAINTENANCES_PATH,
            json.dumps({"page": page, "scheduled_maintenances": maintenances or []}),
            headers=header,
        )
        self.site.put(ATOM_PATH, history_atom(self.url, incidents), "application/atom+xml")

    def incidentio(self, incidents: list[Incident]) -> None:
        """incident.io's compatible list: no header, no components, ULIDs (as given)."""
        self._clear()
        self.platform = "incidentio"
        page = {"id": "01JBQ7W1Z0000000000000FAKE", "name": "Fake", "url": self.url + "/"}
        listed = [compat(i) for i in incidents]
        self.site.put(INCIDENTS_PATH, json.dumps({"page": page, "incidents": listed}))

    def datadog(self, incidents: list[Incident]) -> None:
        """A Datadog status page: ``config.json``, and a script shell where a bot looks."""
        self._clear()
        self.platform = "datadog"
        for path in SHELL_PATHS:
            self.site.put(path, SHELL, content_type="text/html")
        document = dict(copy.deepcopy(CAPTURE), incidents=[_datadog(i) for i in incidents])
        self.site.put("/config.json", json.dumps(document))

    def challenge(self) -> None:
        """The JSON answers a challenge page (whatever else is served stays)."""
        self.site.put(INCIDENTS_PATH, HTML_PAGE, content_type="text/html")
