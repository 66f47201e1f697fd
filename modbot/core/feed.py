"""Typed models of the Statuspage v2 JSON (``/api/v2/incidents.json``), parsed leniently.

Pages hosted elsewhere (incident.io's compatible API) omit keys and add enum values,
so every field but an incident's and an update's ``id`` is optional, unknown keys are
ignored, and statuses stay plain strings. Times are normalised to aware UTC.

A bad value costs its field, never the incident, and never the other incidents: a
time that is not a usable time is ``None`` (``moments``), text of the wrong type is
empty, a list item that is not what it should be is left out, and an incident without a
usable ``id`` is skipped and named in ``IncidentsFeed.skipped`` for its source to say
once. Only a document that is not an incidents document at all is ``FeedMalformed``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from modbot.core import moments
from modbot.errors import FeedMalformed

T = TypeVar("T")
# What an update shows when its source published no text for it: never an empty line.
NO_TEXT = "(no text published)"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _or(default: object) -> WrapValidator:
    """Validate as usual; a value that does not validate becomes ``default``."""

    def validate(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError:
            return default

    return WrapValidator(validate)


def _each(value: object, handler: ValidatorFunctionWrapHandler) -> list[Any]:
    """The items of a list that validate; not a list (or ``null``): empty."""
    if not isinstance(value, list):
        return []
    kept: list[Any] = []
    for item in value:
        try:
            kept += handler([item])
        except ValidationError:
            continue
    return kept


Text = Annotated[str, PlainValidator(_text)]
OptionalText = Annotated[str | None, PlainValidator(_optional_text)]
Time = Annotated[datetime | None, PlainValidator(moments.parse)]
Flag = Annotated[bool, _or(False)]
Items = Annotated[list[T], WrapValidator(_each)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AffectedComponent(_Model):
    """A component attached to an update; ``old == new`` is common and not a change."""

    code: OptionalText = None
    name: Text = ""
    old_status: OptionalText = None
    new_status: OptionalText = None


class IncidentUpdate(_Model):
    """One update of an incident; its body can be edited long after it was posted."""

    id: str
    status: Text = ""
    body: Text = ""
    created_at: Time = None
    updated_at: Time = None
    display_at: Time = None
    affected_components: Items[AffectedComponent] = []

    @property
    def shown_at(self) -> datetime | None:
        """The time the page shows for this update (``display_at`` may be backdated)."""
        return self.display_at or self.created_at or self.updated_at


class Component(_Model):
    """A component with its current status."""

    id: OptionalText = None
    name: Text = ""
    status: Text = ""
    group: Flag = False
    # The group the page shows it under ("ChatGPT" for OpenAI's "Login"), where the source
    # knows it: a component filter may name the group.
    group_name: Text = ""


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
    shortlink: OptionalText = None
    incident_updates: Items[IncidentUpdate] = []
    components: Items[Component] = []
    # Only subscriber webhooks and some self-hosted pages carry these; the public
    # JSON does not, and then the comment links to the incident page instead.
    postmortem_body: OptionalText = None
    postmortem_published_at: Time = None
    # Maintenances only: the window the provider announced.
    scheduled_for: Time = None
    scheduled_until: Time = None
    # Set by sources, never read from a page: False when the source cannot tell which
    # components an incident touches (incident.io once an incident is no longer
    # ongoing); a scheduled maintenance rather than an incident.
    components_known: Annotated[bool, _or(True)] = True
    maintenance: Flag = False


class Page(_Model):
    """The page an incidents document belongs to."""

    id: OptionalText = None
    name: Text = ""
    url: OptionalText = None


class IncidentsFeed(_Model):
    """An ``incidents.json`` (or ``summary.json``) document."""

    page: Annotated[Page | None, _or(None)] = None
    incidents: list[Incident]
    # Set by sources whose snapshot lists every maintenance not yet finished (incident.io's
    # summary drops one when it completes): a tracked maintenance missing from such a
    # snapshot has completed.
    lists_open_maintenances: Flag = False
    # Entries of ``incidents`` left out for want of a usable id: why, one short line each.
    skipped: tuple[str, ...] = ()


def parse_incidents(raw: bytes | str) -> IncidentsFeed:
    """Parse an incidents document; raise ``FeedMalformed`` with one short reason."""
    try:
        data = decode(raw)
    except FeedMalformed as exc:
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: {exc}") from exc
    return parse_incidents_object(data)


def decode(raw: bytes | str) -> Any:
    """A JSON document; ``FeedMalformed`` when it is not JSON (nested too deep included)."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise FeedMalformed(f"not JSON ({exc})") from exc
    except RecursionError:
        # from None: a RecursionError carries a thousand frames of the JSON decoder.
        raise FeedMalformed("not JSON (nested too deep)") from None


NOT_A_DOCUMENT = "not a Statuspage incidents document"


def parse_incidents_object(data: Any) -> IncidentsFeed:
    """Parse an already-decoded incidents document; each incident on its own, so that
    one without a usable id is skipped (and named in ``skipped``), not the document."""
    if not isinstance(data, dict):
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: {_kind(data)}, not an object")
    items = data.get("incidents")
    if not isinstance(items, list):
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: no incidents list")
    incidents: list[Incident] = []
    skipped: list[str] = []
    for item in items:
        try:
            incidents.append(Incident.model_validate(item))
        except ValidationError:
            skipped.append(_unusable(item))
    # Only the page is read from the rest: the other fields are the sources' to set.
    return IncidentsFeed(page=data.get("page"), incidents=incidents, skipped=tuple(skipped))


def _unusable(item: object) -> str:
    """Why an entry of ``incidents`` is not an incident (only the id can make it so)."""
    if not isinstance(item, dict):
        return f"an entry that is {_kind(item)}, not an incident"
    if "id" not in item or item["id"] is None:
        return "an incident without an id"
    return f"an incident whose id is {_kind(item['id'])}, not text"


def _kind(value: object) -> str:
    kinds: dict[type, str] = {list: "a list", dict: "an object", str: "text", bool: "true or false"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return kinds.get(type(value), "null" if value is None else type(value).__name__)
