"""Readers' reports: read a subreddit, keep the reports, follow surges, early notices.

One ``SubredditReader`` per subreddit (several watches on one subreddit share it, and
its two listing calls) runs as a task of its own under the app's supervisor, on the
leading process only. Not in the inbox's task: the inbox is the account's, read every
15 s, and its commands must never wait behind a subreddit's listings or a flood of
author lookups; a reader per subreddit is also how watches on one subreddit read it
once. Every ``reports_interval`` it:

1. reads the new posts and the new comments (``core.reading``: cursors, one call per
   listing when nothing is new, a few pages at most when much is); what a read spends
   beyond one call per listing is paid back by the next reads coming later
   (``reading.pace``), so reading costs two calls an interval on average outside a
   flood; a listing that cannot be read keeps its cursor;
2. for each watch, classifies what its readers posted (posts, and comments in its
   megathread) with the watch's report rules, looks up the age of each new report's
   author once (cached; one call for all the authors the listings name by account id),
   and keeps each report as its id, time, a keyed hash of its author, and labels: never
   the name, never the text;
3. follows the watch's surge (``core.surge``) against its baseline, learnt hour by hour
   from the same reports, and decides its early notice (``core.early``): the notice's
   intent is saved with the surge in one transaction, and the watch's deliverer, the one
   owner of Reddit writes, posts it through the delivery machine (a marker of its own,
   exactly once across crashes and failover);
4. keeps live notices current: counts while the surge lasts, "confirmed" with a link to
   the incident's comment when the vendor opens one within ``reports_link_window``,
   "subsided" when the reports end without one; and has open incidents re-rendered when
   what readers reported about them changed (their comments show the counts);
5. while an incident or an early notice is open, records one reply (and with
   ``reports_action = "remove"`` a removal) for every post that reported it and that
   belongs to no moderator or approved user, as it stands now on Reddit (not removed,
   not locked): a row per post, whatever the watch, so no post is answered twice. The
   watch's deliverer sends the reply through the delivery machine, in the post's own
   thread (a marker of its own, found by it after a lost answer), then removes the post.

``readers_of`` is what an incident's comment shows of readers' reports; the poller asks
for it whenever it renders.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from modbot.config.watches import Watch
from modbot.core import early, reading
from modbot.core.budget import CALLER
from modbot.core.early import CONFIRMED, OPEN, Signal
from modbot.core.machine import State
from modbot.core.records import EarlyRow, IncidentView, Kind, ReaderItem, RouteRow
from modbot.core.render import Confirmation, Readers
from modbot.core.reports import classify
from modbot.core.surge import HOUR, Baseline, Report, SurgeSettings, learn_hours, track
from modbot.errors import RedditError
from modbot.ports import Listings, Store
from modbot.rendering.bodies import Bodies
from modbot.shell.crashpoints import Checkpoint, no_checkpoint

log = logging.getLogger(__name__)

AGE_LOOKUPS = 10  # ages asked by name per read (no account id, or the batch failed)
AGES_KEPT = 10_000  # authors' ages remembered
KEEP_REPORTS = 35 * 86_400.0  # reports older than this are dropped (the baseline has them)
LISTINGS = ("posts", "comments")
ROUTED_KEPT = 20_000  # posts remembered as answered (or looked at) already
DEFAULT_REASON = "Outage reports are collected in the megathread"


@dataclass
class WatchReader:
    """One watch's share of a subreddit's reading."""

    watch: Watch
    scope: str  # the watch's store key
    bodies: Bodies  # renders its early notices
    thread_id: Callable[[], str | None]  # its megathread, as its deliverer last saw it
    wake: Callable[[], None]  # wakes its deliverer (a notice to post or edit)
    recount: Callable[[Sequence[str]], None]  # its incidents to render again (the poller)
    counted: Callable[[int], None] = lambda n: None  # reports counted (metrics)
    # What its open incidents' comments show of readers, as last rendered here.
    shown: dict[str, Readers] = field(default_factory=dict)
    refreshed: dict[str, float] = field(default_factory=dict)  # notice -> last counts edit
    # Each live notice as last rendered, with its confirmation: rendered again only when
    # either changes.
    rendered: dict[str, tuple[EarlyRow, Confirmation | None]] = field(default_factory=dict)


class SubredditReader:
    """Reads one subreddit for every watch posting into it."""

    def __init__(
        self,
        subreddit: str,
        watches: Sequence[WatchReader],
        listings: Listings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.checkpoint = checkpoint
        self.subreddit = subreddit
        self.watches = [w for w in watches if w.watch.reports.reading]
        self.listings = listings
        self.store = store
        self.clock = clock
        self.interval = min((w.watch.reports.interval for w in self.watches), default=30.0)
        self.caller = f"reports r/{subreddit}"  # its calls' share of the budget
        self._owed = 0  # calls a flood spent beyond its share (``reading.pace``)
        self.restart()

    def restart(self) -> None:
        """Start as a new process would (another process may have read meanwhile)."""
        self._listings = {name: reading.Listing() for name in LISTINGS}
        self._waiting: list[ReaderItem] = []  # reports whose author's age is not known yet
        self._ages: OrderedDict[str, float | None] = OrderedDict()
        self._key: bytes | None = None
        self._flooded = False  # the last read needed a second page of a listing
        self._resumed: float | None = None  # this run's first read: hours before are unknown
        self._looked: OrderedDict[str, None] = OrderedDict()  # posts routed or left alone
        self._unapproved_said = False
        for watch in self.watches:
            watch.shown.clear()
            watch.refreshed.clear()
            watch.rendered.clear()

    # --- one read -------------------------------------------------------------------------
    async def step(self) -> float:
        """Read once and follow every watch; seconds until the next read."""
        token = CALLER.set(self.caller)
        before = self.listings.calls_made(self.caller)
        try:
            await self.read()
        except Exception:
            # What was read may not have been kept (a store that cannot be written): the
            # next read starts afresh from the listings, as a new process would.
            self.restart()
            raise
        finally:
            CALLER.reset(token)
        # Every call this read made, retries included: what it spent beyond one call per
        # listing is paid by the next reads coming later (``core.reading.pace``).
        calls = self.listings.calls_made(self.caller) - before
        paced = reading.pace(self._owed, calls, flooded=self._flooded)
        self._owed = paced.owed
        return self.interval * paced.intervals

    async def read(self) -> None:
        """One read of both listings, and every watch followed."""
        now = self.clock()
        self._flooded = False
        if self._key is None:
            self._key = (await self.store.reports_key(secrets.token_hex(32))).encode()
        items: list[ReaderItem] | None = None
        try:
            bot = await self.listings.account()
        except RedditError as exc:
            log.warning("r/%s: cannot read readers' posts now: %s", self.subreddit, exc)
        else:
            items = await self._read_listings(now)
        if self._resumed is None and items is not None:
            self._resumed = now
        for watch in self.watches:
            signal = await self.store.start_signal(watch.scope, now=now)
            if items is not None:
                await self._keep(watch, signal, items, bot, now)
            await self._follow(watch, now)

    async def _read_listings(self, now: float) -> list[ReaderItem] | None:
        """What the listings show that is new, with the reports still waiting for their
        authors' ages; None when no listing could be read."""
        fresh: list[ReaderItem] = []
        failed: dict[str, RedditError] = {}
        for name in LISTINGS:
            try:
                listing, shown = await self._read(name, now)
            except RedditError as exc:
                failed[name] = exc  # its cursor stays: the next read shows what this missed
                continue
            self._listings[name] = listing
            fresh += shown
        if failed:
            what = "posts" if len(failed) == len(LISTINGS) else f"new {', '.join(failed)}"
            error = next(iter(failed.values()))
            log.warning("r/%s: cannot read readers' %s now: %s", self.subreddit, what, error)
        if len(failed) == len(LISTINGS):
            return None
        items, self._waiting = [*self._waiting, *fresh], []
        return items

    async def _read(self, name: str, now: float) -> tuple[reading.Listing, list[ReaderItem]]:
        """One listing after a read, and what it showed that was not seen before (a few
        pages at most)."""
        listing = self._listings[name]
        before = listing.before(now)
        shown: list[ReaderItem] = []
        for number in range(reading.MAX_PAGES):
            page = await self.listings.new_items(
                self.subreddit, name, before=before, limit=reading.PAGE
            )
            shown += page
            self._flooded = self._flooded or number > 0
            if before is None or not reading.full(page):
                break
            before = reading.newest(page)
        return reading.absorb(listing, shown, now)

    async def _keep(
        self, watch: WatchReader, signal: Signal, items: list[ReaderItem], bot: str, now: float
    ) -> None:
        """Classify what the watch's readers posted; keep its reports."""
        config = watch.watch.reports
        threads = {t for t in (watch.thread_id(),) if t}
        found: list[tuple[ReaderItem, Report]] = []
        for item in items:
            if not reading.considered(item, bot=bot, since=signal.started_at, threads=threads):
                continue
            verdict = classify(item.text, config.report_rules, watch.watch.components)
            if verdict.is_report and item.author:
                author = reading.author_hash(self._key or b"", item.author)
                found.append((item, reading.as_report(item, verdict, author, None)))
        if not found:
            return
        known = await self.store.known_reports(watch.scope, [i.fullname for i, _ in found])
        fresh = [(item, report) for item, report in found if item.fullname not in known]
        aged, waiting = await self._aged(fresh, config.surge.min_account_age)
        self._waiting = _merge(self._waiting, waiting)
        if aged:
            added = await self.store.add_reports(
                watch.scope, [(item.fullname, report) for item, report in aged], now=now
            )
            watch.counted(added)
            if added:
                log.info(
                    "%s: %d readers' report(s) counted in r/%s",
                    watch.watch.name,
                    added,
                    self.subreddit,
                )

    async def _aged(
        self, found: list[tuple[ReaderItem, Report]], min_age: float
    ) -> tuple[list[tuple[ReaderItem, Report]], list[ReaderItem]]:
        """Reports with their authors' account ages, and the items still waiting for one
        (a lookup Reddit cannot answer now waits). The authors the listing names by
        account id are asked in one call; the others one call each, ``AGE_LOOKUPS`` at
        most."""
        if min_age <= 0:
            return found, []
        unknown = {
            item.author_id: _name(item)
            for item, _ in found
            if item.author_id and _name(item) not in self._ages
        }
        batched = False
        if unknown:
            try:
                made = await self.listings.accounts_created(list(unknown))
            except RedditError as exc:
                log.info("r/%s: readers' account ages are not known yet: %s", self.subreddit, exc)
            else:
                batched = True
                for author_id, name in unknown.items():
                    self._age_known(name, made.get(author_id))
        done, waiting = [], []
        asked = 0
        for item, report in found:
            name = _name(item)
            if name not in self._ages:
                # Asked by name when the listing gave no id, or the batch failed (an
                # error that lasts must not keep every report from counting).
                if (item.author_id and batched) or asked >= AGE_LOOKUPS:
                    waiting.append(item)
                    continue
                asked += 1
                try:
                    self._age_known(name, await self.listings.account_created(item.author or ""))
                except RedditError as exc:
                    log.info("r/%s: an author's age is not known yet: %s", self.subreddit, exc)
                    waiting.append(item)
                    asked = AGE_LOOKUPS
                    continue
            self._ages.move_to_end(name)
            done.append((item, replace(report, author_since=self._ages[name])))
        return done, waiting

    def _age_known(self, name: str, created: float | None) -> None:
        self._ages[name] = created
        self._ages.move_to_end(name)
        while len(self._ages) > AGES_KEPT:
            self._ages.popitem(last=False)

    # --- surges and early notices ---------------------------------------------------------------
    async def _follow(self, watch: WatchReader, now: float) -> None:
        """One step of the watch's surge; its notice decided, kept current, confirmed."""
        scope = watch.scope
        config = watch.watch.reports
        settings = config.surge
        signal = await self.store.signal(scope)
        if signal is None:
            return
        signal = replace(signal, baseline=await self._learnt(signal, settings, now))
        since = (signal.surge.detected if signal.surge else now) - settings.window
        recent = await self.store.reports(scope, since, now)
        step = track(signal.surge, recent, signal.baseline, now, settings)
        notice: EarlyRow | None = None
        ended = signal.notice_id if step.ended else None
        if step.started and step.surge is not None:
            views = [v for v, _ in await self._incidents(scope, open_only=True)]
            products = [label for label, _ in step.surge.products]
            reason = early.hold_reason(config.mode, signal, now, views, products)
            signal, notice_id = early.started(signal, step, reason, now)
            if notice_id is not None:
                notice = await self._render(watch, early.draft(scope, notice_id, step.surge, now))
                log.info(
                    "%s: %d readers reported problems within %g min: early notice %s",
                    watch.watch.name,
                    step.surge.authors,
                    settings.window / 60,
                    notice_id,
                )
            else:
                log.info(
                    "%s: %d readers reported problems within %g min; no early notice (%s)",
                    watch.watch.name,
                    step.surge.authors,
                    settings.window / 60,
                    reason,
                )
        elif step.ended:
            log.info("%s: readers' reports subsided", watch.watch.name)
            signal = replace(signal, surge=None, notice_id=None, held="", assessed=step.assessment)
        else:
            signal = replace(signal, surge=step.surge, assessed=step.assessment)
        await self.store.save_signal(signal, notice)
        if notice is not None:
            self.checkpoint("after-notice")
            watch.wake()
        await self._notices(watch, signal, ended, now)
        await self._recount(watch, now)
        await self._route(watch, signal, now)

    async def _learnt(self, signal: Signal, settings: SurgeSettings, now: float) -> Baseline:
        """The baseline after every whole hour read since it last learnt (only hours
        this run read whole: hours nobody read are unknown, not quiet)."""
        baseline = signal.baseline
        since = max(signal.started_at, self._resumed or now)
        start = max(baseline.learnt_until, since - since % HOUR)
        if start + HOUR > now:
            return baseline
        reports = await self.store.reports(signal.watch, start, now)
        learnt = learn_hours(baseline, reports, since, now, settings)
        if learnt.learnt_until > baseline.learnt_until:
            await self.store.forget_reports(signal.watch, now - KEEP_REPORTS)
        return learnt

    async def _render(
        self, watch: WatchReader, row: EarlyRow, confirmation: Confirmation | None = None
    ) -> EarlyRow:
        rendered = await watch.bodies.early(row, confirmation)
        return replace(row, body=rendered.body, body_hash=rendered.digest)

    async def _notices(
        self, watch: WatchReader, signal: Signal, ended: str | None, now: float
    ) -> None:
        """Keep every live early notice current: counts, confirmed, subsided."""
        config = watch.watch.reports
        since = now - config.link_window - HOUR
        live = await self.store.live_early_notices(watch.scope, since)
        if not live:
            return
        incidents = await self._incidents(watch.scope, open_only=False)
        for row in live:
            updated = row
            if row.state == OPEN and row.notice_id != signal.notice_id:
                updated = early.subsided(row, now)  # its surge is over (or was lost)
                if row.notice_id == ended:
                    log.info(
                        "%s: early notice %s: reports subsided", watch.watch.name, row.notice_id
                    )
            elif row.state == OPEN and signal.surge is not None:
                last = watch.refreshed.get(row.notice_id, row.created_at)
                if early.counts_changed(row, signal.surge, now, last):
                    updated = early.with_counts(row, signal.surge)
                    watch.refreshed[row.notice_id] = now
            incident = early.confirming(updated, incidents, config.link_window)
            if incident is not None:
                updated = early.confirmed(updated, incident.id)
                log.info(
                    "%s: early notice %s confirmed by incident %s (first reports %s before it)",
                    watch.watch.name,
                    row.notice_id,
                    incident.id,
                    early.lead_text(early.lead(row, incident)) or "not",
                )
            confirmation = await self._confirmation(watch, updated, incidents)
            if watch.rendered.get(row.notice_id) == (updated, confirmation) and updated == row:
                continue
            rendered = await self._render(watch, updated, confirmation)
            watch.rendered[row.notice_id] = (rendered, confirmation)
            if rendered != row:
                await self.store.save_early(rendered)
                watch.wake()
                if rendered.state != row.state and rendered.incident_id:
                    watch.recount([rendered.incident_id])

    async def _confirmation(
        self,
        watch: WatchReader,
        row: EarlyRow,
        incidents: Sequence[tuple[IncidentView, float]],
    ) -> Confirmation | None:
        if row.state != CONFIRMED or row.incident_id is None:
            return None
        view = next((v for v, _ in incidents if v.id == row.incident_id), None)
        if view is None:
            found = await self.store.tracked(watch.scope, [row.incident_id])
            view = found[row.incident_id].view if row.incident_id in found else None
        if view is None:
            return Confirmation(row.incident_id, None, None)
        link = await self._permalink(watch.scope, Kind.INCIDENT, view.id)
        return Confirmation(view.name, link, early.lead(row, view))

    async def _permalink(self, scope: str, kind: Kind, key: str) -> str | None:
        rows = await self.store.deliveries(scope, kind, [key])
        posted = [r for r in rows if r.state == State.POSTED and r.permalink]
        return posted[-1].permalink if posted else None

    async def _incidents(self, scope: str, *, open_only: bool) -> list[tuple[IncidentView, float]]:
        """The watch's announced incidents (open ones, and with ``open_only`` False the
        last few settled) with when the bot first saw each."""
        rows = await self.store.open_incidents(scope)
        if not open_only:
            rows += await self.store.recent_settled(scope, 10)
        views = await self.store.tracked(scope, [r.incident_id for r in rows])
        return [(views[r.incident_id].view, r.first_seen) for r in rows if r.incident_id in views]

    # --- readers' stray posts ------------------------------------------------------------------
    async def _route(self, watch: WatchReader, signal: Signal, now: float) -> None:
        """One reply (and maybe a removal) for each new report post while an incident or
        an early notice is open."""
        config = watch.watch.reports
        if config.action == "off":
            return
        about = await self._about(watch, signal, now)
        if about is None:
            return
        kind, key, name, link, since = about
        posts = [
            p for p in await self.store.report_posts(watch.scope, since) if p not in self._looked
        ]
        if not posts:
            return
        fresh = [p for p in posts if p not in await self.store.routed(posts)]
        self._remember(posts)
        if not fresh:
            return
        try:
            allowed = await self._not_routed_authors()
            if allowed is None:
                return
            current = await self.listings.posts(fresh)
        except RedditError as exc:
            log.warning("r/%s: cannot look at readers' posts now: %s", self.subreddit, exc)
            self._forget(fresh)
            return
        for post in current:
            why = _leave_alone(post, allowed)
            if why:
                log.info("post %s reports the outage; left alone (%s)", post.thread_id, why)
                continue
            removed = config.action == "remove"
            body = await watch.bodies.reply(post.thread_id, kind, name, link, removed=removed)
            row = RouteRow(
                watch=watch.scope,
                post_id=post.thread_id,
                subreddit=self.subreddit,
                action=config.action,
                about=kind,
                about_key=key,
                body=body.body,
                body_hash=body.digest,
                created_at=now,
                reason=(config.removal_reason or DEFAULT_REASON) if removed else "",
            )
            if await self.store.add_route(row):
                log.info(
                    "%s: post %s reports the outage: replying%s, pointing to %s %s",
                    watch.watch.name,
                    post.thread_id,
                    " and removing it" if removed else "",
                    "incident" if kind == Kind.INCIDENT else "early notice",
                    key,
                )
                watch.wake()

    async def _about(
        self, watch: WatchReader, signal: Signal, now: float
    ) -> tuple[str, str, str, str, float] | None:
        """What stray posts are pointed to: the newest open incident with a comment, else
        the open surge's early notice (its kind, key, name, comment link, and since when
        posts about it count); None when neither is open."""
        opened = [v for v, _ in await self._incidents(watch.scope, open_only=True)]
        for view in sorted(opened, key=_opened, reverse=True):
            link = await self._permalink(watch.scope, Kind.INCIDENT, view.id)
            if link is None:
                continue
            notice = await self.store.early_for_incident(watch.scope, view.id)
            since = _opened(view) or now
            if notice is not None:
                since = min(since, notice.began)
            return Kind.INCIDENT.value, view.id, view.name, link, since
        if signal.notice_id is None or signal.surge is None:
            return None
        link = await self._permalink(watch.scope, Kind.EARLY, signal.notice_id)
        if link is None:
            return None
        return Kind.EARLY.value, signal.notice_id, "", link, signal.surge.began

    async def _not_routed_authors(self) -> set[str] | None:
        """Moderators and approved users (lower case), whose posts are never touched; None
        when the approved users cannot be read (the bot is no moderator): then no post is
        touched at all."""
        approved = await self.listings.approved_users(self.subreddit)
        if approved is None:
            if not self._unapproved_said:
                log.warning(
                    "r/%s: stray outage posts are left alone: the bot cannot see the approved "
                    "users (make it a moderator with the posts permission, or set "
                    "MODBOT_REPORTS_ACTION=off)",
                    self.subreddit,
                )
                self._unapproved_said = True
            return None
        moderators = await self.listings.moderators(self.subreddit)
        return approved | set(moderators)

    def _remember(self, posts: Sequence[str]) -> None:
        for post in posts:
            self._looked[post] = None
        while len(self._looked) > ROUTED_KEPT:
            self._looked.popitem(last=False)

    def _forget(self, posts: Sequence[str]) -> None:
        for post in posts:
            self._looked.pop(post, None)

    # --- what incidents' comments show -----------------------------------------------------
    async def _recount(self, watch: WatchReader, now: float) -> None:
        """Have open incidents rendered again when what readers reported about them
        changed."""
        views = [v for v, _ in await self._incidents(watch.scope, open_only=True)]
        current = await readers_of(self.store, watch.scope, watch.watch, views, now)
        changed = [i for i, r in current.items() if watch.shown.get(i) != r]
        watch.shown = current
        if changed:
            watch.recount(changed)


async def readers_of(
    store: Store, scope: str, watch: Watch, views: Sequence[IncidentView], now: float
) -> dict[str, Readers]:
    """What each incident's comment shows of readers' reports: every reader once, and
    the labels they named, from when the incident (or its early notice) began until it
    was resolved; how far ahead of the page readers were; the early notice's comment."""
    if not watch.reports.reading:
        return {}
    found: dict[str, Readers] = {}
    for view in views:
        notice = await store.early_for_incident(scope, view.id)
        opened = view.created_at.timestamp() if view.created_at else now
        since = min(opened, notice.began) if notice is not None else opened
        until = view.resolved_at.timestamp() if view.resolved_at else now
        reports = await store.reports(scope, since, until)
        tally = early.tally(reports, since, until, watch.reports.surge)
        lead = early.lead(notice, view) if notice is not None else None
        link = None
        if notice is not None:
            rows = await store.deliveries(scope, Kind.EARLY, [notice.notice_id])
            link = next((r.permalink for r in rows if r.state == State.POSTED), None)
        if tally.authors or notice is not None:
            found[view.id] = Readers(tally, lead, link)
    return found


def _opened(view: IncidentView) -> float:
    return view.created_at.timestamp() if view.created_at else 0.0


def _leave_alone(post: ReaderItem, authors: set[str]) -> str:
    """Why a stray report post is not answered ("" when it is)."""
    if post.removed or not post.author:
        return "removed or deleted"
    if post.locked:
        return "locked or archived"
    if post.distinguished or post.author.casefold() in authors:
        return "by a moderator or an approved user"
    return ""


def _name(item: ReaderItem) -> str:
    """The key an author's age is remembered by."""
    return (item.author or "").casefold()


def _merge(waiting: list[ReaderItem], more: list[ReaderItem]) -> list[ReaderItem]:
    """Items waiting for their author's age, each once."""
    kept = {item.fullname: item for item in [*waiting, *more]}
    return sorted(kept.values(), key=lambda i: (i.created_utc, i.fullname))
