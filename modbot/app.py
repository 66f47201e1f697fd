"""The running bot: opens every outside system, runs the tasks, closes it all.

``App`` is an async context manager. Entering it opens, in order: the state store, the
render worker, the Reddit session (or the dry-run printer) and the HTTP client for
status pages; then it builds, for each watch, a deliverer, a poller and the moderator
operations, one inbox for all (with the outbox and the wiki's pages), and a reader of
readers' reports per subreddit, each given what it needs when it is built. Leaving
closes them in reverse order. ``run`` starts the tasks (a poller and a deliverer per
watch, the inbox, the readers) under one supervisor and
stops them on SIGINT/SIGTERM, giving each a bounded grace before it is cancelled, which
is safe at any point because every step commits before and after each Reddit call.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from modbot import default_templates_dir
from modbot.config.database import DatabaseURL
from modbot.config.settings import Settings
from modbot.config.watches import Watch, default_page, deployment_name, load_watches, pick
from modbot.core import alerts
from modbot.core.alerts import Condition, PageHealth, Where
from modbot.core.machine import is_waiting
from modbot.core.records import IncidentView, Kind, PollReport, Report
from modbot.core.render import Readers, Templates
from modbot.errors import Deposed, ModbotError, StateLost, StoreError, TemplateError
from modbot.monitor.metrics import Figures
from modbot.ports import Lease, Source, Store, Target
from modbot.rendering.bodies import Bodies, Engine
from modbot.rendering.files import read_templates
from modbot.rendering.sandbox import RenderWorker
from modbot.shell.alerts import Alerts
from modbot.shell.crashpoints import Checkpoint, crash_at
from modbot.shell.deliverer import Deliverer
from modbot.shell.heartbeat import Heartbeat
from modbot.shell.inbox import Inbox
from modbot.shell.operations import SETTLE_TIMEOUT, Operations
from modbot.shell.outbox import Outbox
from modbot.shell.poller import Poller
from modbot.shell.reports import SubredditReader, WatchReader, readers_of
from modbot.shell.statusview import heartbeat_interval, stale
from modbot.shell.wiki import WikiPages, WikiTemplates
from modbot.sources.choose import make_http_client, make_source
from modbot.store import open_store, refuse_damaged

if TYPE_CHECKING:
    import httpx

    from modbot.reddit.client import RedditClient

log = logging.getLogger(__name__)

STOP_GRACE = 3.0
# The longest an idle deliverer sleeps between its own looks at the megathread: a watch
# with nothing open reads nothing, but the thread a moderator pins should not wait for
# the next incident to be noticed (and said, if it is missing).
IDLE_REST = 30.0
Step = Callable[[], Awaitable[float]]


class StoreTrouble:
    """Store errors, each said once when it starts and once when it clears.

    A full disk fails every step of every loop until space is freed; said each time, it
    is ten lines a second that bury everything else. Which loops still meet which error
    is kept, so the error is said when the first loop meets it and its end when the last
    of them gets a step through again.
    """

    def __init__(self, cleared: str) -> None:
        self.cleared = cleared
        self._meeting: dict[str, str] = {}  # loop -> the error its last step met

    def failed(self, loop: str, error: str) -> None:
        """A step of ``loop`` failed with ``error``."""
        if error not in self._meeting.values():
            log.error("%s: %s", loop, error)
        self._meeting[loop] = error

    def passed(self, loop: str) -> None:
        """A step of ``loop`` went through."""
        error = self._meeting.pop(loop, None)
        if error is not None and error not in self._meeting.values():
            log.info("%s: %s", loop, self.cleared)


@dataclass
class WatchRuntime:
    """One watch's pieces inside a running app."""

    watch: Watch
    scope: str
    target: Target
    bodies: Bodies
    poller: Poller
    deliverer: Deliverer
    operations: Operations
    where: Where
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: list[asyncio.Future[Report]] = field(default_factory=list)


class App:
    """One bot: every watch, one store, one HTTP client, one Reddit session and budget.

    Use as ``async with App(...) as app``. ``source`` and ``target``, when given, serve
    every watch (the tests use them with one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool,
        out: TextIO,
        clock: Callable[[], float] = time.time,
        target: Target | None = None,
        source: Source | None = None,
        http: httpx.AsyncClient | None = None,
        engine: Engine | None = None,
        checkpoint: Checkpoint | None = None,
        feed_attempts: int = 3,
        settle_timeout: float = SETTLE_TIMEOUT,
        watches: Sequence[Watch] | None = None,
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.out = out
        self.clock = clock
        self.watches = list(watches) if watches is not None else load_watches(settings)
        self._given_target = target
        self._given_source = source
        self._given_http = http
        self._given_engine = engine
        self.checkpoint = checkpoint or crash_at(settings.crash_at)
        self._feed_attempts = feed_attempts
        self._settle_timeout = settle_timeout
        self._stack = AsyncExitStack()
        self._looping = False
        self.runtimes: list[WatchRuntime] = []
        self._pages: dict[str, PageHealth] = {}  # each watch's page: failing since, as polled
        self._moves_told: set[str] = set()  # watches whose moves were looked at since the start
        self._filters_checked: set[str] = set()  # watches whose filters met the live page
        self._http: httpx.AsyncClient | None = None
        self.reddit: RedditClient | None = None
        self.inbox: Inbox | None = None
        self.readers: list[SubredditReader] = []  # one per subreddit whose readers are read
        self.fatal: StateLost | None = None  # why the loops stopped by themselves, if they did
        self.figures = Figures([w.name for w in self.watches])
        self.heartbeat: Heartbeat | None = None
        self._following: str | None = None  # why this process waits, while it does
        self.member = (socket.gethostname(), os.getpid())  # how status names this process
        self.lease: Lease | None = None
        self.leading = False  # polls and posts now (``modbot_leader``)
        self._stop = asyncio.Event()  # run()'s stop, which a lost state file sets
        postgres = isinstance(settings.database, DatabaseURL)
        self.store_trouble = StoreTrouble(
            f"{'database' if postgres else 'state file'} writable again"
        )

    # --- the first watch, for commands about one (and the tests) ---------------------------
    def runtime(self, name: str | None = None) -> WatchRuntime:
        """The named watch's pieces, or the only watch's (see ``watches.pick``)."""
        chosen = pick(self.watches, name)
        return next(r for r in self.runtimes if r.watch is chosen)

    @property
    def first(self) -> WatchRuntime:
        """The first watch's pieces."""
        return self.runtimes[0]

    @property
    def watch(self) -> str:
        """The first watch's store scope."""
        return self.first.scope

    @property
    def poller(self) -> Poller:
        """The first watch's poller."""
        return self.first.poller

    @property
    def deliverer(self) -> Deliverer:
        """The first watch's deliverer."""
        return self.first.deliverer

    @property
    def operations(self) -> Operations:
        """The first watch's moderator operations."""
        return self.first.operations

    @property
    def target(self) -> Target:
        """The first watch's target."""
        return self.first.target

    # --- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> App:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        settings = self.settings
        store = await open_store(settings.database)
        self._stack.push_async_callback(store.close)
        await refuse_damaged(store, settings.database, kept="; nothing was written or posted")
        self.store: Store = store
        # Good polls and Reddit calls are held in memory: an idle poll writes nothing.
        store.hold_health(min(heartbeat_interval(w.poll_interval) for w in self.watches))
        engine = self._given_engine
        if engine is None:
            worker = RenderWorker(timeout=settings.render_timeout)
            self._stack.push_async_callback(worker.close)
            engine = worker
        if self._given_target is None and not self.dry_run:
            from modbot.reddit.client import RedditClient  # noqa: PLC0415 - loads asyncpraw

            # Every write proves first that this process still leads (see the store).
            self.reddit = RedditClient(settings, clock=self.clock, before_write=store.confirm_lead)
            self._stack.push_async_callback(self.reddit.close)
        # Alerts go out by modmail, through the inbox's outbox: none without Reddit.
        self.alerts = Alerts(
            store, enabled=settings.alerts and self.reddit is not None, clock=self.clock
        )
        http = self._given_http
        if http is None and self._given_source is None:
            longest = max(w.poll_interval for w in self.watches)
            http = make_http_client(settings.http_timeout, poll_interval=longest)
            self._stack.push_async_callback(http.aclose)
        self._http = http
        for watch in self.watches:
            self.runtimes.append(await self._runtime(watch, engine, http))
        if self.reddit is not None:
            self.readers = self._readers(self.reddit)
            self.inbox = self._inbox(self.reddit)
            # Every caller of the shared budget, known before it first calls: a watch that
            # never called yet is the one a slot is most owed to (see core.budget).
            self.reddit.budget.expect(
                "",  # the account itself: the inbox, the outbox, start-up lookups
                *(r.deliverer.name for r in self.runtimes),
                *(reader.caller for reader in self.readers),
            )
        await self._open_monitoring(http)

    def _inbox(self, reddit: RedditClient) -> Inbox:
        """The account's mail and pages loop: commands, the outbox, the wiki's pages."""
        wiki_subreddits = [w.subreddit for w in self.watches if w.wiki_templates and w.subreddit]
        pages = None
        if wiki_subreddits:
            pages = WikiPages(
                subreddits=wiki_subreddits,
                wiki=reddit,
                mailbox=reddit,
                store=self.store,
                clock=self.clock,
            )
        sender = Outbox(
            self.store,
            reddit,
            # A message cannot be unsent: before one is sent again, the listing lag is
            # allowed for after the longest its lost call may have taken.
            grace=self.settings.reconcile_grace + self.settings.reddit_timeout,
            clock=self.clock,
            checkpoint=self.checkpoint,
        )
        return Inbox(
            reddit,
            {r.watch.name: r.operations for r in self.runtimes},
            self.store,
            self.clock,
            self.checkpoint,
            outbox=sender,
            pages=pages,
            on_command=self.figures.command,
        )

    async def _open_monitoring(self, http: httpx.AsyncClient | None) -> None:
        """The metrics listener and the heartbeat, when the settings ask for them."""
        settings = self.settings
        if settings.heartbeat_url is not None:
            if http is None:
                http = make_http_client(settings.http_timeout)
                self._stack.push_async_callback(http.aclose)
            url = settings.heartbeat_url.get_secret_value()
            self.heartbeat = Heartbeat(url, http, self.clock)
        if settings.metrics_port is not None:
            from modbot.monitor.metrics import MetricsServer, reddit_figures  # noqa: PLC0415

            client = self.reddit
            server = MetricsServer(
                self.figures,
                reddit=reddit_figures(client, self.clock) if client is not None else (lambda: None),
                health=self.health_problems,
                leader=lambda: self.leading,
            )
            await server.start(settings.metrics_host, settings.metrics_port)
            self._stack.push_async_callback(server.close)

    async def _pressed(self, scope: str) -> bool:
        """Whether edits are backed up: over half the Reddit call budget of this minute
        used, or deliveries of the watch waiting (a "last checked" line then waits)."""
        reddit = self.reddit
        if reddit is not None and 2 * reddit.budget.used(self.clock()) >= reddit.budget.limit:
            return True
        return any(is_waiting(r) for r in (await self.store.work(scope)).rows)

    async def health_problems(self) -> list[str]:
        """Why the bot is not alive and current, by ``check --live``'s rule (empty: it is)."""
        problems = []
        now = self.clock()
        for runtime in self.runtimes:
            health = await self.store.health(runtime.scope)
            waiting = sum(1 for r in (await self.store.work(runtime.scope)).rows if is_waiting(r))
            watch = runtime.watch
            problems += stale(
                watch.name, watch.poll_interval, health, waiting, dry=self.dry_run, now=now
            )
        return problems

    async def _runtime(
        self, watch: Watch, engine: Engine, http: httpx.AsyncClient | None
    ) -> WatchRuntime:
        settings = self.settings
        scope = watch.scope(self.dry_run)
        target = self._target(watch)
        health = await self.store.health(scope)
        bodies = Bodies(
            engine,
            await self._templates(watch, scope, engine),
            home=watch.url,
            page=health.page or default_page(watch.url),
            zone=ZoneInfo(watch.timezone) if watch.timezone else None,
            subreddit=watch.subreddit,
            max_length=settings.max_comment_length,
            watch=watch.name,
        )
        where = Where(scope, watch.name, watch.subreddit or "")
        deliverer = Deliverer(
            self.store,
            target,
            watch=scope,
            min_edit_interval=settings.min_edit_interval,
            reconcile_grace=settings.reconcile_grace,
            # How late a call sent by a leader that lost the lead may still land.
            late_writes=settings.reddit_timeout + 1.0,
            verify_interval=settings.megathread_check_interval,
            clock=self.clock,
            checkpoint=self.checkpoint,
            name=watch.name,
            moderation=self.reddit,
            alert=self.alerts.for_watch(where),
        )
        wake = asyncio.Event()
        source = self._given_source or make_source(watch, http, attempts=self._feed_attempts)
        poller = Poller(
            watch=scope,
            source=source,
            store=self.store,
            bodies=bodies,
            components=watch.components,
            templates_dir=watch.templates_path,
            clock=self.clock,
            on_change=wake.set,
            keep_days=settings.keep_days,
            current_thread=lambda: deliverer.thread_id,
            wiki=self._wiki(watch, scope),
            last_checked=watch.last_checked,
            pressed=lambda: self._pressed(scope),
            readers=self._readers_of(watch, scope),
        )
        operations = Operations(
            store=self.store,
            poller=poller,
            # The runtime is looked up when asked: it is built from these very pieces.
            deliver=lambda keys: self._deliver(self.runtime(watch.name), keys),
            subreddit=watch.subreddit,
            dry_run=self.dry_run,
            clock=self.clock,
            settle_timeout=self._settle_timeout,
            reports=watch.reports,
        )
        self._pages[watch.name] = alerts.page_at_start(
            health.last_poll_ok, health.last_poll_at, health.last_good_poll_at
        )
        return WatchRuntime(
            watch, scope, target, bodies, poller, deliverer, operations, where, wake
        )

    def _readers(self, reddit: RedditClient) -> list[SubredditReader]:
        """A reader for each subreddit with a watch that reads its readers' reports (one
        per subreddit: watches there share its listings)."""
        by_subreddit: dict[str, list[WatchReader]] = {}
        names: dict[str, str] = {}
        for runtime in self.runtimes:
            watch = runtime.watch
            if not watch.reports.reading or not watch.subreddit:
                continue
            key = watch.subreddit.lower()
            names.setdefault(key, watch.subreddit)
            by_subreddit.setdefault(key, []).append(self._watch_reader(runtime))
        return [
            SubredditReader(
                names[key],
                watches,
                reddit,
                self.store,
                clock=self.clock,
                checkpoint=self.checkpoint,
            )
            for key, watches in by_subreddit.items()
        ]

    def _watch_reader(self, runtime: WatchRuntime) -> WatchReader:
        """A watch's share of its subreddit's reader."""
        name, deliverer = runtime.watch.name, runtime.deliverer
        return WatchReader(
            watch=runtime.watch,
            scope=runtime.scope,
            bodies=runtime.bodies,
            thread_id=lambda: deliverer.thread_id,
            wake=runtime.wake.set,
            recount=runtime.poller.recount,
            counted=lambda n: self.figures.reports(name, n),
        )

    def _readers_of(
        self, watch: Watch, scope: str
    ) -> Callable[[Sequence[IncidentView]], Awaitable[dict[str, Readers]]] | None:
        """What readers reported about a watch's incidents, for their comments; None
        when the watch reads none (no Reddit, reports off, no subreddit)."""
        if self.reddit is None or not watch.reports.reading or not watch.subreddit:
            return None

        async def readers(views: Sequence[IncidentView]) -> dict[str, Readers]:
            return await readers_of(self.store, scope, watch, views, self.clock())

        return readers

    def _wiki(self, watch: Watch, scope: str) -> WikiTemplates | None:
        """The watch's wiki templates, when it asks for them and can read the wiki."""
        if not watch.wiki_templates:
            return None
        if self.reddit is None or not watch.subreddit:
            log.warning(
                "%s: wiki templates need Reddit credentials and a subreddit; using the "
                "template files",
                watch.name,
            )
            return None
        return WikiTemplates(
            scope=scope,
            subreddit=watch.subreddit,
            store=self.store,
            clock=self.clock,
            alert=self.alerts.for_watch(Where(scope, watch.name, watch.subreddit)),
        )

    def _target(self, watch: Watch) -> Target:
        if self._given_target is not None:
            return self._given_target
        if self.reddit is None:
            from modbot.reddit.dryrun import DryRunTarget  # noqa: PLC0415 - dry-run only

            return DryRunTarget(self.out)
        assert watch.subreddit is not None  # the settings insist on one with credentials
        return self.reddit.megathread(watch.subreddit, watch.megathread_title)

    async def _templates(self, watch: Watch, scope: str, engine: Engine) -> Templates:
        """The watch's templates, or the shipped ones while those are broken: a bad
        template must never stop the updates."""
        folder = watch.templates_path
        try:
            templates = read_templates(folder)
            await engine.check(templates, self.settings.max_comment_length)
        except TemplateError as exc:
            log.error(
                "%s: TEMPLATES BROKEN, using the shipped defaults until they are fixed: %s",
                watch.name,
                exc,
            )
            await self.store.record_templates(
                scope, f"shipped defaults ({folder} is broken: {exc})", self.clock()
            )
            return read_templates(default_templates_dir())
        await self.store.record_templates(scope, str(folder), self.clock())
        return templates

    # --- delivery on request ------------------------------------------------------------------
    async def deliver(self, keys: Collection[tuple[Kind, str]]) -> Report:
        """Have these subjects of the first watch delivered now (see ``_deliver``)."""
        return await self._deliver(self.first, keys)

    async def _deliver(self, runtime: WatchRuntime, keys: Collection[tuple[Kind, str]]) -> Report:
        """Have these subjects delivered now and return the round's report.

        While the loops run, the watch's deliverer task does it (one owner of the watch's
        comments in this process); otherwise, one round runs here.
        """
        if not self._looping:
            return await runtime.deliverer.round(keys=keys)
        waiter: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        runtime.waiters.append(waiter)
        runtime.wake.set()
        return await waiter

    # --- one pass, for cron and scripts -------------------------------------------------------
    async def run_once(self) -> PollReport:
        """One poll of every watch, then every delivery due; the first failed poll's
        report (or the last good one).

        An edit held back by the minimum edit gap is waited for, so the run ends with
        every comment current; longer waits (rate limits, backoff) are left for the next
        run.
        """
        if self.inbox is not None:
            await self.inbox.read_pages()  # the wiki's templates, judged by the polls
        reports = []
        for runtime in self.runtimes:
            report = await self._polled(runtime)
            if not report.ok:  # one pass: its failure is said, whatever the last pass met
                log.warning("%s: status page: %s", runtime.watch.name, report.message)
            reports.append(report)
        horizon = self.clock() + self.settings.min_edit_interval
        for runtime in self.runtimes:
            wake_at = (await self._delivered(runtime)).wake_at
            while wake_at is not None and wake_at <= horizon:
                await asyncio.sleep(max(wake_at - self.clock(), 0.0))
                wake_at = (await self._delivered(runtime)).wake_at
        if self.inbox is not None:
            await self.inbox.send_messages()  # what the polls decided to tell (wiki editors)
        return next((r for r in reports if not r.ok), reports[-1])

    async def run_once_leading(self) -> PollReport:
        """``run --once``: one pass, if no other process of the deployment leads now."""
        lease = await self.store.lease(
            self.deployment, *self.member, interval=self.settings.lease_interval
        )
        try:
            if await lease.acquire(self.clock()) is None:
                message = f"another process leads {self.deployment}; it polls and posts"
                log.info("%s", message)
                return PollReport(ok=True, changed=False, message=message)
            return await self.run_once()
        finally:
            await lease.release()

    async def _polled(self, runtime: WatchRuntime) -> PollReport:
        """One poll, counted; a good one also pings the heartbeat. A failing page is said
        once when it starts failing and once when it answers again, and the moderators
        are told when it fails for longer than ``MODBOT_ALERT_AFTER``."""
        report = await runtime.poller.poll()
        self.figures.polled(runtime.watch.name, report, runtime.poller.open_announced())
        if report.ok and self.heartbeat is not None:
            await self.heartbeat.beat()
        await self._page_checked(runtime, report)
        return report

    async def _page_checked(self, runtime: WatchRuntime, report: PollReport) -> None:
        now = self.clock()
        name = runtime.watch.name
        page, change = alerts.page_polled(self._pages[name], report.ok, now)
        self._pages[name] = page
        if not self._looping:
            pass  # run --once says each pass's failure itself
        elif change == "failing":
            log.warning(
                "%s: status page: %s (will retry every %g s; said again when it answers)",
                name,
                report.message,
                runtime.watch.poll_interval,
            )
        elif change == "recovered":
            log.info("%s: status page reachable again", name)
        elif not report.ok:
            log.debug("%s: status page still failing: %s", name, report.message)
        failing = alerts.failing_long(page.failing_since, now, self.settings.alert_after)
        await self.alerts.observe(
            runtime.where, Condition.PAGE_FAILING, holds=failing, detail=report.message
        )
        moves_due = report.moved or self.alerts.awaiting_moves(runtime.where)
        if report.ok and name not in self._filters_checked:
            self._filters_checked.add(name)
            await self._check_filters(runtime)
        if moves_due or name not in self._moves_told:
            # Every move not told yet (one found before a crash, too), once per start.
            self._moves_told.add(name)
            await self.alerts.moves(runtime.where)

    async def _check_filters(self, runtime: WatchRuntime) -> None:
        """Once per start, after the first good poll: component filters that match none
        of the names the live page lists are said once, and told to the moderators (a
        misspelt filter posts nothing, forever). Names known only from the incidents on
        the page are too few to be sure: a filter missing there is only logged."""
        watch = runtime.watch
        if not watch.components or self._http is None:
            return
        from modbot.sources.components import listed_components  # noqa: PLC0415

        try:
            listed = await listed_components(watch, self._http)
        except ModbotError as exc:
            log.info(
                "%s: cannot list the page's components to check the filters: %s", watch.name, exc
            )
            return
        if listed is None:
            return
        unmatched = listed.unmatched(watch.components)
        if unmatched:
            names = ", ".join(repr(n) for n in unmatched)
            log.warning(
                "%s: the component filter(s) %s match none of the names the page lists "
                "(%s): incidents are posted only if one matches",
                watch.name,
                names,
                ", ".join(listed.names) or "none",
            )
        if listed.complete:
            detail = f"{', '.join(unmatched)} (the page lists: {', '.join(listed.names)})"
            await self.alerts.observe(
                runtime.where, Condition.FILTERS_UNMATCHED, holds=bool(unmatched), detail=detail
            )

    async def _delivered(self, runtime: WatchRuntime) -> Report:
        """One delivery round, counted."""
        report = await runtime.deliverer.round()
        self.figures.delivered(runtime.watch.name, report)
        return report

    # --- the loops ----------------------------------------------------------------------------
    @property
    def deployment(self) -> str:
        """What names this bot among processes sharing its store (see ``watches``)."""
        return deployment_name(self.settings, self.watches, dry_run=self.dry_run)

    async def run(
        self, stop: asyncio.Event, on_poll: Callable[[PollReport], None] | None = None
    ) -> None:
        """Lead (poll, deliver, read the inbox) whenever this process holds the lease, and
        wait as a follower otherwise, until ``stop`` is set. With a state file the lease
        is always granted; with PostgreSQL one process of the deployment leads at a time."""
        lease = self.lease = await self.store.lease(
            self.deployment, *self.member, interval=self.settings.lease_interval
        )
        self._following = None
        try:
            while not stop.is_set():
                epoch = await self._take_lead(lease)
                if epoch is None:
                    await _wait(stop, self.settings.lease_interval, None)
                    continue
                await self._lead(stop, lease, epoch, on_poll)
        finally:
            await lease.release()

    async def _take_lead(self, lease: Lease) -> int | None:
        """The new epoch if this process now leads; None (said once) while another does."""
        now = self.clock()
        try:
            epoch = await lease.acquire(now)
        except StateLost:
            raise
        except StoreError as exc:
            self._follow(str(exc), warn=True)
            return None
        if epoch is None:
            try:
                who = await self.store.leadership(self.deployment, self.settings.lease_interval)
            except StateLost:
                raise
            except StoreError as exc:  # the database restarts, say: keep waiting
                self._follow(str(exc), warn=True)
                return None
            leader = who.leader if who is not None else None
            self._follow(
                f"following: {leader.host} pid {leader.pid} leads {self.deployment}"
                if leader is not None
                else f"following: another process leads {self.deployment}"
            )
        return epoch

    def _follow(self, why: str, *, warn: bool = False) -> None:
        if why != self._following:
            (log.warning if warn else log.info)(
                "%s; checking every %g s", why, self.settings.lease_interval
            )
        self._following = why

    async def _lead(
        self,
        stop: asyncio.Event,
        lease: Lease,
        epoch: int,
        on_poll: Callable[[PollReport], None] | None,
    ) -> None:
        """Run every watch's poller and deliverer, and the inbox, until ``stop`` is set or
        the lead is lost."""
        if lease.shared:
            log.info("leading %s (epoch %d)", self.deployment, epoch)
            if self._following is not None:
                # Another process led meanwhile: forget what memory says, as after a
                # crash, so every unsettled intent is looked up by its marker.
                for runtime in self.runtimes:
                    runtime.poller.restart()
                    runtime.deliverer.restart(after_another=True)
                for reader in self.readers:
                    reader.restart()
                if self.inbox is not None:
                    self.inbox.restart()
                self.alerts.restart()
        self._following = None
        started = self.clock()
        await self._mark_running(started, running=True)
        self.leading = True
        halt = asyncio.Event()
        self._stop = stop
        loops = self._loops(on_poll)
        self._looping = True
        tasks = [
            asyncio.create_task(self._loop(name, step, halt, wake), name=name)
            for name, step, wake in loops
        ]
        guards = [asyncio.create_task(_relay(stop, halt))]
        if lease.shared:
            guards.append(asyncio.create_task(self._keep_lead(lease, halt)))
        try:
            await halt.wait()
        finally:
            halt.set()
            self._looping = False
            await _finish(tasks, STOP_GRACE)
            for guard in guards:
                guard.cancel()
            self.leading = False
            await self._mark_running(started, running=False)
            for runtime in self.runtimes:
                for waiter in runtime.waiters:
                    waiter.cancel()
        if not stop.is_set():
            self._following = "deposed"

    async def _mark_running(self, started: float, *, running: bool) -> None:
        """Tell the health checks this process polls now (or no longer), so they can say
        "no good poll yet: started 20 s ago" rather than guess. Never stops the bot."""
        for runtime in self.runtimes:
            try:
                if running:
                    await self.store.record_started(runtime.scope, started)
                else:
                    await self.store.record_stopped(runtime.scope, started)
            except StateLost:
                raise
            except StoreError as exc:
                log.warning("%s: cannot record the start or stop: %s", runtime.watch.name, exc)

    def _loops(
        self, on_poll: Callable[[PollReport], None] | None
    ) -> list[tuple[str, Step, asyncio.Event | None]]:
        """Every loop of a leader: each watch's poller and deliverer, the inbox, and a
        reader of readers' reports per subreddit."""
        loops: list[tuple[str, Step, asyncio.Event | None]] = []
        for runtime in self.runtimes:
            name = runtime.watch.name
            loops.append((f"{name}: poller", self._poll_step(runtime, on_poll), None))
            loops.append((f"{name}: deliverer", self._deliver_step(runtime), runtime.wake))
        if self.inbox is not None:
            loops.append(("inbox", self._inbox_step, None))
        for reader in self.readers:
            loops.append((f"r/{reader.subreddit}: readers' reports", reader.step, None))
        return loops

    async def _keep_lead(self, lease: Lease, halt: asyncio.Event) -> None:
        """Prove the lead every ``MODBOT_LEASE_INTERVAL``; stop leading the moment it
        cannot be proven (the lock's session may be gone, and another may lead)."""
        while not halt.is_set():
            await _wait(halt, self.settings.lease_interval, None)
            if halt.is_set():
                return
            if not await lease.holding(self.clock()):
                log.warning(
                    "lost the lead of %s: stopping at once; following again", self.deployment
                )
                halt.set()

    async def _loop(
        self, name: str, step: Step, halt: asyncio.Event, wake: asyncio.Event | None
    ) -> None:
        while not halt.is_set():
            try:
                wait = await step()
                self.store_trouble.passed(name)
            except StateLost as exc:
                self.fatal = self.fatal or exc  # said once, by whoever ends the process
                self._stop.set()
                halt.set()
                return
            except Deposed as exc:
                if not halt.is_set():
                    log.warning("%s: %s", name, exc)
                halt.set()
                return
            except StoreError as exc:
                self.store_trouble.failed(name, str(exc))
                wait = self.settings.poll_interval
            except ModbotError as exc:
                log.error("%s: %s", name, exc)
                log.debug("%s: details", name, exc_info=True)
                wait = self.settings.poll_interval
            except Exception as exc:  # the loop must outlive any one failure
                log.error("%s: unexpected %s: %s; carrying on", name, type(exc).__name__, exc)
                log.debug("%s: details", name, exc_info=True)
                wait = self.settings.poll_interval
            await _wait(halt, wait, wake)

    def _poll_step(
        self, runtime: WatchRuntime, on_poll: Callable[[PollReport], None] | None
    ) -> Step:
        interval = runtime.watch.poll_interval

        async def step() -> float:
            started = self.clock()
            report = await self._polled(runtime)
            if runtime.deliverer.stale():
                runtime.wake.set()  # a resting deliverer looks at the store's news now
            if on_poll is not None:
                on_poll(report)
            wait = interval - (self.clock() - started)
            if report.retry_after:
                wait = max(wait, report.retry_after)
            return max(wait, 0.0)

        return step

    def _deliver_step(self, runtime: WatchRuntime) -> Step:
        async def step() -> float:
            runtime.wake.clear()
            waiters = list(runtime.waiters)  # those who asked before this round began
            runtime.waiters.clear()
            try:
                report = await self._delivered(runtime)
            except BaseException as exc:
                failure = exc if isinstance(exc, Exception) else ModbotError("stopped")
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
                raise
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(report)
            return self._deliverer_rest(runtime, report)

        return step

    def _deliverer_rest(self, runtime: WatchRuntime, report: Report) -> float:
        """Seconds the deliverer may sleep after a round (a wake-up ends it sooner).

        After an idle round it sleeps until its own next check is due: a change to the
        store wakes it through the poller (``Deliverer.stale``, asked after every poll),
        and new work from this process sets ``wake`` at once. The megathread is still
        looked at about as often as ``MODBOT_MEGATHREAD_CHECK_INTERVAL`` says (a post
        looks again first anyway). An idle watch then costs one wake-up per poll, not
        two. While the page makes the poller wait longer (a 429's Retry-After), a change
        from another process waits for the end of the rest: 30 s at most. Otherwise a
        row may sleep for an hour (a look for late copies) while the round's own checks
        still come every poll interval."""
        interval = runtime.watch.poll_interval
        now = self.clock()
        rest_until = runtime.deliverer.idle_until(interval)
        if rest_until is not None:
            longest = max(interval, min(self.settings.megathread_check_interval, IDLE_REST))
            return min(max(rest_until - now, 0.05), longest)
        if report.wake_at is None:
            return interval
        return min(max(report.wake_at - now, 0.05), interval)

    async def _inbox_step(self) -> float:
        assert self.inbox is not None
        await self.inbox.check()
        return self.settings.inbox_interval


async def _wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None) -> None:
    """Sleep ``seconds``, or less if ``stop`` (or ``wake``) is set meanwhile."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _relay(stop: asyncio.Event, halt: asyncio.Event) -> None:
    """Set ``halt`` when ``stop`` is set."""
    await stop.wait()
    halt.set()


async def _finish(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Give tasks ``grace`` seconds to end by themselves, then cancel the rest."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)


class stop_on_signals:  # noqa: N801 - used like a function in a with statement
    """Set ``stop`` on SIGINT/SIGTERM while inside the block (handlers only set a flag)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.loop = asyncio.get_running_loop()
        self.installed: list[signal.Signals] = []

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
                continue
            self.installed.append(sig)

    def __exit__(self, *_: object) -> None:
        for sig in self.installed:
            self.loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            log.info("%s received: stopping", sig.name)
        self.stop.set()


# Collections of the youngest objects come every this many allocations (Python's default
# is 700): a changed poll allocates tens of thousands of short-lived objects, nearly all
# freed by their reference counts before a collection could find them.
YOUNG_COLLECTION_EVERY = 5000


def settle_memory() -> None:
    """After start-up, for a long run: what start-up loaded (modules, classes, settings,
    most of the process's objects) is kept for the process's life, so it is collected
    once and moved out of the collector's sight (``gc.freeze``). A full collection then
    walks only what the bot made since: measured, the collector's share of a changed
    50-incident poll fell from 1.5 ms to 0.2 to 0.5 ms."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
