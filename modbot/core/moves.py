"""A status page served by another platform: the same incidents under new ids.

Vendors move their pages (OpenAI to incident.io, DeepSeek to FlashDuty, OpenRouter to
Datadog, all in 2026), and the new platform gives the incidents it took over new ids.
The bot keeps the id it first knew an incident by: its rows and its comment's hidden
marker carry that id, so a comment is never posted twice and the look for a comment
by its marker after a crash still finds it. The new id becomes an *alias* of it.

The rules, pure and synchronous:

* ``match``: an incident new to the bot is the same as one it knows that the page no
  longer lists (one still open, or one closed because the page moved) when either id
  appears in a link of the other, or else when their names are the same (case, spaces
  and punctuation aside) and they started within ``MATCH_WINDOW`` of each other.
* ``translate``: a snapshot with its aliased incidents under the ids the bot keeps,
  each with the updates of the old platform that the new one does not list (matched by
  their words), so a comment loses none of its history.
* ``closed_by_move``: an incident open before the move that the new platform does not
  list is closed with an update saying the page moved, never marked resolved: only its
  source can say that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from modbot.core.feed import Incident, IncidentsFeed, IncidentUpdate
from modbot.core.records import IncidentView, Tracked, UpdateView

MATCH_WINDOW = timedelta(minutes=30)
# Shorter ids (a Datadog page's numbers, a test's) are too likely to be part of any
# address: they are matched by name and start only.
MIN_LINKED_ID = 6
MOVED = "moved"  # the status of an incident whose page moved to a platform not listing it
PLATFORM_NAMES = {
    "statuspage": "Atlassian Statuspage",
    "incidentio": "incident.io",
    "gcloud": "Google Cloud Service Health",
    "atom": "an Atom or RSS feed",
    "betterstack": "Better Stack",
    "datadog": "Datadog status pages",
}
_URL = re.compile(r"https?://[^\s<>()\[\]\"']+")
_WORDS = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Alias:
    """A new id for an incident the bot already knows (after its page moved)."""

    alias_id: str  # the id the page gives the incident now
    incident_id: str  # the id the bot keeps: its rows and its comment's marker
    before: IncidentView  # the incident as the bot knew it when it was adopted


def platform_name(kind: str) -> str:
    """How a comment and the log name a platform."""
    return PLATFORM_NAMES.get(kind, kind)


# --- matching ---------------------------------------------------------------------------


def normalised_name(name: str) -> str:
    """A name as matching compares it: case, spacing and punctuation left out."""
    return " ".join(_WORDS.sub(" ", name.casefold()).split())


def _links(shortlink: str | None, bodies: Iterable[str]) -> str:
    texts = [shortlink or ""]
    for body in bodies:
        texts += _URL.findall(body)
    return " ".join(texts)


def _names_id(links: str, ident: str) -> bool:
    """True when ``ident`` is a whole segment of one of the ``links`` (an incident page's
    address, ``.../incidents/<id>``), not merely a part of a word."""
    if len(ident) < MIN_LINKED_ID:
        return False
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(ident)}(?![A-Za-z0-9])", links) is not None


def _distance(a: datetime | None, b: datetime | None) -> timedelta | None:
    if a is None or b is None:
        return None
    return abs(a - b)


def match(
    candidates: Mapping[str, Tracked],
    fresh: Sequence[Incident],
    *,
    window: timedelta = MATCH_WINDOW,
) -> dict[str, str]:
    """Which of the ``fresh`` incidents (new to the bot) are ``candidates`` (known, and no
    longer listed under their own ids) under a new id: new id -> the id the bot keeps.

    A link naming the other's id is the surest sign and wins; then the same name with
    the closest start within ``window``. Each candidate is taken once.
    """
    scored: list[tuple[int, timedelta, str, str]] = []
    for incident in fresh:
        new_links = _links(incident.shortlink, (u.body for u in incident.incident_updates))
        new_name = normalised_name(incident.name)
        started = incident.created_at or incident.started_at
        for kept, tracked in candidates.items():
            old = tracked.view
            old_links = _links(old.shortlink, (u.body for u in old.updates))
            if _names_id(new_links, kept) or _names_id(old_links, incident.id):
                scored.append((0, timedelta(0), incident.id, kept))
                continue
            distance = _distance(started, old.created_at)
            if (
                new_name
                and new_name == normalised_name(old.name)
                and distance is not None
                and distance <= window
            ):
                scored.append((1, distance, incident.id, kept))
    found: dict[str, str] = {}
    for _, _, new_id, kept in sorted(scored):
        if new_id not in found and kept not in found.values():
            found[new_id] = kept
    return found


# --- translating ------------------------------------------------------------------------


def _text_key(body: str) -> str:
    """An update's words, as two platforms writing the same text agree on them (one in
    Markdown, one plain)."""
    return _WORDS.sub("", body.casefold())


def _carried(update: UpdateView) -> IncidentUpdate:
    return IncidentUpdate(
        id=update.id,
        status=update.status,
        body=update.body,
        display_at=update.shown_at,
        created_at=update.shown_at,
    )


def adopted(incident: Incident, alias: Alias) -> Incident:
    """``incident`` under the id the bot keeps, with the old platform's updates that the
    new one does not list (a move's own line aside), started at the earlier start."""
    said = {_text_key(u.body) for u in incident.incident_updates}
    carried = [
        _carried(u)
        for u in alias.before.updates
        if u.status != MOVED and _text_key(u.body) not in said
    ]
    starts = [t for t in (incident.created_at, alias.before.created_at) if t is not None]
    return incident.model_copy(
        update={
            "id": alias.incident_id,
            "incident_updates": [*incident.incident_updates, *carried],
            "created_at": min(starts) if starts else None,
        }
    )


def translate(feed: IncidentsFeed, aliases: Mapping[str, Alias]) -> IncidentsFeed:
    """The snapshot with every aliased incident under the id the bot keeps for it. Where
    the page lists both ids (a platform that kept the old incident too), the old id's
    own entry is the one read."""
    if not aliases or not any(i.id in aliases for i in feed.incidents):
        return feed
    listed = {i.id for i in feed.incidents}
    incidents = [
        adopted(i, aliases[i.id]) if i.id in aliases else i
        for i in feed.incidents
        if i.id not in aliases or aliases[i.id].incident_id not in listed
    ]
    return feed.model_copy(update={"incidents": incidents})


# --- closing what the new platform does not list -----------------------------------------


def moved_text(before: str, after: str, page_url: str) -> str:
    """The update that closes an incident its page no longer lists after a move."""
    return (
        f"This status page moved from {platform_name(before)} to {platform_name(after)}, "
        "which does not list this incident, so this comment is no longer updated. "
        f"Its current state is on the page: {page_url}"
    )


def closed_by_move(
    tracked: Tracked, *, before: str, after: str, page_url: str, at: datetime
) -> Tracked:
    """``tracked`` closed because its page moved and no longer lists it: not resolved
    (its ``resolved_at`` stays unknown), with a last update that says why."""
    view = tracked.view
    line = UpdateView(
        id=f"{MOVED}-{after}",
        status=MOVED,
        body=moved_text(before, after, page_url),
        shown_at=at,
    )
    kept = tuple(u for u in view.updates if u.id != line.id)
    return replace(tracked, view=replace(view, status=MOVED, updates=(*kept, line)))
