"""Deciding what the deliverer does next: post, reconcile, edit, point, or drop.

Pure and synchronous. Input: the subjects that may need work (open incidents, and
whatever the active delivery rows are about), their delivery rows, the current
megathread and the time. Output: the actions due now and when to look again. The
rules it keeps:

* One comment per subject and thread. An open incident gets a comment in the current
  megathread; a closed incident or a notice gets one where its pending row is placed
  (or the current megathread, if it has none), and only if it has none anywhere else.
  A subject with a home thread of its own (a reply to a reader's post) gets its one
  comment there, whatever the megathread is.
* A ``posting`` row is an intent whose outcome is unknown: it is reconciled in the
  thread it was meant for, whatever the megathread is now, before anything is posted
  there again.
* Edits carry the latest body, never one already delivered, and keep a minimum gap
  per comment, so bursts coalesce into a few edits.
* After the megathread changes, an open incident's old comment gets one last edit
  pointing to the new comment, once that exists.
* A posted row in doubt (a lost post was followed by another) gets its thread searched
  for late copies when its ``heal_at`` comes; rows of one thread share one search, and
  a row is searched before it is edited, so the edit goes to the copy that is kept.
* Final rows (moved, removed, closed, failed) are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modbot.core.machine import State
from modbot.core.records import DeliveryRow, Kind, Subject

SubjectKey = tuple[Kind, str]


@dataclass(frozen=True)
class Post:
    """Create the subject's comment in ``thread_id`` (``row`` None: start a new row)."""

    kind: Kind
    key: str
    thread_id: str
    row: DeliveryRow | None


@dataclass(frozen=True)
class Reconcile:
    """Look for the bot's own comment before posting again."""

    row: DeliveryRow


@dataclass(frozen=True)
class Edit:
    """Replace the body of an existing comment with the latest one."""

    row: DeliveryRow


@dataclass(frozen=True)
class Point:
    """Last edit of an old thread's comment: link to the comment in the new thread."""

    row: DeliveryRow
    new_permalink: str


@dataclass(frozen=True)
class Drop:
    """A pending row nobody needs any more."""

    row: DeliveryRow
    why: str


@dataclass(frozen=True)
class Heal:
    """Search one thread for late copies of these rows' comments: keep the oldest of
    each, delete the rest."""

    thread_id: str
    rows: tuple[DeliveryRow, ...]


Action = Heal | Post | Reconcile | Edit | Point | Drop


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
    thread_id: str | None
    actions: list[Action] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    heals: dict[str, list[DeliveryRow]] = field(default_factory=dict)

    def heal_due(self, row: DeliveryRow) -> bool:
        """True when the row's thread is to be searched for late copies now (the
        search is queued); otherwise remember when it will be, if ever."""
        if row.heal_at is None or row.state != State.POSTED or row.thread_id is None:
            return False
        if row.heal_at > self.now:
            self.wakes.append(row.heal_at)
            return False
        self.heals.setdefault(row.thread_id, []).append(row)
        return True

    def at(self, ready_at: float, action: Action) -> None:
        """Do ``action`` now if it is ready, else remember when it will be."""
        if ready_at > self.now:
            self.wakes.append(ready_at)
        else:
            self.actions.append(action)

    def after_gap(self, row: DeliveryRow, action: Action) -> None:
        """Like ``at``, keeping the minimum gap since the comment's last delivery."""
        self.at(max(row.not_before, (row.delivered_at or 0.0) + self.gap), action)


def plan(
    subjects: Mapping[SubjectKey, Subject],
    rows: Sequence[DeliveryRow],
    *,
    thread_id: str | None,
    now: float,
    min_edit_interval: float,
) -> Plan:
    """Everything due at ``now`` with ``thread_id`` as the megathread (None: there is none)."""
    planning = _Round(now=now, gap=min_edit_interval, thread_id=thread_id)
    grouped: dict[SubjectKey, list[DeliveryRow]] = {key: [] for key in subjects}
    for row in rows:
        if (row.kind, row.key) in grouped:
            grouped[(row.kind, row.key)].append(row)
    for key, subject_rows in grouped.items():
        subject = subjects[key]
        ordered = sorted(subject_rows, key=lambda r: r.id)
        searched = {r.id for r in ordered if planning.heal_due(r)}
        if subject.wanted_hash is not None:
            _plan_subject(subject, ordered, planning, searched)
    heals = [Heal(thread, tuple(rows)) for thread, rows in sorted(planning.heals.items())]
    future = [t for t in planning.wakes if t > now]
    return Plan((*heals, *planning.actions), min(future) if future else None)


def _moving(subject: Subject) -> bool:
    """Open incidents follow the megathread; closed ones and notices stay where they are."""
    return subject.kind is Kind.INCIDENT and subject.is_open


def _plan_subject(
    subject: Subject, rows: list[DeliveryRow], planning: _Round, searched: set[int]
) -> None:
    thread_id = _thread_of(subject, planning)
    home = next((r for r in rows if r.thread_id is not None and r.thread_id == thread_id), None)
    for row in rows:
        if row.state == State.POSTING:
            # An unknown outcome is settled in the thread it was meant for, wherever
            # the megathread is now: the comment may exist there.
            planning.at(row.not_before, Reconcile(row))
        elif row.state == State.POSTED and row.comment_id is not None and row.id not in searched:
            # (A row being searched for late copies is edited next pass, once it
            # follows the copy that is kept.)
            _plan_posted(subject, row, home, planning)
    _plan_pending(subject, rows, home, planning)


def _thread_of(subject: Subject, planning: _Round) -> str | None:
    """Where the subject's comment belongs now: its own thread, else the megathread."""
    return subject.home if subject.home is not None else planning.thread_id


def _plan_pending(
    subject: Subject, rows: list[DeliveryRow], home: DeliveryRow | None, planning: _Round
) -> None:
    """Post where a comment is wanted; drop pending rows that are not."""
    pending = [r for r in rows if r.state == State.PENDING]
    served = [r for r in rows if r.state not in (State.PENDING, State.CLOSED, State.FAILED)]
    free = home is None or home.state == State.PENDING  # room in the current thread
    # Open incidents want a comment in the current thread; closed incidents and
    # notices only on request (a pending row), and only once.
    wanted = free and (_moving(subject) or (bool(pending) and not served))
    thread_id = _thread_of(subject, planning)
    if wanted and thread_id is not None:
        chosen = home if home is not None else (pending[-1] if pending else None)
        if chosen is None:
            planning.actions.append(Post(subject.kind, subject.key, thread_id, None))
        else:
            planning.at(chosen.not_before, Post(subject.kind, subject.key, thread_id, chosen))
            pending = [r for r in pending if r is not chosen]
    elif wanted:
        # No megathread now: keep the newest pending row waiting for one.
        pending = pending[:-1]
    for row in pending:
        planning.actions.append(Drop(row, "another comment serves this"))


def _plan_posted(
    subject: Subject, row: DeliveryRow, home: DeliveryRow | None, planning: _Round
) -> None:
    moving = _moving(subject) and planning.thread_id is not None
    if moving and row.thread_id != planning.thread_id and _has_new_home(home):
        # The comment in the new thread carries the news; the old one only gets its
        # pointer, once the new comment exists.
        if home is not None and home.state == State.POSTED and home.permalink:
            planning.after_gap(row, Point(row, home.permalink))
    elif row.delivered_hash != subject.wanted_hash:
        planning.after_gap(row, Edit(row))


def _has_new_home(home: DeliveryRow | None) -> bool:
    """True while the incident is getting (or has) its comment in the current thread."""
    return home is None or home.state in (State.PENDING, State.POSTING, State.POSTED)
