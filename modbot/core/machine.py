"""The delivery state machine: every comment the bot posts, incidents and notices alike.

Pure and synchronous. A delivery row is one subject (an incident or a notice) in one
thread. Its states, and the steps between them, are written down once, in
``TRANSITIONS``; the functions below are the only way rows change state, and each
returns a new row with ``version`` one higher. The store writes a step only if the
row still has the version it was read at, so of two actors that read the same row
(two processes, or a re-run after a crash) exactly one takes the step and the other
sees its write refused.

The rules, in words:

* A row is born ``pending`` by a *requester* (the poller for a new incident, a
  moderator command for a notice), usually with no thread yet. Requesters never
  post; they only create rows, change what a row should show (``wanted_hash``),
  or ask for a forced edit.
* Only the *deliverer* talks to Reddit. It claims a row before creating a comment
  (``pending -> posting``, the intent, committed first), so a crash after the claim
  leaves a row that says "the outcome is unknown: look before posting again".
* An unknown outcome is settled by looking for the bot's own marker in that thread:
  found means adopt it, absent after the listing-lag grace means post again.
* A pending row whose comment the bot finds already there (its state file was lost,
  or this is the first start on a new one) adopts that comment instead of posting.
* Posting again after an unknown outcome leaves a *doubt*: the lost post may still
  land, late (Reddit stores some writes long after the request gave up, and a deposed
  leader may wake and send one). While the doubt lasts (``heal_at`` is set), the bot
  looks for copies by marker at growing gaps (the grace, then as long again as has
  passed since the re-post, at most ``HEAL_CAP`` apart, for ``DOUBT_SPAN``); the oldest
  copy is kept and the row follows it.
* ``moved``, ``removed``, ``closed`` and ``failed`` are final.

::

    pending --claim--> posting --answered / found--> posted --pointed--> moved
    pending --adopted (its comment is already there)--> posted
    posting --refused / absent--> pending        posting --rejected--> failed
    posted --gone--> removed     posted --thread closed--> closed
    pending --dropped--> closed  posted --looked (for late copies)--> posted
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from modbot.core.records import DeliveryRow, PostedComment

MAX_BACKOFF = 900.0
RECONCILE_SOON = 2.0
# Looking for late copies of a post whose answer was lost. Reddit's late writes land
# seconds to a minute after the request gave up; a leader frozen mid-call may wake
# hours later. Gaps double from the grace up to an hour, for six hours: about a dozen
# listing calls per thread and doubt, next to 5,400 calls an hour of budget.
HEAL_CAP = 3600.0
DOUBT_SPAN = 6 * 3600.0
MIN_LOOK_GAP = 1.0  # even with no grace, at most one look a second


class State(StrEnum):
    """Where one delivery stands."""

    PENDING = "pending"  # wanted; not being posted (waiting for a thread, or a retry)
    POSTING = "posting"  # intent committed; Reddit's answer not recorded
    POSTED = "posted"  # the comment exists; edits keep it current
    MOVED = "moved"  # an old thread's comment now points to the new one
    REMOVED = "removed"  # a moderator removed or deleted it: never posted again
    CLOSED = "closed"  # its thread takes no more edits, or it is no longer needed
    FAILED = "failed"  # Reddit refused a notice for good; the moderator was told


class Step(StrEnum):
    """Everything that can happen to a delivery."""

    CLAIM = "claim"
    ADOPTED = "adopted"
    ANSWERED = "answered"
    UNKNOWN = "unknown outcome"
    REFUSED = "refused"
    REJECTED = "rejected"
    FOUND = "found"
    NOT_YET = "not found yet"
    ABSENT = "absent"
    EDITED = "edited"
    EDIT_FAILED = "edit failed"
    POINTED = "pointed"
    GONE = "gone"
    THREAD_CLOSED = "thread closed"
    DROPPED = "dropped"
    REPLACED = "replaced by the oldest"
    FORCED = "forced"
    DRIFTED = "changed behind the bot's back"
    LOOKED = "looked for late copies"


class Actor(StrEnum):
    """Who may take a step."""

    DELIVERER = "deliverer"  # the one owner of Reddit calls
    REQUESTER = "requester"  # the poller, the inbox, the CLI


@dataclass(frozen=True)
class Transition:
    """The state a step leads to, and the one actor allowed to take it."""

    to: State
    by: Actor


_D, _R = Actor.DELIVERER, Actor.REQUESTER
TRANSITIONS: dict[tuple[State, Step], Transition] = {
    (State.PENDING, Step.CLAIM): Transition(State.POSTING, _D),
    (State.PENDING, Step.ADOPTED): Transition(State.POSTED, _D),
    (State.PENDING, Step.DROPPED): Transition(State.CLOSED, _D),
    (State.POSTING, Step.ANSWERED): Transition(State.POSTED, _D),
    (State.POSTING, Step.UNKNOWN): Transition(State.POSTING, _D),
    (State.POSTING, Step.REFUSED): Transition(State.PENDING, _D),
    (State.POSTING, Step.REJECTED): Transition(State.FAILED, _D),
    (State.POSTING, Step.FOUND): Transition(State.POSTED, _D),
    (State.POSTING, Step.NOT_YET): Transition(State.POSTING, _D),
    (State.POSTING, Step.ABSENT): Transition(State.PENDING, _D),
    (State.POSTED, Step.EDITED): Transition(State.POSTED, _D),
    (State.POSTED, Step.EDIT_FAILED): Transition(State.POSTED, _D),
    (State.POSTED, Step.POINTED): Transition(State.MOVED, _D),
    (State.POSTED, Step.GONE): Transition(State.REMOVED, _D),
    (State.POSTED, Step.THREAD_CLOSED): Transition(State.CLOSED, _D),
    (State.POSTED, Step.REPLACED): Transition(State.POSTED, _D),
    (State.POSTED, Step.DRIFTED): Transition(State.POSTED, _D),
    (State.POSTED, Step.FORCED): Transition(State.POSTED, _R),
    (State.POSTED, Step.LOOKED): Transition(State.POSTED, _D),
}
FINAL = frozenset({State.MOVED, State.REMOVED, State.CLOSED, State.FAILED})
LIVE = frozenset({State.POSTING, State.POSTED})  # a comment exists, or may


class IllegalStep(Exception):
    """A step the table does not allow from the row's state, or by that actor."""


def allowed(state: str, step: Step, actor: Actor = Actor.DELIVERER) -> bool:
    """True when ``actor`` may take ``step`` from ``state``."""
    found = TRANSITIONS.get((State(state), step))
    return found is not None and found.by is actor


def _take(row: DeliveryRow, step: Step, actor: Actor, **changes: object) -> DeliveryRow:
    found = TRANSITIONS.get((State(row.state), step))
    if found is None or found.by is not actor:
        raise IllegalStep(f"{actor} cannot take '{step}' from '{row.state}' ({row.kind} {row.key})")
    return replace(row, state=found.to.value, version=row.version + 1, **changes)  # type: ignore[arg-type]


def is_waiting(row: DeliveryRow) -> bool:
    """True while the row waits for delivery: unposted, unsettled or out of date."""
    if row.state in (State.PENDING, State.POSTING):
        return True
    return row.state == State.POSTED and row.delivered_hash != row.wanted_hash


def is_active(row: DeliveryRow) -> bool:
    """True while the row needs the deliverer: waiting, or in doubt (a late copy of its
    comment may still land).

    The store indexes exactly these rows, so a delivery round reads them and the rows
    of open incidents, never the settled history.
    """
    return is_waiting(row) or (row.state == State.POSTED and row.heal_at is not None)


def next_look(row: DeliveryRow, now: float, grace: float) -> float | None:
    """When to look for late copies again after a look at ``now``; None once the doubt
    is over. The gap is as long as has passed since the re-post (``intent_at``), so
    looks come at grace, 2x, 4x ... after it, never less than the grace nor more than
    ``HEAL_CAP`` apart."""
    since = row.intent_at if row.intent_at is not None else now
    age = now - since
    if age >= DOUBT_SPAN:
        return None
    return now + min(HEAL_CAP, max(grace, age, MIN_LOOK_GAP))


def backoff(attempts: int, base: float = 5.0) -> float:
    """Seconds to wait after ``attempts`` failures in a row (capped)."""
    return float(min(MAX_BACKOFF, base * 2 ** max(attempts - 1, 0)))


# --- the deliverer's steps -------------------------------------------------------------------


def claim(row: DeliveryRow, thread_id: str, now: float, hold: float = 0.0) -> DeliveryRow:
    """The intent: this row is about to be posted in ``thread_id``.

    Other actors leave a claimed row alone for ``hold`` seconds (the call is in flight);
    after that, it is an unknown outcome to reconcile.
    """
    return _take(
        row,
        Step.CLAIM,
        _D,
        thread_id=thread_id,
        intent_at=now,
        attempts=row.attempts + 1,
        not_before=now + hold,
    )


def adopted(
    row: DeliveryRow, comment: PostedComment, thread_id: str, body_hash: str | None, now: float
) -> DeliveryRow:
    """The comment already exists (found by its marker): take it instead of posting."""
    return _take(
        row,
        Step.ADOPTED,
        _D,
        thread_id=thread_id,
        comment_id=comment.id,
        permalink=comment.permalink,
        delivered_hash=body_hash,
        delivered_at=min(comment.created_utc, now),
        last_error=None,
    )


def answered(row: DeliveryRow, comment: PostedComment, body_hash: str, now: float) -> DeliveryRow:
    """Reddit returned the new comment."""
    return _take(
        row,
        Step.ANSWERED,
        _D,
        comment_id=comment.id,
        permalink=comment.permalink,
        delivered_hash=body_hash,
        delivered_at=now,
        attempts=0,
        not_before=0.0,
        last_error=None,
    )


def unknown(row: DeliveryRow, error: str, now: float) -> DeliveryRow:
    """No answer (timeout, 5xx, dropped connection): look for the comment soon."""
    return _take(row, Step.UNKNOWN, _D, last_error=error, not_before=now + RECONCILE_SOON)


def refused(row: DeliveryRow, error: str, wait: float, now: float) -> DeliveryRow:
    """Reddit refused and created nothing: try again later (in whatever thread is current)."""
    return _take(row, Step.REFUSED, _D, last_error=error, not_before=now + wait)


def rejected(row: DeliveryRow, error: str) -> DeliveryRow:
    """A notice Reddit will not take (the moderator is told); never retried."""
    return _take(row, Step.REJECTED, _D, last_error=error)


def found(
    row: DeliveryRow, comment: PostedComment, body_hash: str | None, now: float
) -> DeliveryRow:
    """The bot's own comment for this row was found: adopt it.

    ``delivered_at`` is Reddit's clock only when it is not in our future, so a skew
    never holds the next edit back.
    """
    return _take(
        row,
        Step.FOUND,
        _D,
        comment_id=comment.id,
        permalink=comment.permalink,
        delivered_hash=body_hash,
        delivered_at=min(comment.created_utc, now),
        attempts=0,
        not_before=0.0,
        last_error=None,
    )


def not_yet(row: DeliveryRow, until: float) -> DeliveryRow:
    """Not found, but listings may still lag: look again at ``until``."""
    return _take(row, Step.NOT_YET, _D, not_before=until)


def absent(row: DeliveryRow, now: float, grace: float) -> DeliveryRow:
    """Not found after the listing-lag grace: the post did not land (yet); post again,
    and look for a late copy a grace after that, and on (see ``next_look``)."""
    return _take(row, Step.ABSENT, _D, not_before=0.0, heal_at=now + max(grace, MIN_LOOK_GAP))


def edited(row: DeliveryRow, body_hash: str, now: float) -> DeliveryRow:
    """An edit landed."""
    return _take(
        row,
        Step.EDITED,
        _D,
        delivered_hash=body_hash,
        delivered_at=now,
        attempts=0,
        not_before=0.0,
        last_error=None,
    )


def edit_failed(row: DeliveryRow, error: str, wait: float, now: float) -> DeliveryRow:
    """An edit failed; try again after ``wait``."""
    return _take(
        row,
        Step.EDIT_FAILED,
        _D,
        attempts=row.attempts + 1,
        last_error=error,
        not_before=now + wait,
    )


def pointed(row: DeliveryRow, now: float) -> DeliveryRow:
    """The old thread's comment now links to the new one."""
    return _take(row, Step.POINTED, _D, delivered_at=now, last_error=None)


def gone(row: DeliveryRow, why: str) -> DeliveryRow:
    """A moderator removed or deleted the comment: leave it alone for good."""
    return _take(row, Step.GONE, _D, last_error=why)


def thread_closed(row: DeliveryRow, why: str) -> DeliveryRow:
    """The comment's thread is locked, archived or gone."""
    return _take(row, Step.THREAD_CLOSED, _D, last_error=why)


def dropped(row: DeliveryRow, why: str) -> DeliveryRow:
    """A pending comment that is no longer needed (its incident is served elsewhere)."""
    return _take(row, Step.DROPPED, _D, last_error=why)


def replaced(
    row: DeliveryRow, comment: PostedComment, body_hash: str | None, now: float
) -> DeliveryRow:
    """Two comments carry this row's marker: the row follows the oldest, which is kept."""
    return _take(
        row,
        Step.REPLACED,
        _D,
        comment_id=comment.id,
        permalink=comment.permalink,
        delivered_hash=body_hash,
        delivered_at=min(comment.created_utc, now),
    )


def looked(row: DeliveryRow, heal_at: float | None) -> DeliveryRow:
    """The thread was searched for late copies (and any extra deleted): look again at
    ``heal_at``, or never (None: the doubt is over)."""
    return _take(row, Step.LOOKED, _D, heal_at=heal_at)


# --- the requester's step ---------------------------------------------------------------------


def drifted(row: DeliveryRow, live_hash: str) -> DeliveryRow:
    """The comment on Reddit is not what the bot last delivered (a deposed leader's late
    edit landed after the new leader's): record what is there, so an edit follows."""
    return _take(row, Step.DRIFTED, _D, delivered_hash=live_hash, not_before=0.0)


def forced(row: DeliveryRow) -> DeliveryRow:
    """A moderator wants the comment edited even though it looks current."""
    return _take(row, Step.FORCED, _R, delivered_hash=None, not_before=0.0)
