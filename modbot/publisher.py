"""Carrying out delivery plans: the intent/result protocol around each Reddit call.

``Target`` is the narrow interface to wherever comments go: Reddit (``reddit.py``) or
the terminal in dry-run (``DryRunTarget``). ``Publisher`` asks ``delivery.plan`` what is
due, and for each action records its intent in the store before the call and its
result after, so a crash at any point leaves a row that says what to do next:

* ``pending`` -> claim (``posting``, committed) -> post -> ``posted`` with the comment id.
* A post whose outcome is unknown stays ``posting`` and is reconciled: the bot looks
  for its own comment by marker; found, it adopts it (and deletes any duplicates,
  keeping the oldest); not found after the listing-lag grace, it posts again.
* A definite refusal goes back to ``pending`` with a ``not_before`` to wait for.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from modbot import delivery, markdown
from modbot.delivery import Action, Edit, Point, Post, Reconcile
from modbot.errors import (
    CommandError,
    CommentGone,
    NoMegathread,
    RedditError,
    RedditRejected,
    RedditUnavailable,
    StoreError,
    ThreadUnavailable,
)
from modbot.render import digest
from modbot.store import CommentRow, NoteRow, Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 900.0
RECONCILE_SOON = 2.0
MEGATHREAD_KEY = "megathread:{page}"
REDDIT_OK_KEY = "reddit_ok"
LAST_ERROR_KEY = "last_error"
_UNSET = object()
NOTE_POSTING = "posting"
NOTE_FAILED = "failed"


@dataclass(frozen=True)
class Thread:
    """A megathread the bot can comment in."""

    id: str
    title: str
    permalink: str


@dataclass(frozen=True)
class PostedComment:
    """A comment of the bot's, as Reddit reports it."""

    id: str
    permalink: str
    created_utc: float
    body: str = ""
    marker: str = ""  # the marker id found in the body, e.g. "inc-abc123"


Checkpoint = Callable[[str], None]
CRASH_POINTS = ("after-intent", "after-answer", "after-edit", "after-command", "after-reply")


def no_checkpoint(name: str) -> None:
    """The default: named crash points do nothing."""


def crash_at(point: str | None) -> Checkpoint:
    """A checkpoint that SIGKILLs this process at ``point`` (for the crash tests only).

    The points are the moments where a crash matters for exactly-once delivery: after
    an intent is committed, after Reddit answered a post but before the id is saved,
    after an edit landed but before it is recorded, after a command ran but before
    its reply, after the reply but before the message is marked read.
    """
    if not point:
        return no_checkpoint

    def checkpoint(name: str) -> None:
        if name == point:
            log.warning("crash point %s reached: killing the process (MODBOT_CRASH_AT)", name)
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


class Target(Protocol):
    """Where comments go. Implementations raise the ``RedditError`` family."""

    async def current_thread(self) -> Thread | None:
        """The megathread to post in now, or ``None`` when there is none.

        Raises a ``RedditError`` when that cannot be known right now.
        """
        ...

    def thread_suspect(self) -> None:
        """Something failed in the thread: look it up again before the next post."""
        ...

    async def post(self, thread: Thread, body: str) -> PostedComment:
        """Create a top-level comment."""
        ...

    async def edit(self, comment_id: str, body: str) -> None:
        """Replace a comment's body."""
        ...

    async def find(self, thread: Thread, marker_id: str | None) -> list[PostedComment]:
        """The bot's own comments in ``thread`` with this marker (None: any incident's)."""
        ...

    async def delete(self, comment_id: str) -> None:
        """Delete one of the bot's comments."""
        ...

    async def removed(self, comment_ids: list[str]) -> set[str]:
        """Which of these comments were deleted or removed by a moderator."""
        ...


def backoff(attempts: int, base: float = 5.0) -> float:
    """Seconds to wait after ``attempts`` failures in a row (capped)."""
    return float(min(MAX_BACKOFF, base * 2 ** max(attempts - 1, 0)))


def pointer_body(new_permalink: str, incident_id: str) -> str:
    """The last edit of an old-thread comment after the megathread changed."""
    return (
        "This incident is now tracked in the current megathread: "
        f"{new_permalink}\n\n{markdown.marker('inc', incident_id)}"
    )


@dataclass
class DeliveryStats:
    """Counts of what the publisher did, for logs and benchmarks."""

    posts: int = 0
    edits: int = 0
    reconciles: int = 0
    duplicates_deleted: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, error: Exception) -> None:
        """Count one failure by its kind."""
        kind = type(error).__name__
        self.failures[kind] = self.failures.get(kind, 0) + 1


class Publisher:
    """Executes delivery plans for one status page against one target."""

    def __init__(
        self,
        store: Store,
        target: Target,
        *,
        page: str,
        min_edit_interval: float,
        reconcile_grace: float,
        verify_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.page = page
        self.min_edit_interval = min_edit_interval
        self.reconcile_grace = reconcile_grace
        self.verify_interval = verify_interval
        self.clock = clock
        self.checkpoint: Checkpoint = checkpoint or no_checkpoint
        self.stats = DeliveryStats()
        self._verified_at = clock()
        self._heal_at: float | None = clock()
        self._recorded_thread: Thread | object | None = _UNSET

    async def deliver_due(
        self,
        *,
        paused: bool = False,
        only: Collection[str] | None = None,
        max_rounds: int = 20,
    ) -> float | None:
        """Run every due action (for ``only`` these incidents, if given).

        Returns when something next becomes due, or ``None``.
        """
        if paused:
            return None
        try:
            thread = await self.target.current_thread()
        except RedditError as exc:
            log.warning("cannot tell which megathread to use: %s", exc)
            self._reddit_failed(exc)
            thread = None
        else:
            self._record_thread(thread)
        await self._verify_comments()
        if thread is not None and self._heal_at is not None and self._heal_at <= self.clock():
            await self._heal(thread)
        await self._reconcile_notes()
        for _ in range(max_rounds):
            incidents = self.store.deliverable(self.page)
            if only is not None:
                incidents = [i for i in incidents if i.incident_id in only]
            planned = delivery.plan(
                incidents,
                self.store.comments(self.page, [i.incident_id for i in incidents]),
                thread_id=thread.id if thread else None,
                now=self.clock(),
                min_edit_interval=self.min_edit_interval,
            )
            if not planned.actions:
                return planned.wake_at
            for action in planned.actions:
                await self._execute(action, thread)
        return self.clock() + 1.0

    def _record_thread(self, thread: Thread | None) -> None:
        """Remember the megathread in use, for ``modbot status``."""
        if thread == self._recorded_thread and self._recorded_thread is not _UNSET:
            return
        self._recorded_thread = thread
        value = {"at": self.clock(), **(thread.__dict__ if thread else {"id": None})}
        self.store.put(MEGATHREAD_KEY.format(page=self.page), json.dumps(value))

    def _reddit_ok(self) -> None:
        self.store.put(REDDIT_OK_KEY, json.dumps({"at": self.clock()}))

    def _reddit_failed(self, error: RedditError) -> None:
        value = {"at": self.clock(), "kind": type(error).__name__, "message": str(error)}
        self.store.put(LAST_ERROR_KEY, json.dumps(value))

    async def _verify_comments(self) -> None:
        """Every ``verify_interval`` s, notice comments a moderator removed (one call)."""
        now = self.clock()
        if now - self._verified_at < self.verify_interval:
            return
        self._verified_at = now
        # Open incidents are always deliverable, so this skips settled history.
        open_ids = {i.incident_id for i in self.store.deliverable(self.page) if i.is_open}
        rows = [
            r
            for r in self.store.comments(self.page, open_ids)
            if r.state == delivery.POSTED and r.comment_id and r.incident_id in open_ids
        ]
        if not rows:
            return
        try:
            gone = await self.target.removed([r.comment_id for r in rows if r.comment_id])
        except RedditError as exc:
            log.warning("could not check the bot's comments: %s", exc)
            return
        for row in rows:
            if row.comment_id in gone:
                log.warning(
                    "incident %s: comment %s was removed or deleted; not re-posting it",
                    row.incident_id,
                    row.comment_id,
                )
                self.store.update_comment(
                    self.page,
                    row.incident_id,
                    row.thread_id,
                    state=delivery.REMOVED,
                    last_error="removed or deleted on Reddit",
                )

    async def _heal(self, thread: Thread) -> None:
        """Delete duplicate comments (same marker) in ``thread``, keeping the oldest.

        Runs at start-up and again a grace period after any post that followed an
        unknown outcome: the only ways a second comment can exist.
        """
        try:
            comments = await self.target.find(thread, None)
        except RedditError as exc:
            log.warning("could not look for duplicate comments: %s", exc)
            self._heal_at = self.clock() + self.reconcile_grace
            return
        self._heal_at = None
        groups: dict[str, list[PostedComment]] = {}
        for comment in comments:
            groups.setdefault(comment.marker, []).append(comment)
        for incident in self.store.announced(self.page):
            group = groups.get(markdown.marker_id("inc", incident.incident_id), [])
            if len(group) < 2:
                continue
            row = self.store.comment(self.page, incident.incident_id, thread.id)
            if row is not None and row.state in (delivery.POSTING, delivery.POSTED):
                await self._adopt(Reconcile(incident.incident_id, thread.id), group)
            else:
                await self._delete_duplicates(incident.incident_id, group)

    async def _execute(self, action: Action, thread: Thread | None) -> None:
        try:
            if isinstance(action, Post) and thread is not None:
                await self._post(action, thread)
            elif isinstance(action, Reconcile):
                await self._reconcile(action, thread)
            elif isinstance(action, Edit):
                await self._edit(action)
            elif isinstance(action, Point):
                await self._point(action)
        except StoreError:
            raise
        except RedditError as exc:
            self.stats.failed(exc)
            self._reddit_failed(exc)
            self._failed(action, exc)
        else:
            self._reddit_ok()

    # --- posting --------------------------------------------------------------------
    async def _post(self, action: Post, thread: Thread) -> None:
        incident = self.store.incident(self.page, action.incident_id)
        if incident is None or incident.rendered is None or incident.rendered_hash is None:
            return
        now = self.clock()
        if not self.store.claim_post(
            self.page, action.incident_id, thread.id, intent_hash=incident.rendered_hash, now=now
        ):
            return
        self.checkpoint("after-intent")
        try:
            posted = await self.target.post(thread, incident.rendered)
        except RedditUnavailable as exc:
            log.warning(
                "posting incident %s: outcome unknown (%s); will look for the comment before "
                "posting again",
                action.incident_id,
                exc,
            )
            self._update(action, last_error=str(exc), not_before=self.clock() + RECONCILE_SOON)
            raise
        self.checkpoint("after-answer")
        self.stats.posts += 1
        row = self.store.comment(self.page, action.incident_id, thread.id)
        if row is not None and row.attempts > 1:
            self._heal_at = self.clock() + self.reconcile_grace
        self._update(
            action,
            state=delivery.POSTED,
            comment_id=posted.id,
            permalink=posted.permalink,
            delivered_hash=incident.rendered_hash,
            delivered_at=self.clock(),
            attempts=0,
            not_before=0.0,
            last_error=None,
        )
        log.info("posted incident %s as comment %s", action.incident_id, posted.id)

    async def _reconcile(self, action: Reconcile, current: Thread | None) -> None:
        row = self.store.comment(self.page, action.incident_id, action.thread_id)
        if row is None or row.state != delivery.POSTING:
            return
        self.stats.reconciles += 1
        where = Thread(id=action.thread_id, title="", permalink="")
        found = await self.target.find(where, markdown.marker_id("inc", action.incident_id))
        now = self.clock()
        if found:
            await self._adopt(action, found)
            return
        intent_at = row.intent_at or 0.0
        if now - intent_at < self.reconcile_grace:
            self._update(action, not_before=intent_at + self.reconcile_grace)
        elif current is not None and current.id == action.thread_id:
            log.info("incident %s: earlier post did not land; posting again", action.incident_id)
            self._update(action, state=delivery.PENDING, not_before=0.0)
        else:
            # It never landed in a thread that is no longer the megathread: the
            # incident gets its comment in the current one instead.
            log.info("incident %s: earlier post did not land in an old thread", action.incident_id)
            self._update(action, state=delivery.CLOSED, last_error="post did not land")

    async def _adopt(self, action: Reconcile, found: Sequence[PostedComment]) -> None:
        keep = await self._delete_duplicates(action.incident_id, found)
        log.info("incident %s: found own comment %s; adopting it", action.incident_id, keep.id)
        self._update(
            action,
            state=delivery.POSTED,
            comment_id=keep.id,
            permalink=keep.permalink,
            delivered_hash=digest(keep.body) if keep.body else None,
            # Reddit's clock, not ours: never let a skew put the last delivery in our
            # future, which would hold the next edit back by the difference.
            delivered_at=min(keep.created_utc, self.clock()),
            attempts=0,
            not_before=0.0,
            last_error=None,
        )

    async def _delete_duplicates(
        self, incident_id: str, found: Sequence[PostedComment]
    ) -> PostedComment:
        """Keep the oldest comment, delete the others; return the one kept."""
        keep, *extra = sorted(found, key=lambda c: (c.created_utc, c.id))
        for duplicate in extra:
            log.warning(
                "incident %s: duplicate comment %s found; keeping the oldest (%s), deleting it",
                incident_id,
                duplicate.id,
                keep.id,
            )
            await self.target.delete(duplicate.id)
            self.stats.duplicates_deleted += 1
        return keep

    # --- editing --------------------------------------------------------------------
    async def _edit(self, action: Edit) -> None:
        incident = self.store.incident(self.page, action.incident_id)
        if incident is None or incident.rendered is None:
            return
        await self.target.edit(action.comment_id, incident.rendered)
        self.checkpoint("after-edit")
        self.stats.edits += 1
        self._update(
            action,
            delivered_hash=incident.rendered_hash,
            delivered_at=self.clock(),
            attempts=0,
            not_before=0.0,
            last_error=None,
        )
        log.info("edited comment %s for incident %s", action.comment_id, action.incident_id)

    async def _point(self, action: Point) -> None:
        await self.target.edit(
            action.comment_id, pointer_body(action.new_permalink, action.incident_id)
        )
        self.stats.edits += 1
        self._update(action, state=delivery.MOVED, delivered_at=self.clock(), last_error=None)
        log.info(
            "incident %s moved to the new megathread; old comment points there", action.incident_id
        )

    # --- notices --------------------------------------------------------------------
    async def post_note(self, note_id: str) -> NoteRow:
        """Post a recorded notice into the current megathread, exactly once.

        Raises ``NoMegathread``, or a ``RedditError`` when Reddit refused (the notice is
        then ``failed``) or the outcome is unknown (it stays ``posting`` and the running
        bot reconciles it, re-posting only if it did not land).
        """
        note = self._note(note_id)
        if note.state == NOTE_POSTING:
            await self._reconcile_note(note, force=True)
            return self._note(note_id)
        if note.state != delivery.PENDING:
            return note
        # A notice already promised to the moderator (its first post was attempted)
        # waits for a megathread; a new one fails at once, and the moderator is told.
        waiting = delivery.PENDING if note.intent_at is not None else NOTE_FAILED
        try:
            thread = await self.target.current_thread()
        except RedditError as exc:
            self.store.update_note(self.page, note_id, state=waiting, last_error=str(exc))
            raise NoMegathread(f"cannot find the megathread right now ({exc})") from None
        if thread is None:
            self.store.update_note(self.page, note_id, state=waiting, last_error="no megathread")
            raise NoMegathread("no usable pinned megathread right now")
        if not self.store.claim_note(self.page, note_id, thread.id, now=self.clock()):
            return self._note(note_id)
        self.checkpoint("after-intent")
        try:
            posted = await self.target.post(thread, note.body)
        except RedditUnavailable as exc:
            self._reddit_failed(exc)
            self.store.update_note(self.page, note_id, last_error=str(exc))
            raise
        except RedditError as exc:
            self._reddit_failed(exc)
            self.store.update_note(self.page, note_id, state=NOTE_FAILED, last_error=str(exc))
            raise
        self.checkpoint("after-answer")
        self._reddit_ok()
        self._note_posted(note_id, posted)
        return self._note(note_id)

    async def edit_note(self, note_id: str, body: str, text: str) -> NoteRow:
        """Replace a posted notice's body."""
        note = self._note(note_id)
        if note.state != delivery.POSTED or note.comment_id is None:
            raise CommandError(f"notice {note_id} was never posted, so it cannot be edited")
        await self.target.edit(note.comment_id, body)
        self._reddit_ok()
        self.store.update_note(
            self.page,
            note_id,
            text=text,
            body=body,
            body_hash=digest(body),
            delivered_at=self.clock(),
            last_error=None,
        )
        return self._note(note_id)

    async def _reconcile_notes(self) -> None:
        """Finish notices whose post had an unknown outcome (after the listing grace),
        and post those that did not land once there is a megathread again."""
        for note in self.store.notes(self.page, (NOTE_POSTING, delivery.PENDING)):
            try:
                if note.state == NOTE_POSTING:
                    await self._reconcile_note(note, force=False)
                elif note.state == delivery.PENDING and note.intent_at is not None:
                    await self.post_note(note.note_id)
            except (RedditError, NoMegathread) as exc:
                log.warning("notice %s: not posted yet: %s", note.note_id, exc)

    async def _reconcile_note(self, note: NoteRow, *, force: bool) -> None:
        waited = self.clock() - (note.intent_at or 0.0)
        if not force and waited < self.reconcile_grace:
            return
        thread = Thread(id=note.thread_id or "", title="", permalink="")
        found = await self.target.find(thread, markdown.marker_id("note", note.note_id))
        if found:
            keep = await self._delete_duplicates(f"notice {note.note_id}", found)
            self._note_posted(note.note_id, keep)
        elif waited >= self.reconcile_grace:
            log.info("notice %s did not land; posting it again", note.note_id)
            self.store.update_note(self.page, note.note_id, state=delivery.PENDING)
            await self.post_note(note.note_id)

    def _note_posted(self, note_id: str, posted: PostedComment) -> None:
        self.store.update_note(
            self.page,
            note_id,
            state=delivery.POSTED,
            comment_id=posted.id,
            permalink=posted.permalink,
            delivered_at=self.clock(),
            last_error=None,
        )
        log.info("posted notice %s as comment %s", note_id, posted.id)

    def _note(self, note_id: str) -> NoteRow:
        note = self.store.note(self.page, note_id)
        if note is None:
            raise CommandError(f"unknown notice {note_id}")
        return note

    # --- failures -------------------------------------------------------------------
    def _failed(self, action: Action, error: RedditError) -> None:
        row = self.store.comment(self.page, action.incident_id, action.thread_id)
        # A claim already counted this attempt for posts; edits count theirs here.
        attempts = (row.attempts if row else 0) + (0 if isinstance(action, Post) else 1)
        wait = error.retry_after if error.retry_after is not None else backoff(attempts)
        fields: dict[str, object] = {"last_error": str(error)}
        if isinstance(error, CommentGone):
            log.warning(
                "incident %s: its comment was deleted or removed by a moderator; not re-posting",
                action.incident_id,
            )
            fields["state"] = delivery.REMOVED
        elif isinstance(error, ThreadUnavailable):
            log.warning("incident %s: thread %s: %s", action.incident_id, action.thread_id, error)
            self.target.thread_suspect()
            closed = isinstance(action, Edit | Point)
            fields.update(
                state=delivery.CLOSED if closed else delivery.PENDING,
                not_before=self.clock() + wait,
            )
        elif isinstance(action, Post) and not isinstance(error, RedditRejected):
            return  # the post recorded its unknown outcome already; reconcile decides
        else:
            log.warning("incident %s: %s; trying again in %.0f s", action.incident_id, error, wait)
            if isinstance(action, Post):
                fields["state"] = delivery.PENDING
            fields.update(attempts=attempts, not_before=self.clock() + wait)
        self._update(action, **fields)

    def _update(self, action: Action, **fields: object) -> None:
        self.store.update_comment(self.page, action.incident_id, action.thread_id, **fields)


class DryRunTarget:
    """Prints each comment instead of posting it, so a moderator sees what would happen."""

    THREAD = Thread(id="dry-run", title="(dry run: no megathread)", permalink="")

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._count = 0

    async def current_thread(self) -> Thread | None:
        """Dry-run has one pretend thread."""
        return self.THREAD

    def thread_suspect(self) -> None:
        """Nothing to look up in dry-run."""

    async def post(self, thread: Thread, body: str) -> PostedComment:
        """Print the body as a new comment."""
        self._count += 1
        comment_id = f"dry{self._count}"
        self._print("NEW comment", body)
        return PostedComment(id=comment_id, permalink="(dry run)", created_utc=time.time())

    async def edit(self, comment_id: str, body: str) -> None:
        """Print the body as an edit."""
        self._print("EDIT of the comment", body)

    async def find(self, thread: Thread, marker_id: str | None) -> list[PostedComment]:
        """Dry-run comments live only in the terminal: nothing to find."""
        return []

    async def delete(self, comment_id: str) -> None:
        """Printed comments cannot be taken back: nothing to do."""

    async def removed(self, comment_ids: list[str]) -> set[str]:
        """Nobody removes printed comments."""
        return set()

    def _print(self, what: str, body: str) -> None:
        ids = markdown.markers_in(body)
        about = (
            ids[-1].replace("inc-", "incident ", 1).replace("note-", "notice ", 1) if ids else "?"
        )
        rule = "-" * 72
        self.out.write(f"{rule}\n[dry-run] {what} for {about}\n{rule}\n{body}\n{rule}\n\n")
        self.out.flush()


def comment_summary(rows: Sequence[CommentRow]) -> dict[str, int]:
    """How many comment rows are in each state."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts
