"""The one owner of the megathread's comments: it executes delivery plans, step by step.

Each round asks the planner what is due for one watch and carries it out through the
state machine (``machine``): the intent is committed before a comment is created, the
answer after, and every write is refused if another actor changed the row meanwhile.
Incident comments and moderator notices go through the same steps; nothing else in
modbot posts in the megathread (the inbox's outbox sends replies and messages, through
the machine's message steps). A round also re-checks comments a moderator may have
removed, and heals duplicates (two comments with one marker: the oldest is kept, the
rest deleted) at a start, and while a row is in doubt: a post whose answer was lost was
followed by another, and the lost one may still land late, so its thread is searched
again and again, at growing gaps (``machine.next_look``).

A round returns a ``Report`` of what it did, which the moderator operations read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from modbot.core import machine, markdown, planner
from modbot.core.alerts import Condition
from modbot.core.budget import CALLER
from modbot.core.machine import State
from modbot.core.planner import Action, Drop, Edit, Heal, Point, Post, Reconcile
from modbot.core.records import DeliveryRow, Kind, PostedComment, Removal, Report, Thread
from modbot.core.render import digest
from modbot.errors import (
    CommentGone,
    RedditError,
    RedditForbidden,
    RedditRateLimited,
    RedditRejected,
    RedditUnavailable,
    ThreadUnavailable,
)
from modbot.ports import Moderation, Store, Target
from modbot.shell.alerts import Alert, no_alert
from modbot.shell.crashpoints import Checkpoint, no_checkpoint

log = logging.getLogger(__name__)

SubjectKey = tuple[Kind, str]
FRESH_THREAD = 60.0  # seconds a megathread lookup is trusted before a post or an edit


def pointer_body(new_permalink: str, incident_id: str, watch: str = markdown.LEGACY_WATCH) -> str:
    """The last edit of an old-thread comment after the megathread changed."""
    return (
        "This incident is now tracked in the current megathread: "
        f"{new_permalink}\n\n{markdown.marker('inc', incident_id, watch)}"
    )


def describe(row: DeliveryRow) -> str:
    """``incident abc`` / ``notice xyz`` / ``early notice e123``, for log lines."""
    return f"{KIND_NAMES.get(row.kind, row.kind.value)} {row.key}"


KIND_NAMES = {
    Kind.INCIDENT: "incident",
    Kind.NOTE: "notice",
    Kind.EARLY: "early notice",
    Kind.ROUTE: "reply to post",
}


class Deliverer:
    """Delivers one watch's comments to one target (Reddit, or the terminal)."""

    def __init__(
        self,
        store: Store,
        target: Target,
        *,
        watch: str,
        min_edit_interval: float,
        reconcile_grace: float,
        late_writes: float = 0.0,
        verify_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
        checkpoint: Checkpoint = no_checkpoint,
        name: str | None = None,
        moderation: Moderation | None = None,
        alert: Alert = no_alert,
    ) -> None:
        self.store = store
        self.alert = alert  # tells the moderators what stops the bot's comments
        self.target = target
        # Replies to readers' stray posts, and their removal (None: there are none to make).
        self.moderation = moderation
        self.watch = watch
        # The watch's name, which its markers carry (its store scope may say dry-run).
        self.name = name or watch.removeprefix("dry-run:")
        self.min_edit_interval = min_edit_interval
        self.reconcile_grace = reconcile_grace
        self.late_writes = late_writes
        self.verify_interval = verify_interval
        self.clock = clock
        self.checkpoint = checkpoint
        self.restart()

    def restart(self, *, after_another: bool = False) -> None:
        """Start as a new process would: heal, and look up every unsettled intent by its
        marker at once (after a crash, or when another process led meanwhile).

        ``after_another``: another process led until now, and an edit it sent just
        before it lost the lead may land after this one's. A grace period later, the
        comments are read once more and any whose text is not what the store says was
        delivered is edited again.
        """
        self._verified_at = self.clock()
        self._heal_at: float | None = self.clock()
        settled = max(self.reconcile_grace, self.late_writes)
        self._drift_at: float | None = self.clock() + settled if after_another else None
        self._mend_drift = False
        self._started = True
        # The bot's marked comments in the current thread, as the last heal listed them:
        # a pending row whose comment is already there adopts it instead of posting.
        self._seen: dict[str, PostedComment] = {}
        self._found_incidents: set[str] = set()
        self._recorded_thread: Thread | bool | None = False  # False: not recorded yet
        self._removals_at = 0.0  # when to try removing stray posts again after an error
        self._removal_failed = False  # a removal to retry at ``_removals_at``, idle or not
        self._filtered_seen: set[str] = set()  # filtered comments already said
        # After a round that found nothing to do: the store's version it read, the
        # thread and when the next thing falls due. Until one of them changes, a round
        # has nothing to read (see ``_idle``).
        self._idle_at: tuple[int, Thread | None, float | None] | None = None

    @property
    def thread_id(self) -> str | None:
        """The megathread the last round used, if any."""
        thread = self._recorded_thread
        return thread.id if isinstance(thread, Thread) else None

    # --- a round ----------------------------------------------------------------------------
    async def round(
        self, *, keys: Collection[SubjectKey] | None = None, max_passes: int = 20
    ) -> Report:
        """Do everything due now (for ``keys`` only, if given); say what was done."""
        token = CALLER.set(self.name)  # this watch's calls count against its budget share
        try:
            return await self._round(keys, max_passes)
        finally:
            CALLER.reset(token)

    async def _round(self, keys: Collection[SubjectKey] | None, max_passes: int) -> Report:
        report = Report()
        version = self.store.version()
        idle, self._idle_at = self._idle_at, None
        if keys is None and idle is not None and self._nothing_due(idle, version):
            thread = await self._thread()  # the megathread is checked as often as ever
            if thread == idle[1]:
                self._idle_at = idle
                report.wake_at = idle[2]
                return report
        health = await self.store.health(self.watch)
        # Read here, where it takes effect, whoever paused (a command, the CLI, another
        # process): the moderators hear of a pause and of its end from the running bot.
        by = f"by {health.paused_by}" if health.paused_by else ""
        await self.alert(Condition.PAUSED, health.paused, by)
        if health.paused:
            return report
        thread = await self._thread()
        await self._verify_removed()
        if thread is not None and self._drift_at is not None and self._drift_at <= self.clock():
            self._drift_at, self._mend_drift = None, True
            self._heal_at = self.clock()
        if thread is not None and self._heal_at is not None and self._heal_at <= self.clock():
            await self._heal(thread, report)
        await self._claim_found_incidents()
        # A claim is held while its call is in flight, but a process that has just
        # started knows its own calls are not: it looks for those comments at once.
        just_started, self._started = self._started and thread is not None, False
        looked_again = False
        for _ in range(max_passes):
            work = await self.store.work(self.watch, keys)
            rows = work.rows
            if just_started:
                rows = [replace(r, not_before=0.0) if r.state == State.POSTING else r for r in rows]
            plan = planner.plan(
                work.subjects,
                rows,
                thread_id=thread.id if thread else None,
                now=self.clock(),
                min_edit_interval=self.min_edit_interval,
            )
            if not plan.actions:
                await self._removals(report)
                report.wake_at = plan.wake_at
                if keys is None and version is not None:
                    self._idle_at = (version, thread, plan.wake_at)
                return report
            if not looked_again and any(isinstance(a, Post | Edit | Point) for a in plan.actions):
                # About to write: make sure the megathread has not been replaced in the last
                # minute (one read at most), so an update never lands in a thread readers
                # have left. Idle rounds cost nothing.
                looked_again = True
                fresh = await self._thread(max_age=FRESH_THREAD)
                if fresh != thread:
                    thread = fresh
                    continue
            for action in plan.actions:
                await self._execute(action, thread, report)
            just_started = False
        report.wake_at = self.clock() + 1.0
        return report

    def idle_until(self, checks_gap: float = 0.0) -> float | None:
        """After an idle round, when a round next has something of its own to do (a row
        falling due, a look at removed comments, a heal, a drift, a removal to retry);
        None when the last round was not idle, found no megathread, or left a check
        overdue (the caller then comes back at the poll interval). Until then only a
        change to the store (``stale``) or a wake-up gives a round work. Its own checks
        come no sooner than ``checks_gap`` from now (the poll interval: as often as
        before it could rest)."""
        if self._idle_at is None or self._started or self._found_incidents:
            return None
        if self._idle_at[1] is None:
            # No megathread: a heal, a drift and held updates wait for one, looked for
            # at the poll interval as before there was any rest.
            return None
        checks = [self._verified_at + self.verify_interval]
        checks += [t for t in (self._heal_at, self._drift_at) if t is not None]
        if self._removal_failed:
            checks.append(self._removals_at)
        now = self.clock()
        if any(t <= now for t in checks):
            # A check the round could not finish (Reddit failing): tried again at the
            # poll interval, as before there was any rest, never in a tight loop.
            return None
        due = max(min(checks), now + checks_gap)
        row_due = self._idle_at[2]
        return due if row_due is None else min(row_due, due)

    def stale(self) -> bool:
        """Whether the store changed since the last idle round (a new update, a pause, a
        command from the command line): the next round has something to read."""
        if self._idle_at is None:
            return False
        version = self.store.version()
        return version is None or version != self._idle_at[0]

    def _nothing_due(
        self, idle: tuple[int, Thread | None, float | None], version: int | None
    ) -> bool:
        """Whether a round can skip its reads: the store has not changed since an idle
        round (nothing new to post, no pause, no moderator's edit), nothing it planned
        has fallen due, and no check of its own (removed comments, a heal, a drift) is
        due either."""
        now = self.clock()
        wake_at = idle[2]
        return (
            version is not None
            and version == idle[0]
            and (wake_at is None or now < wake_at)
            and now - self._verified_at < self.verify_interval
            and (self._heal_at is None or now < self._heal_at)
            and (self._drift_at is None or now < self._drift_at)
            and not (self._removal_failed and now >= self._removals_at)
            and not self._started
            and not self._found_incidents
        )

    # --- removing readers' stray posts ------------------------------------------------------
    async def _removals(self, report: Report) -> None:
        """Remove the stray posts whose reply is posted, once each: the intent first; an
        intent found on restart is settled by looking at the post before removing it."""
        if self.moderation is None or self.clock() < self._removals_at:
            return
        self._removal_failed = False
        for route in await self.store.routes_to_remove(self.watch):
            try:
                if route.removal == "removing" and await self.moderation.post_removed(
                    route.post_id
                ):
                    log.info(
                        "post %s: removed already (before a restart); not again", route.post_id
                    )
                    await self.store.set_removal(route.post_id, "removed")
                    continue
                await self.store.set_removal(route.post_id, "removing")
                self.checkpoint("after-removal-intent")
                await self.moderation.remove_post(route.post_id, route.reason)
                self.checkpoint("after-removal")
            except RedditError as exc:
                await self._failed_call(exc)
                log.warning("post %s: cannot remove it now: %s", route.post_id, exc)
                self._removals_at = self.clock() + self._wait(exc, 2)
                self._removal_failed = True
                return
            await self.store.set_removal(route.post_id, "removed")
            report.removed += 1
            log.info("removed stray post %s (%s)", route.post_id, route.reason)

    async def _thread(self, max_age: float | None = None) -> Thread | None:
        try:
            thread = await self.target.current_thread(max_age)
        except RedditError as exc:
            log.warning("cannot tell which megathread to use: %s", exc)
            await self._failed_call(exc)
            return None
        if thread != self._recorded_thread:
            await self.store.record_megathread(self.watch, thread, self.clock())
            await self._called_ok()  # Reddit answered the lookup
            self._recorded_thread = thread
        await self.alert(Condition.MEGATHREAD_MISSING, thread is None, "")
        return thread

    async def _execute(self, action: Action, thread: Thread | None, report: Report) -> None:
        if isinstance(action, Heal):
            await self._look(action, report)
        elif isinstance(action, Post):
            if action.kind is Kind.ROUTE:
                # A reply to a reader's post: its thread is the post, whatever the megathread.
                await self._post(action, Thread(action.thread_id, "", ""), report)
            elif thread is not None and thread.id == action.thread_id:
                await self._post(action, thread, report)
        elif isinstance(action, Reconcile):
            await self._reconcile(action.row, report)
        elif isinstance(action, Edit):
            await self._edit(action.row, report)
        elif isinstance(action, Point):
            await self._point(action, report)
        elif isinstance(action, Drop):
            await self._step(action.row, machine.dropped(action.row, action.why))

    async def _step(self, before: DeliveryRow, after: DeliveryRow) -> bool:
        if await self.store.step(before, after):
            return True
        log.info("%s changed meanwhile (another process?); looking again", describe(before))
        return False

    # --- posting ------------------------------------------------------------------------------
    async def _post(self, action: Post, thread: Thread, report: Report) -> None:
        body = await self.store.body(self.watch, action.kind, action.key)
        if body is None:
            return
        row = action.row or await self.store.start_delivery(
            self.watch, action.kind, action.key, thread.id, now=self.clock()
        )
        if row is None:
            return
        existing = self._seen.pop(markdown.marker_id(row.kind, row.key, self.name), None)
        if existing is not None:
            await self._adopt(row, existing, thread, report)
            return
        now = self.clock()
        claimed = machine.claim(row, thread.id, now, hold=self.reconcile_grace)
        if not await self._step(row, claimed):
            return
        self.checkpoint("after-intent")
        try:
            if row.kind is Kind.ROUTE:
                if self.moderation is None:
                    raise RedditRejected("no Reddit session to reply with")
                posted = await self.moderation.reply_to_post(thread.id, body.body)
            else:
                posted = await self.target.post(thread, body.body)
        except RedditError as exc:
            await self._post_failed(claimed, exc, report)
            return
        self.checkpoint("after-answer")
        done = machine.answered(claimed, posted, body.digest, self.clock())
        await self._called_ok()
        await self.alert(Condition.WRITES_REFUSED, False, "")
        if await self._step(claimed, done):
            report.posted.append(done)
            log.info("posted %s as comment %s", describe(done), posted.id)

    async def _post_failed(self, row: DeliveryRow, error: RedditError, report: Report) -> None:
        await self._failed_call(error)
        await self._refused(error)
        now = self.clock()
        if isinstance(error, RedditUnavailable):
            log.warning(
                "posting %s: outcome unknown (%s); will look for the comment before posting again",
                describe(row),
                error,
            )
            after = machine.unknown(row, str(error), now)
        elif row.kind is Kind.ROUTE and not isinstance(error, RedditRateLimited):
            # The post was locked, archived, removed or deleted meanwhile: leave it be.
            log.info(
                "%s: Reddit refused the reply (%s); leaving the post alone", describe(row), error
            )
            after = machine.rejected(row, str(error))
        elif isinstance(error, ThreadUnavailable):
            log.warning("posting %s: %s", describe(row), error)
            self.target.thread_suspect()
            after = machine.refused(row, str(error), self._wait(error, row.attempts), now)
        elif row.kind is Kind.NOTE and not isinstance(error, RedditRateLimited):
            log.warning("notice %s: Reddit refused it (%s); not retrying", row.key, error)
            after = machine.rejected(row, str(error))
        else:
            wait = self._wait(error, row.attempts)
            log.warning("posting %s: %s; trying again in %.0f s", describe(row), error, wait)
            after = machine.refused(row, str(error), wait, now)
        if await self._step(row, after):
            report.failed.append(after)

    async def _adopt(
        self, row: DeliveryRow, comment: PostedComment, thread: Thread, report: Report
    ) -> None:
        body_hash = digest(comment.body) if comment.body else None
        after = machine.adopted(row, comment, thread.id, body_hash, self.clock())
        if await self._step(row, after):
            report.posted.append(after)
            log.info(
                "%s: its comment %s is already in the megathread; adopting it, not posting",
                describe(row),
                comment.id,
            )

    @staticmethod
    def _wait(error: RedditError, attempts: int) -> float:
        return error.retry_after if error.retry_after is not None else machine.backoff(attempts)

    async def _reconcile(self, row: DeliveryRow, report: Report) -> None:
        assert row.thread_id is not None
        try:
            marker = markdown.marker_id(row.kind, row.key, self.name)
            found = await self.target.find(row.thread_id, marker)
        except RedditError as exc:
            await self._failed_call(exc)
            log.warning("%s: cannot look for its comment yet: %s", describe(row), exc)
            await self._step(row, machine.not_yet(row, self.clock() + machine.backoff(2)))
            return
        now = self.clock()
        if found:
            keep = await self._keep_oldest(row, found, report)
            after = machine.found(row, keep, digest(keep.body) if keep.body else None, now)
            if await self._step(row, after):
                log.info("%s: found its comment %s; adopting it", describe(row), keep.id)
            return
        intent_at = row.intent_at or 0.0
        if now - intent_at < self.reconcile_grace:
            await self._step(row, machine.not_yet(row, intent_at + self.reconcile_grace))
        elif await self._step(row, machine.absent(row, now, self.reconcile_grace)):
            log.info(
                "%s: the earlier post did not land; posting again, and looking for a late "
                "copy of it for a while",
                describe(row),
            )

    async def _keep_oldest(
        self, row: DeliveryRow, found: Sequence[PostedComment], report: Report
    ) -> PostedComment:
        """Keep the oldest comment, delete the others; return the one kept."""
        keep, *extra = sorted(found, key=lambda c: (c.created_utc, c.id))
        for duplicate in extra:
            log.warning(
                "%s: duplicate comment %s found; keeping the oldest (%s), deleting it",
                describe(row),
                duplicate.id,
                keep.id,
            )
            try:
                await self.target.delete(duplicate.id)
            except RedditError as exc:
                log.warning("could not delete duplicate %s: %s", duplicate.id, exc)
                self._heal_at = self.clock() + self.reconcile_grace
            else:
                report.duplicates_deleted += 1
        return keep

    # --- editing ------------------------------------------------------------------------------
    async def _edit(self, row: DeliveryRow, report: Report) -> None:
        body = await self.store.body(self.watch, row.kind, row.key)
        if body is None or row.comment_id is None:
            return
        try:
            await self.target.edit(row.comment_id, body.body)
        except RedditError as exc:
            await self._edit_failed(row, exc, report)
            return
        self.checkpoint("after-edit")
        await self._called_ok()
        await self.alert(Condition.WRITES_REFUSED, False, "")
        after = machine.edited(row, body.digest, self.clock())
        if await self._step(row, after):
            report.edited.append(after)
            log.info("edited comment %s for %s", row.comment_id, describe(row))

    async def _point(self, action: Point, report: Report) -> None:
        row = action.row
        assert row.comment_id is not None
        try:
            body = pointer_body(action.new_permalink, row.key, self.name)
            await self.target.edit(row.comment_id, body)
        except RedditError as exc:
            await self._edit_failed(row, exc, report)
            return
        await self._called_ok()
        after = machine.pointed(row, self.clock())
        if await self._step(row, after):
            report.edited.append(after)
            log.info("%s moved to the new megathread; its old comment points there", row.key)

    async def _edit_failed(self, row: DeliveryRow, error: RedditError, report: Report) -> None:
        await self._failed_call(error)
        await self._refused(error)
        if isinstance(error, CommentGone):
            log.warning(
                "%s: its comment was deleted or removed by a moderator; not re-posting",
                describe(row),
            )
            after = machine.gone(row, str(error))
        elif isinstance(error, ThreadUnavailable):
            log.warning("%s: thread %s: %s", describe(row), row.thread_id, error)
            self.target.thread_suspect()
            after = machine.thread_closed(row, str(error))
        else:
            wait = self._wait(error, row.attempts + 1)
            log.warning("%s: %s; trying again in %.0f s", describe(row), error, wait)
            after = machine.edit_failed(row, str(error), wait, self.clock())
        if await self._step(row, after):
            report.failed.append(after)

    # --- checks -------------------------------------------------------------------------------
    async def _verify_removed(self) -> None:
        """Every ``verify_interval`` s, notice open incidents' comments a moderator
        removed (one call per 100 comments)."""
        now = self.clock()
        if now - self._verified_at < self.verify_interval:
            return
        self._verified_at = now
        work = await self.store.work(self.watch)
        rows = [
            r
            for r in work.rows
            if r.state == State.POSTED
            and r.comment_id
            and r.kind is Kind.INCIDENT
            and work.subjects[(r.kind, r.key)].is_open
        ]
        if not rows:
            await self._filtered([])  # what was filtered is no longer shown anyway
            return
        try:
            gone = await self.target.removed([r.comment_id for r in rows if r.comment_id])
        except RedditError as exc:
            log.warning("could not check the bot's comments: %s", exc)
            return
        filtered = []
        for row in rows:
            why = gone.get(row.comment_id or "")
            if why is Removal.FILTERED:
                # Not a moderator's decision: the comment is kept, and edited as before,
                # so it is current the moment a moderator approves it.
                filtered.append(row)
            elif why is Removal.REMOVED:
                log.warning(
                    "%s: comment %s was removed or deleted; not re-posting it",
                    describe(row),
                    row.comment_id,
                )
                if await self._step(row, machine.gone(row, "removed or deleted on Reddit")):
                    await self.alert(
                        Condition.WRITES_REFUSED,
                        True,
                        f"the comment of {describe(row)} ({row.comment_id}) was removed or "
                        "deleted; the bot does not post it again",
                    )
        await self._filtered(filtered)

    async def _filtered(self, rows: list[DeliveryRow]) -> None:
        """Say which comments AutoModerator or the spam filter took (once each), and tell
        the moderators; when none is left, that they are visible again."""
        ids = {r.comment_id for r in rows if r.comment_id}
        for row in rows:
            if row.comment_id not in self._filtered_seen:
                log.warning(
                    "%s: comment %s was filtered (AutoModerator or the spam filter, not a "
                    "moderator); keeping it and editing it: a moderator should approve it",
                    describe(row),
                    row.comment_id,
                )
        self._filtered_seen = ids
        detail = ", ".join(f"{describe(r)}: comment {r.comment_id}" for r in rows)
        await self.alert(Condition.COMMENT_FILTERED, bool(rows), detail)

    async def _refused(self, error: RedditError) -> None:
        """Tell the moderators when Reddit refuses a write for good reasons of its own
        (a locked thread, a missing permission, a removed comment)."""
        if isinstance(error, ThreadUnavailable | CommentGone | RedditForbidden | RedditRejected):
            await self.alert(Condition.WRITES_REFUSED, True, str(error))

    async def _heal(self, thread: Thread, report: Report) -> None:
        """Delete duplicate comments (same marker) in ``thread``, keeping the oldest.

        Runs at start-up (rows in doubt are searched again later, see ``_look``). It
        reads the thread's bot comments, and only the rows of markers that appear twice.
        """
        try:
            comments = await self.target.find(thread.id, None)
        except RedditError as exc:
            log.warning("could not look for duplicate comments: %s", exc)
            self._heal_at = self.clock() + self.reconcile_grace
            return
        self._heal_at = None
        groups = self._groups(comments)
        self._seen = {
            markdown.marker_id(kind, key, self.name): min(
                group, key=lambda c: (c.created_utc, c.id)
            )
            for (kind, key), group in groups.items()
        }
        self._found_incidents = {key for kind, key in groups if kind is Kind.INCIDENT}
        for (kind, key), group in groups.items():
            if len(group) > 1:
                await self._heal_group(kind, key, thread, group, report)
        if self._mend_drift:
            self._mend_drift = False
            await self._mend(thread, groups)

    def _groups(self, comments: Sequence[PostedComment]) -> dict[SubjectKey, list[PostedComment]]:
        """The bot's comments by subject: only this watch's, as a megathread may carry
        several watches' markers."""
        groups: dict[SubjectKey, list[PostedComment]] = {}
        for comment in comments:
            parsed = markdown.parse_marker(comment.marker)
            if parsed is not None and parsed[0] == self.name:
                groups.setdefault((Kind(parsed[1]), parsed[2]), []).append(comment)
        return groups

    async def _look(self, action: Heal, report: Report) -> None:
        """Search a thread for late copies of comments in doubt (one listing for all of
        them); keep the oldest of each, delete the rest, and say when to look again."""
        try:
            comments = await self.target.find(action.thread_id, None)
        except RedditError as exc:
            await self._failed_call(exc)
            log.warning("could not look for late copies of comments: %s", exc)
            retry = self.clock() + self._wait(exc, 2)
            for row in action.rows:
                await self._step(row, machine.looked(row, retry))
            return
        groups = self._groups(comments)
        for row in action.rows:
            await self._looked(row, groups.get((row.kind, row.key), []), report)

    async def _looked(self, row: DeliveryRow, group: list[PostedComment], report: Report) -> None:
        """One row's share of a search for late copies: ``group`` is what carries its
        marker now."""
        now = self.clock()
        if len(group) > 1:
            keep = await self._keep_oldest(row, group, report)
            if keep.id != row.comment_id:
                after = machine.replaced(row, keep, digest(keep.body) if keep.body else None, now)
                if not await self._step(row, after):
                    return
                log.info("%s: now follows its oldest comment %s", describe(row), keep.id)
                row = after
        await self._step(
            row, machine.looked(row, machine.next_look(row, now, self.reconcile_grace))
        )

    async def _mend(
        self, thread: Thread, groups: dict[tuple[Kind, str], list[PostedComment]]
    ) -> None:
        """Edit again every comment whose text is not what was last delivered."""
        for (kind, key), group in groups.items():
            live = min(group, key=lambda c: (c.created_utc, c.id))
            rows = await self.store.deliveries(self.watch, kind, [key])
            row = next((r for r in rows if r.thread_id == thread.id), None)
            if row is None or row.state != State.POSTED or row.comment_id != live.id:
                continue
            live_hash = digest(live.body) if live.body else None
            if live_hash and row.delivered_hash and live_hash != row.delivered_hash:
                log.warning(
                    "%s: comment %s changed after the bot's last edit (a late edit from "
                    "the previous leader?); editing it again",
                    describe(row),
                    live.id,
                )
                await self._step(row, machine.drifted(row, live_hash))

    async def _claim_found_incidents(self) -> None:
        """Incidents with a comment in the megathread that the store took as a baseline
        (it was lost, or is new) are delivered again, so their comments stay current.
        Waits for the first poll, which records what the page lists."""
        if not self._found_incidents:
            return
        if (await self.store.feed_state(self.watch)).baseline_at is None:
            return
        found, self._found_incidents = self._found_incidents, set()
        if await self.store.adopt_known(self.watch, found):
            log.info(
                "found comments of incidents the state file did not know; keeping them current"
            )

    async def _heal_group(
        self,
        kind: Kind,
        key: str,
        thread: Thread,
        group: list[PostedComment],
        report: Report,
    ) -> None:
        rows = await self.store.deliveries(self.watch, kind, [key])
        row = next((r for r in rows if r.thread_id == thread.id), None)
        stand_in = row or DeliveryRow(0, self.watch, kind, key, State.POSTED)
        keep = await self._keep_oldest(stand_in, group, report)
        if row is None or row.comment_id == keep.id:
            return
        body_hash = digest(keep.body) if keep.body else None
        if row.state == State.POSTING:
            await self._step(row, machine.found(row, keep, body_hash, self.clock()))
        elif row.state == State.POSTED:
            await self._step(row, machine.replaced(row, keep, body_hash, self.clock()))

    # --- health -------------------------------------------------------------------------------
    async def _called_ok(self) -> None:
        await self.store.record_reddit(self.watch, error=None, kind="", now=self.clock())

    async def _failed_call(self, error: RedditError) -> None:
        await self.store.record_reddit(
            self.watch, error=str(error), kind=type(error).__name__, now=self.clock()
        )
