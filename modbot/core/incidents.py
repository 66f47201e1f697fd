"""The functional core: feed snapshots in, incident events and records out.

Pure and synchronous: no I/O, no clock. The bot keeps, per incident, an
``IncidentView`` (exactly what a comment shows) and whether it is announced at all.
``diff`` compares what it knew with a new snapshot. The rules:

* The first snapshot is a baseline: incidents already resolved are recorded, never
  announced; incidents still open are announced.
* An incident missing from a snapshot is left as it was: the API lists only the
  most recent incidents, so absence means nothing. The one exception is a
  maintenance missing from a source that lists every unfinished one: it completed.
* Updates are identified by ``id`` and ordered by the time the page shows
  (``display_at``, which can be backdated), never by feed order.
* An event is produced only when the view changed, i.e. when a reader would see a
  difference; ``updated_at`` churn alone is silent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from modbot.core.feed import Incident, IncidentsFeed, IncidentUpdate
from modbot.core.records import (
    ComponentView,
    Event,
    EventKind,
    IncidentView,
    Tracked,
    UpdateView,
)

OPERATIONAL = "operational"
_PAREN = re.compile(r"\s*\([^()]*\)\s*$")
MAINTENANCE_DONE = "completed"


@dataclass(frozen=True)
class Diff:
    """The outcome of one snapshot: events to report and records to save."""

    events: tuple[Event, ...] = ()
    changed: Mapping[str, Tracked] = field(default_factory=dict)

    def events_for(self, incident_id: str) -> list[Event]:
        """The events of one incident, in order."""
        return [e for e in self.events if e.incident_id == incident_id]


# --- building views ---------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Unify newlines and trim, so re-serialised bodies do not look edited."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _update_view(update: IncidentUpdate) -> UpdateView:
    return UpdateView(
        id=update.id,
        status=update.status.strip().lower(),
        body=normalise_text(update.body),
        shown_at=update.shown_at,
    )


def _ordering_key(item: tuple[int, IncidentUpdate]) -> tuple[float, float, int]:
    # Feeds list updates newest first; among equal times, a later position is older.
    position, update = item
    shown = update.shown_at.timestamp() if update.shown_at else float("-inf")
    created = update.created_at.timestamp() if update.created_at else float("-inf")
    return (shown, created, -position)


def view_of(
    incident: Incident, update_view: Callable[[IncidentUpdate], UpdateView] | None = None
) -> IncidentView:
    """The view of one feed incident: updates deduplicated by id, ordered by time
    (``update_view`` makes each update's, a remembered one where it is given)."""
    make = update_view or _update_view
    unique: dict[str, tuple[int, IncidentUpdate]] = {}
    for position, update in enumerate(incident.incident_updates):
        unique.setdefault(update.id, (position, update))
    ordered = sorted(unique.values(), key=_ordering_key)
    components = tuple(
        ComponentView(name=c.name.strip(), status=c.status.strip().lower())
        for c in incident.components
        if c.name.strip() and not c.group
    )
    postmortem = normalise_text(incident.postmortem_body) if incident.postmortem_body else None
    return IncidentView(
        id=incident.id,
        name=normalise_text(incident.name) or incident.id,
        status=incident.status.strip().lower(),
        impact=incident.impact.strip().lower() or "none",
        shortlink=incident.shortlink or None,
        created_at=incident.created_at or incident.started_at,
        resolved_at=incident.resolved_at,
        components=components,
        updates=tuple(make(update) for _, update in ordered),
        postmortem_body=postmortem or None,
        maintenance=incident.maintenance,
        scheduled_for=incident.scheduled_for if incident.maintenance else None,
        scheduled_until=incident.scheduled_until if incident.maintenance else None,
    )


class ViewMemo:
    """``view_of``, remembered for an incident that is the very same object as in the
    last snapshot (a source's ``ParseCache`` hands back the same object for unchanged
    JSON), so an unchanged incident of a changed page costs nothing. Only the last
    snapshot's views are kept."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[Incident, IncidentView]] = {}
        # In a changed incident, so is each update that is the same object as before
        # (the ``ParseCache`` keeps them): by incident, then by update id. Kept by
        # incident so that forgetting the gone ones costs one entry each, not a pass
        # over every update of the page.
        self._updates: dict[str, _UpdateViews] = {}

    def views(self, incidents: Iterable[Incident]) -> list[IncidentView]:
        """The view of each incident (``incidents`` have distinct ids)."""
        kept: dict[str, tuple[Incident, IncidentView]] = {}
        updates: dict[str, _UpdateViews] = {}
        found = []
        for incident in incidents:
            known = self._last.get(incident.id)
            if known is not None and known[0] is incident:
                view = known[1]
                updates[incident.id] = self._updates.get(incident.id, {})
            else:
                now: _UpdateViews = {}
                before = self._updates.get(incident.id, {})
                view = view_of(incident, partial(_remembered, before, now))
                updates[incident.id] = now
            kept[incident.id] = (incident, view)
            found.append(view)
        self._last = kept
        self._updates = updates
        return found


_UpdateViews = dict[str, tuple[IncidentUpdate, UpdateView]]


def _remembered(before: _UpdateViews, now: _UpdateViews, update: IncidentUpdate) -> UpdateView:
    """The update's view from ``before`` if it is the same object, else made; kept in
    ``now``."""
    known = before.get(update.id)
    view = known[1] if known is not None and known[0] is update else _update_view(update)
    now[update.id] = (update, view)
    return view


# --- component filter -------------------------------------------------------------------


def name_matches(name: str, wanted: Collection[str]) -> bool:
    """A component's name, its group's ("Group - Name"), or either without a trailing
    note in brackets ("Claude API" for "Claude API (api.anthropic.com)")."""
    folded = name.strip().casefold()
    forms = {folded, folded.rsplit(" - ", 1)[-1], folded.split(" - ", 1)[0]}
    forms |= {_PAREN.sub("", form).strip() for form in forms}
    return not forms.isdisjoint(wanted)


def touches(incident: Incident, components: Collection[str]) -> bool:
    """True when the incident concerns one of ``components`` (empty: every incident).

    Some providers attach every component to each incident, so when any status says
    something is degraded, only degraded components count; when none does, being
    attached is enough.
    """
    if not components or not incident.components_known:
        return True  # an unknown set of components is not filtered: post rather than miss
    wanted = {c.strip().casefold() for c in components}
    groups = {c.name: c.group_name for c in incident.components if c.group_name}
    statuses: list[tuple[str, str | None]] = [(c.name, c.status) for c in incident.components]
    for update in incident.incident_updates:
        for affected in update.affected_components:
            statuses.append((affected.name, affected.new_status))
            statuses.append((affected.name, affected.old_status))
    # A component's group counts as the component (a filter may name "ChatGPT").
    statuses += [(groups[name], status) for name, status in statuses if name in groups]
    degraded = [name for name, status in statuses if status and status.lower() != OPERATIONAL]
    candidates = degraded if degraded else [name for name, _ in statuses]
    return any(name_matches(name, wanted) for name in candidates)


def _last_activity(incident: Incident) -> datetime | None:
    stamps = [incident.created_at, incident.updated_at, incident.resolved_at]
    stamps += [u.shown_at for u in incident.incident_updates]
    stamps += [u.updated_at for u in incident.incident_updates]
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def _should_announce(
    incident: Incident,
    view: IncidentView,
    before: Tracked | None,
    baseline_at: datetime | None,
    components: Collection[str],
) -> bool:
    if before is not None and before.announce:
        return True
    if not touches(incident, components):
        return False
    if incident.maintenance and view.status == "scheduled":
        return False  # a maintenance gets its comment when it starts, not when planned
    if view.is_open:
        return True
    # A resolved incident is news only if it is new to us and happened after the
    # baseline; one already resolved at the first start is never announced.
    if before is not None or baseline_at is None:
        return False
    activity = _last_activity(incident)
    return activity is not None and activity >= baseline_at


# --- diffing ----------------------------------------------------------------------------


def _status_events(old: IncidentView, new: IncidentView) -> list[Event]:
    if old.status == new.status:
        return []
    detail = f"{old.status or '?'} -> {new.status or '?'}"
    if new.status == "postmortem":
        kind = EventKind.POSTMORTEM_PUBLISHED
    elif old.is_open and not new.is_open:
        kind = EventKind.RESOLVED
    elif not old.is_open and new.is_open:
        kind = EventKind.REOPENED
    else:
        kind = EventKind.STATUS_CHANGED
    return [Event(kind, new.id, detail)]


def _update_events(old: IncidentView, new: IncidentView) -> list[Event]:
    before = {u.id: u for u in old.updates}
    after = {u.id: u for u in new.updates}
    events = []
    for update in new.updates:
        previous = before.get(update.id)
        if previous is None:
            events.append(Event(EventKind.UPDATE_ADDED, new.id, update.id))
        elif previous != update:
            events.append(Event(EventKind.UPDATE_EDITED, new.id, update.id))
    events += [
        Event(EventKind.UPDATE_REMOVED, new.id, u.id) for u in old.updates if u.id not in after
    ]
    return events


def _postmortem_events(old: IncidentView, new: IncidentView) -> list[Event]:
    if old.postmortem_body == new.postmortem_body or new.postmortem_body is None:
        return []
    if old.postmortem_body is None and new.status != "postmortem":
        return [Event(EventKind.POSTMORTEM_PUBLISHED, new.id)]
    return [Event(EventKind.POSTMORTEM_EDITED, new.id)]


def changes(old: IncidentView, new: IncidentView) -> list[Event]:
    """The events that turn ``old`` into ``new``; empty exactly when they are equal."""
    if old == new:
        return []
    events = _status_events(old, new) + _update_events(old, new) + _postmortem_events(old, new)
    if old.name != new.name:
        events.append(Event(EventKind.RENAMED, new.id))
    if old.impact != new.impact:
        events.append(Event(EventKind.IMPACT_CHANGED, new.id, f"{old.impact} -> {new.impact}"))
    if old.components != new.components:
        events.append(Event(EventKind.COMPONENTS_CHANGED, new.id))
    if not events:
        events.append(Event(EventKind.DETAILS_CHANGED, new.id))
    return events


def diff(
    known: Mapping[str, Tracked],
    feed: IncidentsFeed,
    *,
    baseline_at: datetime | None,
    components: Collection[str] = (),
    memo: ViewMemo | None = None,
) -> Diff:
    """Compare what the bot knew with a new snapshot.

    ``baseline_at`` is when the bot first read this page, or ``None`` when this
    snapshot is the first (the baseline itself). ``memo``: the watch's views of its
    last snapshot, which unchanged incidents keep.
    """
    events: list[Event] = []
    changed: dict[str, Tracked] = {}
    unique = list(_unique(feed.incidents))
    views = memo.views(unique) if memo is not None else [view_of(i) for i in unique]
    for incident, seen in zip(unique, views, strict=True):
        before = known.get(incident.id)
        view = seen
        if not incident.components_known and before is not None:
            # The source no longer says which components it touched: keep what it said.
            view = replace(view, components=before.view.components)
        announce = _should_announce(incident, view, before, baseline_at, components)
        after = Tracked(view=view, announce=announce)
        if before == after:
            continue
        changed[incident.id] = after
        if not announce:
            continue
        if before is None or not before.announce:
            events.append(Event(EventKind.OPENED, incident.id, view.status))
        else:
            events += changes(before.view, view)
    if feed.lists_open_maintenances:
        listed = {incident.id for incident in feed.incidents}
        for incident_id, before in known.items():
            if incident_id not in listed and before.view.maintenance and before.view.is_open:
                after = replace(before, view=replace(before.view, status=MAINTENANCE_DONE))
                changed[incident_id] = after
                if before.announce:
                    events += changes(before.view, after.view)
    return Diff(events=tuple(events), changed=changed)


def _unique(incidents: Iterable[Incident]) -> Iterable[Incident]:
    seen: set[str] = set()
    for incident in incidents:
        if incident.id not in seen:
            seen.add(incident.id)
            yield incident
