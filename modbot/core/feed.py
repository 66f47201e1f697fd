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
from modbot.core.markdown import sound
from modbot.errors import FeedMalformed

T = TypeVar("T")
# What an update shows when its source published no text for it: never an empty line.
NO_TEXT = "(no text published)"


# Every text a feed gives is made ``sound`` as it is read: JSON may write a lone
# surrogate ("\ud800"), which Reddit, SQLite and PostgreSQL cannot take.


def _text(value: object) -> str:
    return sound(value) if isinstance(value, str) else ""


def _optional_text(value: object) -> str | None:
    return sound(value) if isinstance(value, str) else None


def _identifier(value: object) -> str:
    """An id: text as it is (a number is not an id), its lone surrogates replaced."""
    if not isinstance(value, str):
        raise ValueError("an id is text")
    return sound(value)


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
    try:
        every: list[Any] = handler(value)  # the usual case at once; one by one if one fails
    except ValidationError:
        pass
    else:
        return every
    kept: list[Any] = []
    for item in value:
        try:
            kept += handler([item])
        except ValidationError:
            continue
    return kept


Text = Annotated[str, PlainValidator(_text)]
Identifier = Annotated[str, PlainValidator(_identifier)]
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

    id: Identifier
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

    id: Identifier
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


class ParseCache:
    """What the incidents of a source's last document parsed into, with the JSON each
    came from: an incident whose JSON is unchanged is not validated again (it is the
    very same object, which ``incidents.ViewMemo`` also knows), and in a changed one,
    neither is an update whose JSON is unchanged. A page lists up to 50 incidents on
    every poll, and a change is usually one new update of one of them.

    Unchanged means equal as decoded JSON, which a comparison tells at once (a hash of
    each would need it serialised again). Only the last document's entries are kept.
    """

    def __init__(self) -> None:
        # id -> (its JSON, the incident, its updates by id with their JSON)
        self._last: dict[str, _Parsed] = {}

    def parse(self, items: list[Any]) -> tuple[list[Incident], list[str]]:
        """The incidents of ``items`` and why entries were skipped (as without a cache)."""
        incidents: list[Incident] = []
        skipped: list[str] = []
        parsed: dict[str, _Parsed] = {}
        for item in items:
            key = item.get("id") if isinstance(item, dict) else None
            known = self._last.get(key) if isinstance(key, str) else None
            if known is not None and known[0] == item:
                found: _Parsed | None = known
            else:
                found = _parse(item, known[2] if known is not None else {})
            if found is None:
                skipped.append(_unusable(item))
                continue
            incidents.append(found[1])
            parsed.setdefault(found[1].id, found)
        self._last = parsed
        return incidents, skipped


# An incident's JSON, the incident, and its updates' JSON and updates by update id.
_Parsed = tuple[Any, Incident, dict[str, tuple[Any, IncidentUpdate]]]


def _parse(item: Any, known: dict[str, tuple[Any, IncidentUpdate]]) -> _Parsed | None:
    """One incident, with the updates whose JSON is in ``known`` taken from there."""
    raw = item.get("incident_updates") if isinstance(item, dict) else None
    if not isinstance(raw, list):
        incident = _validated(item)
        return None if incident is None else (item, incident, {})
    updates: list[IncidentUpdate] = []
    pairs: dict[str, tuple[Any, IncidentUpdate]] = {}
    for entry in raw:
        ident = entry.get("id") if isinstance(entry, dict) else None
        hit = known.get(ident) if isinstance(ident, str) else None
        if hit is not None and hit[0] == entry:
            update = hit[1]
        else:
            try:
                update = IncidentUpdate.model_validate(entry)
            except ValidationError:
                continue  # as ``Items``: an entry that is not an update is left out
        updates.append(update)
        pairs.setdefault(update.id, (entry, update))
    incident = _validated({**item, "incident_updates": []})
    if incident is None:
        return None
    return item, incident.model_copy(update={"incident_updates": updates}), pairs


def _validated(item: Any) -> Incident | None:
    try:
        return Incident.model_validate(item)
    except ValidationError:
        return None


def parse_incidents(raw: bytes | str, cache: ParseCache | None = None) -> IncidentsFeed:
    """Parse an incidents document; raise ``FeedMalformed`` with one short reason."""
    try:
        data = decode(raw)
    except FeedMalformed as exc:
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: {exc}") from exc
    return parse_incidents_object(data, cache)


def decode(raw: bytes | str) -> Any:
    """A JSON document; ``FeedMalformed`` when it is not JSON (nested too deep included).
    A value that is bad in itself costs that value, not the document: bytes that are not
    UTF-8 are U+FFFD, and an integer too long for Python to read (over 4,300 digits) is
    infinity, which no field takes."""
    try:
        if isinstance(raw, bytes):
            raw = raw.decode(json.detect_encoding(raw), "replace")
        try:
            return json.loads(raw)
        except ValueError as exc:
            if "digits" not in str(exc):
                raise
            return json.loads(raw, parse_int=_integer)
    except ValueError as exc:
        raise FeedMalformed(f"not JSON ({exc})") from exc
    except RecursionError:
        # from None: a RecursionError carries a thousand frames of the JSON decoder.
        raise FeedMalformed("not JSON (nested too deep)") from None


def _integer(digits: str) -> float:
    """A JSON integer, or infinity (with its sign) for one too long to convert."""
    if len(digits.lstrip("-")) <= MAX_DIGITS:
        return int(digits)
    return float("-inf") if digits.startswith("-") else float("inf")


MAX_DIGITS = 4000  # Python refuses to read integers of more than 4,300 digits
NOT_A_DOCUMENT = "not a Statuspage incidents document"


def parse_incidents_object(data: Any, cache: ParseCache | None = None) -> IncidentsFeed:
    """Parse an already-decoded incidents document; each incident on its own, so that
    one without a usable id is skipped (and named in ``skipped``), not the document.
    With ``cache`` (the source's), what did not change since its last document is not
    validated again."""
    if not isinstance(data, dict):
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: {_kind(data)}, not an object")
    items = data.get("incidents")
    if not isinstance(items, list):
        raise FeedMalformed(f"{NOT_A_DOCUMENT}: no incidents list")
    if cache is not None:
        incidents, skipped = cache.parse(items)
        return IncidentsFeed(page=data.get("page"), incidents=incidents, skipped=tuple(skipped))
    incidents = []
    skipped = []
    for item in items:
        incident = _validated(item)
        if incident is None:
            skipped.append(_unusable(item))
        else:
            incidents.append(incident)
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
