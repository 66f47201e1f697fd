"""Deciding what to send: post, edit, reconcile, point to a new thread, or wait.

Pure and synchronous: it reads the stored incidents and comment rows plus the current
megathread and the time, and returns the actions due now and when to look again.
The rules it keeps:

* One comment per (incident, thread). An incident gets a comment in the current
  megathread while it is open, or if it never got one anywhere (nothing is dropped).
* A ``posting`` row is an intent whose outcome is unknown: it is reconciled (the bot
  looks for its own comment by marker) before anything is posted again, in whatever
  thread it was meant for. While unsettled it counts as the incident's comment.
* Edits carry the latest rendered body, never one already delivered, and keep a
  minimum gap per comment, so bursts coalesce into a few edits.
* After the megathread changes, an open incident's old comment gets one last edit
  pointing to the new comment, once that exists.
* Removed comments are never re-posted; comments in closed threads are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modbot.store import CommentRow, IncidentRow

PENDING = "pending"
POSTING = "posting"
POSTED = "posted"
MOVED = "moved"
REMOVED = "removed"
CLOSED = "closed"
HOMED = frozenset({POSTING, POSTED, MOVED, REMOVED})  # the incident has (had) a comment there


@dataclass(frozen=True)
class Post:
    """Create the incident's comment in ``thread_id``."""

    incident_id: str
    thread_id: str


@dataclass(frozen=True)
class Reconcile:
    """Look for the bot's own comment before posting again."""

    incident_id: str
    thread_id: str


@dataclass(frozen=True)
class Edit:
    """Replace the body of an existing comment with the latest render."""

    incident_id: str
    thread_id: str
    comment_id: str


@dataclass(frozen=True)
class Point:
    """Last edit of an old-thread comment: link to the comment in the new thread."""

    incident_id: str
    thread_id: str
    comment_id: str
    new_permalink: str


Action = Post | Reconcile | Edit | Point


@dataclass(frozen=True)
class Plan:
    """Actions due now, and the earliest time something else becomes due."""

    actions: tuple[Action, ...]
    wake_at: float | None


@dataclass
class _Round:
    """One planning pass: the time, the edit gap, and what it has found so far."""

    now: float
    gap: float
    actions: list[Action] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)

    def at(self, ready_at: float, action: Action) -> None:
        """Do ``action`` now if it is ready, else remember when it will be."""
        if ready_at > self.now:
            self.wakes.append(ready_at)
        else:
            self.actions.append(action)

    def after_gap(self, row: CommentRow, action: Action) -> None:
        """Like ``at``, keeping the minimum gap since the comment's last delivery."""
        self.at(max(row.not_before, (row.delivered_at or 0.0) + self.gap), action)


def plan(
    incidents: Sequence[IncidentRow],
    comments: Sequence[CommentRow],
    *,
    thread_id: str | None,
    now: float,
    min_edit_interval: float,
) -> Plan:
    """Everything due for delivery at ``now`` in megathread ``thread_id`` (None: none)."""
    planning = _Round(now=now, gap=min_edit_interval)
    by_incident: dict[str, dict[str, CommentRow]] = {}
    for row in comments:
        by_incident.setdefault(row.incident_id, {})[row.thread_id] = row
    for incident in incidents:
        if incident.rendered_hash is not None:
            rows = by_incident.get(incident.incident_id, {})
            _plan_incident(incident, rows, thread_id, planning)
    future = [t for t in planning.wakes if t > now]
    return Plan(tuple(planning.actions), min(future) if future else None)


def needs_home(incident: IncidentRow, rows: dict[str, CommentRow], thread_id: str) -> bool:
    """True when the incident should have a comment in ``thread_id``."""
    if thread_id in rows:
        return rows[thread_id].state != CLOSED
    if incident.is_open:
        return True
    return not any(row.state in HOMED for row in rows.values())


def _plan_incident(
    incident: IncidentRow,
    rows: dict[str, CommentRow],
    thread_id: str | None,
    planning: _Round,
) -> None:
    home = rows.get(thread_id) if thread_id is not None else None
    unposted = home is None or home.state == PENDING
    if thread_id is not None and unposted and needs_home(incident, rows, thread_id):
        ready_at = home.not_before if home else 0.0
        planning.at(ready_at, Post(incident.incident_id, thread_id))
    for row in rows.values():
        if row.state == POSTING:
            # An unknown outcome is settled in the thread it was meant for, wherever
            # the megathread is now: the comment may exist there.
            planning.at(row.not_before, Reconcile(incident.incident_id, row.thread_id))
        elif row.state == POSTED and row.comment_id is not None:
            _plan_posted(incident, row, home, thread_id, planning)


def _plan_posted(
    incident: IncidentRow,
    row: CommentRow,
    home: CommentRow | None,
    thread_id: str | None,
    planning: _Round,
) -> None:
    assert row.comment_id is not None
    if row.thread_id != thread_id and _moving(incident, home, thread_id):
        # The comment in the new thread carries the news; the old one only gets its
        # pointer, once the new comment exists.
        if home is not None and home.state == POSTED and home.permalink:
            point = Point(incident.incident_id, row.thread_id, row.comment_id, home.permalink)
            planning.after_gap(row, point)
    elif row.delivered_hash != incident.rendered_hash:
        planning.after_gap(row, Edit(incident.incident_id, row.thread_id, row.comment_id))


def _moving(incident: IncidentRow, home: CommentRow | None, thread_id: str | None) -> bool:
    """True while an open incident is getting (or has) its comment in a newer thread."""
    if thread_id is None or not incident.is_open:
        return False
    return home is None or home.state in (PENDING, POSTING, POSTED)
