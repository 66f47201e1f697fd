"""Typed models of the Statuspage v2 JSON (``/api/v2/incidents.json``), parsed leniently.

Pages hosted elsewhere (incident.io's compatible API) omit keys and add enum values,
so every field but an incident's and an update's ``id`` is optional, unknown keys are
ignored, and statuses stay plain strings. Times are normalised to aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from modbot.errors import FeedMalformed


def _none_to_empty(value: object) -> object:
    return "" if value is None else value


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _none_to_list(value: object) -> object:
    return [] if value is None else value


Text = Annotated[str, BeforeValidator(_none_to_empty)]
Time = Annotated[datetime | None, AfterValidator(_to_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AffectedComponent(_Model):
    """A component attached to an update; ``old == new`` is common and not a change."""

    code: str | None = None
    name: Text = ""
    old_status: str | None = None
    new_status: str | None = None


class IncidentUpdate(_Model):
    """One update of an incident; its body can be edited long after it was posted."""

    id: str
    status: Text = ""
    body: Text = ""
    created_at: Time = None
    updated_at: Time = None
    display_at: Time = None
    affected_components: Annotated[list[AffectedComponent], BeforeValidator(_none_to_list)] = []

    @property
    def shown_at(self) -> datetime | None:
        """The time the page shows for this update (``display_at`` may be backdated)."""
        return self.display_at or self.created_at or self.updated_at


class Component(_Model):
    """A component with its current status."""

    id: str | None = None
    name: Text = ""
    status: Text = ""
    group: bool = False


class Incident(_Model):
    """An incident with all of its updates."""

    id: str
    name: Text = ""
    status: Text = ""
    impact: Text = ""
    created_at: Time = None
    updated_at: Time = None
    started_at: Time = None
    monitoring_at: Time = None
    resolved_at: Time = None
    shortlink: str | None = None
    incident_updates: Annotated[list[IncidentUpdate], BeforeValidator(_none_to_list)] = []
    components: Annotated[list[Component], BeforeValidator(_none_to_list)] = []
    # Only subscriber webhooks and some self-hosted pages carry these; the public
    # JSON does not, and then the comment links to the incident page instead.
    postmortem_body: str | None = None
    postmortem_published_at: Time = None
    # Maintenances only: the window the provider announced.
    scheduled_for: Time = None
    scheduled_until: Time = None
    # Set by sources, never read from a page: False when the source cannot tell which
    # components an incident touches (incident.io once an incident is no longer
    # ongoing); a scheduled maintenance rather than an incident.
    components_known: bool = True
    maintenance: bool = False


class Page(_Model):
    """The page an incidents document belongs to."""

    id: str | None = None
    name: Text = ""
    url: str | None = None


class IncidentsFeed(_Model):
    """An ``incidents.json`` (or ``summary.json``) document."""

    page: Page | None = None
    incidents: list[Incident]
    # Set by sources whose snapshot lists every maintenance not yet finished (incident.io's
    # summary drops one when it completes): a tracked maintenance missing from such a
    # snapshot has completed.
    lists_open_maintenances: bool = False


def parse_incidents(raw: bytes | str) -> IncidentsFeed:
    """Parse an incidents document; raise ``FeedMalformed`` with one short reason."""
    try:
        return IncidentsFeed.model_validate_json(raw)
    except ValidationError as exc:
        raise FeedMalformed(_first_problem(exc)) from exc


def parse_incidents_object(data: Any) -> IncidentsFeed:
    """Parse an already-decoded incidents document (used for saved and bundled files)."""
    try:
        return IncidentsFeed.model_validate(data)
    except ValidationError as exc:
        raise FeedMalformed(_first_problem(exc)) from exc


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"not a Statuspage incidents document: {where}: {first['msg']}{more}"
