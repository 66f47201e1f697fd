"""The state machine of everything the bot sends: comments, replies and messages alike.

Pure and synchronous. A delivery row is one subject (an incident or a notice) in one
thread; a message row is one message that is not a megathread comment (a reply to a
moderator's command, a private message about a wiki edit). Their states, and the steps
between them, are written down once, in ``TRANSITIONS`` and ``MESSAGE_TRANSITIONS``,
two tables of one form; the functions below are the only way rows change state, and
each returns a new row with ``version`` one higher. The store writes a step only if
the row still has the version it was read at (``store.step``, for both), so of two
actors that read the same row (two processes, or a re-run after a crash) exactly one
takes the step and the other sees its write refused.

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
* A message is the same, without threads or edits: its intent (``pending ->
  sending``) is committed before it is sent; a lost answer is settled by looking for
  its marker where the channel puts it (the bot's sent box, its comment history):
  found means sent, absent after the grace means send again. Reddit refusing it for
  good (a deleted account, a user who blocks the bot) makes it ``failed``. Only a
  copy that can be deleted (a comment) leaves a doubt after sending again; a private
  message cannot be unsent.

::

    pending --claim--> posting --answered / found--> posted --pointed--> moved
    pending --adopted (its comment is already there)--> posted
    posting --refused / absent--> pending        posting --rejected--> failed
    posted --gone--> removed     posted --thread closed--> closed
    pending --dropped--> closed  posted --looked (for late copies) / replaced--> posted

    messages:
    pending --claim--> sending --answered / found--> sent
    pending --adopted (it went out before the state was lost)--> sent
    sending --refused / absent--> pending        sending --rejected--> failed
    sent --looked (for late copies) / replaced--> sent
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Generic, TypeVar

from modbot.core.records import Channel, DeliveryRow, MessageRow, PostedComment

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


class MessageState(StrEnum):
    """Where one message stands."""

    PENDING = "pending"  # to be sent (now, or after a wait Reddit asked for)
    SENDING = "sending"  # intent committed; Reddit's answer not recorded
    SENT = "sent"  # it went out (answered, or found by its marker)
    FAILED = "failed"  # Reddit refused it for good; logged, never sent again


class Step(StrEnum):
    """Everything that can happen to a delivery or a message."""

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

    # Whoever talks to Reddit for the row: the deliverer for comments, the inbox's
    # outbox for messages.
    DELIVERER = "deliverer"
    REQUESTER = "requester"  # the poller, the inbox, the CLI: they only create rows


S = TypeVar("S", State, MessageState)
Row = TypeVar("Row", DeliveryRow, MessageRow)


@dataclass(frozen=True)
class Transition(Generic[S]):
    """The state a step leads to, and the one actor allowed to take it."""

    to: S
    by: Actor


_D, _R = Actor.DELIVERER, Actor.REQUESTER
TRANSITIONS: dict[tuple[State, Step], Transition[State]] = {
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

_M = MessageState
MESSAGE_TRANSITIONS: dict[tuple[MessageState, Step], Transition[MessageState]] = {
    (_M.PENDING, Step.CLAIM): Transition(_M.SENDING, _D),
    (_M.PENDING, Step.ADOPTED): Transition(_M.SENT, _D),
    (_M.SENDING, Step.ANSWERED): Transition(_M.SENT, _D),
    (_M.SENDING, Step.UNKNOWN): Transition(_M.SENDING, _D),
    (_M.SENDING, Step.REFUSED): Transition(_M.PENDING, _D),
    (_M.SENDING, Step.REJECTED): Transition(_M.FAILED, _D),
    (_M.SENDING, Step.FOUND): Transition(_M.SENT, _D),
    (_M.SENDING, Step.NOT_YET): Transition(_M.SENDING, _D),
    (_M.SENDING, Step.ABSENT): Transition(_M.PENDING, _D),
    (_M.SENT, Step.REPLACED): Transition(_M.SENT, _D),
    (_M.SENT, Step.LOOKED): Transition(_M.SENT, _D),
}
MESSAGE_FINAL = frozenset({MessageState.FAILED})  # and ``sent`` once no doubt is left
# The channels where a late copy can be deleted (a comment); a message cannot be unsent.
REMOVABLE = frozenset({Channel.COMMENT_REPLY})


class IllegalStep(Exception):
    """A step the table does not allow from the row's state, or by that actor."""


def _transition(
    row: DeliveryRow | MessageRow, step: Step
) -> Transition[State] | Transition[MessageState] | None:
    if isinstance(row, MessageRow):
        return MESSAGE_TRANSITIONS.get((MessageState(row.state), step))
    return TRANSITIONS.get((State(row.state), step))


def allowed(state: str, step: Step, actor: Actor = Actor.DELIVERER) -> bool:
    """True when ``actor`` may take ``step`` from a delivery's ``state``."""
    found = TRANSITIONS.get((State(state), step))
    return found is not None and found.by is actor


def _take(row: Row, step: Step, actor: Actor, **changes: object) -> Row:
    found = _transition(row, step)
    if found is None or found.by is not actor:
        raise IllegalStep(f"{actor} cannot take '{step}' from '{row.state}' ({_named(row)})")
    return replace(row, state=found.to.value, version=row.version + 1, **changes)  # type: ignore[arg-type]


def _named(row: DeliveryRow | MessageRow) -> str:
    return f"message {row.key}" if isinstance(row, MessageRow) else f"{row.kind} {row.key}"


def is_waiting(row: DeliveryRow) -> bool:
    """True while the row waits for delivery: unposted, unsettled or out of date."""
    if row.state in (State.PENDING, State.POSTING):
        return True
    return row.state == State.POSTED and row.delivered_hash != row.wanted_hash


def is_active(row: DeliveryRow | MessageRow) -> bool:
    """True while the row needs the deliverer (or, for a message, the outbox): waiting,
    or in doubt (a late copy may still land).

    The store indexes exactly these rows, so a round reads them (and the rows of open
    incidents), never the settled history.
    """
    if isinstance(row, MessageRow):
        unsettled = row.state in (MessageState.PENDING, MessageState.SENDING)
        return unsettled or (row.state == MessageState.SENT and row.heal_at is not None)
    return is_waiting(row) or (row.state == State.POSTED and row.heal_at is not None)


def next_look(row: DeliveryRow | MessageRow, now: float, grace: float) -> float | None:
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


def unknown(row: Row, error: str, now: float) -> Row:
    """No answer (timeout, 5xx, dropped connection): look for the comment (or message)
    soon."""
    return _take(row, Step.UNKNOWN, _D, last_error=error, not_before=now + RECONCILE_SOON)


def refused(row: Row, error: str, wait: float, now: float) -> Row:
    """Reddit refused and created nothing: try again later (a comment in whatever thread
    is current)."""
    return _take(row, Step.REFUSED, _D, last_error=error, not_before=now + wait)


def rejected(row: Row, error: str) -> Row:
    """A notice or a message Reddit will not take (said once); never retried."""
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


def not_yet(row: Row, until: float) -> Row:
    """Not found, but listings may still lag: look again at ``until``."""
    return _take(row, Step.NOT_YET, _D, not_before=until)


def absent(row: Row, now: float, grace: float) -> Row:
    """Not found after the listing-lag grace: the post did not land (yet); post again,
    and look for a late copy a grace after that, and on (see ``next_look``). A message
    that cannot be unsent leaves no doubt: nothing could be done about a copy."""
    heal_at: float | None = now + max(grace, MIN_LOOK_GAP)
    if isinstance(row, MessageRow) and row.channel not in REMOVABLE:
        heal_at = None
    return _take(row, Step.ABSENT, _D, not_before=0.0, heal_at=heal_at)


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


def looked(row: Row, heal_at: float | None) -> Row:
    """The thread (or the bot's history) was searched for late copies (and any extra
    deleted): look again at ``heal_at``, or never (None: the doubt is over)."""
    return _take(row, Step.LOOKED, _D, heal_at=heal_at)


# --- the outbox's steps (messages) ---------------------------------------------------------


def claim_message(row: MessageRow, now: float, hold: float = 0.0) -> MessageRow:
    """The intent: this message is about to be sent. Others leave it alone for ``hold``
    seconds (the call is in flight); after that, it is an unknown outcome to settle."""
    return _take(
        row, Step.CLAIM, _D, intent_at=now, attempts=row.attempts + 1, not_before=now + hold
    )


def message_answered(row: MessageRow, sent_id: str | None, now: float) -> MessageRow:
    """Reddit took the message (and said its id, where it does)."""
    return _take(
        row,
        Step.ANSWERED,
        _D,
        sent_id=sent_id,
        sent_at=now,
        attempts=0,
        not_before=0.0,
        last_error=None,
    )


def message_adopted(row: MessageRow, copy: PostedComment, now: float) -> MessageRow:
    """The message is out already (the state that said so was lost): take it, not send it."""
    return _take(
        row,
        Step.ADOPTED,
        _D,
        sent_id=copy.id,
        sent_at=min(copy.created_utc, now),
        last_error=None,
    )


def message_found(row: MessageRow, copy: PostedComment, now: float) -> MessageRow:
    """The message was found by its marker where its channel puts it: it went out."""
    return _take(
        row,
        Step.FOUND,
        _D,
        sent_id=copy.id,
        sent_at=min(copy.created_utc, now),
        attempts=0,
        not_before=0.0,
        last_error=None,
    )


def message_replaced(row: MessageRow, copy: PostedComment) -> MessageRow:
    """Two copies carry the message's marker: the row follows the oldest, which is kept."""
    return _take(row, Step.REPLACED, _D, sent_id=copy.id)


# --- the requester's step ---------------------------------------------------------------------


def drifted(row: DeliveryRow, live_hash: str) -> DeliveryRow:
    """The comment on Reddit is not what the bot last delivered (a deposed leader's late
    edit landed after the new leader's): record what is there, so an edit follows."""
    return _take(row, Step.DRIFTED, _D, delivered_hash=live_hash, not_before=0.0)


def forced(row: DeliveryRow) -> DeliveryRow:
    """A moderator wants the comment edited even though it looks current."""
    return _take(row, Step.FORCED, _R, delivered_hash=None, not_before=0.0)
