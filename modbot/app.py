"""The running bot: opens every outside system, runs the tasks, closes it all.

``App`` is an async context manager. Entering it opens, in order: the state store, the
render worker, the HTTP client for status pages, the Reddit session (or the dry-run
printer); then it wires the poller, the deliverer, the moderator operations and the
inbox. Leaving closes them in reverse order. ``run`` starts the tasks (poller,
deliverer, inbox) under one supervisor and stops them on SIGINT/SIGTERM, giving each a
bounded grace before it is cancelled, which is safe at any point because every step
commits before and after each Reddit call.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from modbot.bodies import Bodies, Engine
from modbot.crashpoints import Checkpoint, crash_at
from modbot.deliverer import Deliverer, Report
from modbot.errors import ModbotError, StateLost, StoreError, TemplateError
from modbot.inbox import Inbox
from modbot.operations import SETTLE_TIMEOUT, Operations
from modbot.poller import Poller, PollReport
from modbot.ports import Source, Store, Target
from modbot.records import Kind
from modbot.render import Templates, read_templates
from modbot.sandbox import RenderWorker
from modbot.settings import Settings, default_templates_dir
from modbot.statuspage import StatuspageClient, make_http_client
from modbot.store import START_FRESH, SqliteStore
from modbot.watches import DEFAULT_WATCH, default_page, watch_scope

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

STOP_GRACE = 3.0
Step = Callable[[], Awaitable[float]]


class App:
    """One bot: one watch, one target, one store. Use as ``async with App(...) as app``."""

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
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.out = out
        self.clock = clock
        self.watch = watch_scope(DEFAULT_WATCH, dry_run)
        self._given_target = target
        self._given_source = source
        self._given_http = http
        self._given_engine = engine
        self.checkpoint = checkpoint or crash_at(settings.crash_at)
        self._feed_attempts = feed_attempts
        self._settle_timeout = settle_timeout
        self._stack = AsyncExitStack()
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[Report]] = []
        self._looping = False
        self.inbox: Inbox | None = None
        self.fatal: StateLost | None = None  # why the loops stopped by themselves, if they did

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
        store = await SqliteStore.open(settings.database)
        self._stack.push_async_callback(store.close)
        damage = await store.integrity_problems()
        if damage:
            raise StoreError(
                f"state file {settings.database} is damaged ({damage[0]}); nothing was "
                f"written or posted{START_FRESH}"
            )
        self.store: Store = store
        engine = self._given_engine
        if engine is None:
            worker = RenderWorker(timeout=settings.render_timeout)
            self._stack.push_async_callback(worker.close)
            engine = worker
        self.target = self._given_target or await self._open_target()
        templates = await self._templates(engine)
        health = await self.store.health(self.watch)
        self.bodies = Bodies(
            engine,
            templates,
            page=health.page or default_page(settings.statuspage_url),
            zone=ZoneInfo(settings.timezone) if settings.timezone else None,
            subreddit=settings.subreddit,
            max_length=settings.max_comment_length,
        )
        self.deliverer = Deliverer(
            self.store,
            self.target,
            watch=self.watch,
            min_edit_interval=settings.min_edit_interval,
            reconcile_grace=settings.reconcile_grace,
            verify_interval=settings.megathread_check_interval,
            clock=self.clock,
            checkpoint=self.checkpoint,
        )
        self.poller = Poller(
            watch=self.watch,
            source=self._given_source or await self._open_source(),
            store=self.store,
            bodies=self.bodies,
            components=settings.components,
            templates_dir=settings.templates_path,
            clock=self.clock,
            on_change=self._wake.set,
        )
        self.poller.current_thread = lambda: self.deliverer.thread_id
        self.operations = Operations(
            store=self.store,
            poller=self.poller,
            deliver=self.deliver,
            subreddit=settings.subreddit,
            dry_run=self.dry_run,
            clock=self.clock,
            settle_timeout=self._settle_timeout,
        )
        mailbox = getattr(self.target, "unread", None)
        if mailbox is not None and not self.dry_run:
            self.inbox = Inbox(
                self.target,  # type: ignore[arg-type]  # RedditClient is both ports
                self.operations,
                self.store,
                self.clock,
                self.checkpoint,
            )

    async def _templates(self, engine: Engine) -> Templates:
        """The configured templates, or the shipped ones while those are broken: a bad
        template must never stop the updates."""
        folder = self.settings.templates_path
        try:
            templates = read_templates(folder)
            await engine.check(templates, self.settings.max_comment_length)
        except TemplateError as exc:
            log.error("TEMPLATES BROKEN, using the shipped defaults until they are fixed: %s", exc)
            await self.store.record_templates(
                self.watch, f"shipped defaults ({folder} is broken: {exc})", self.clock()
            )
            return read_templates(default_templates_dir())
        await self.store.record_templates(self.watch, str(folder), self.clock())
        return templates

    async def _open_target(self) -> Target:
        if self.dry_run:
            from modbot.dryrun import DryRunTarget  # noqa: PLC0415 - dry-run only

            return DryRunTarget(self.out)
        from modbot.reddit import RedditClient  # noqa: PLC0415 - loads asyncpraw

        reddit = RedditClient(self.settings, clock=self.clock)
        self._stack.push_async_callback(reddit.close)
        return reddit

    async def _open_source(self) -> Source:
        http = self._given_http
        if http is None:
            http = make_http_client(self.settings.http_timeout)
            self._stack.push_async_callback(http.aclose)
        return StatuspageClient(self.settings.statuspage_url, http, attempts=self._feed_attempts)

    # --- delivery on request ------------------------------------------------------------------
    async def deliver(self, keys: Collection[tuple[Kind, str]]) -> Report:
        """Have these subjects delivered now and return the round's report.

        While the loops run, the deliverer task does it (one owner of Reddit calls in
        this process); otherwise, one round runs here.
        """
        if not self._looping:
            return await self.deliverer.round(keys=keys)
        waiter: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        return await waiter

    # --- one pass, for cron and scripts -------------------------------------------------------
    async def run_once(self) -> PollReport:
        """One poll, then every delivery due.

        An edit held back by the minimum edit gap is waited for, so the run ends with
        every comment current; longer waits (rate limits, backoff) are left for the next
        run.
        """
        report = await self.poller.poll()
        if not report.ok:
            log.warning("status page: %s", report.message)
        horizon = self.clock() + self.settings.min_edit_interval
        wake_at = (await self.deliverer.round()).wake_at
        while wake_at is not None and wake_at <= horizon:
            await asyncio.sleep(max(wake_at - self.clock(), 0.0))
            wake_at = (await self.deliverer.round()).wake_at
        return report

    # --- the loops ----------------------------------------------------------------------------
    async def run(
        self, stop: asyncio.Event, on_poll: Callable[[PollReport], None] | None = None
    ) -> None:
        """Run the poller, the deliverer and the inbox until ``stop`` is set."""
        loops: dict[str, Step] = {
            "poller": self._poll_step(on_poll),
            "deliverer": self._deliver_step,
        }
        if self.inbox is not None:
            loops["inbox"] = self._inbox_step
        self._looping = True
        tasks = [
            asyncio.create_task(self._loop(name, step, stop), name=name)
            for name, step in loops.items()
        ]
        try:
            await stop.wait()
        finally:
            stop.set()
            self._looping = False
            await _finish(tasks, STOP_GRACE)
            for waiter in self._waiters:
                waiter.cancel()

    async def _loop(self, name: str, step: Step, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                wait = await step()
            except StateLost as exc:
                self.fatal = self.fatal or exc  # said once, by whoever ends the process
                stop.set()
                return
            except ModbotError as exc:
                log.error("%s: %s", name, exc)
                wait = self.settings.poll_interval
            except Exception as exc:  # the loop must outlive any one failure
                log.error("%s: unexpected %s: %s; carrying on", name, type(exc).__name__, exc)
                log.debug("%s: details", name, exc_info=True)
                wait = self.settings.poll_interval
            wake = self._wake if name == "deliverer" else None
            await _wait(stop, wait, wake)

    def _poll_step(self, on_poll: Callable[[PollReport], None] | None) -> Step:
        failures = 0

        async def step() -> float:
            nonlocal failures
            started = self.clock()
            report = await self.poller.poll()
            if on_poll is not None:
                on_poll(report)
            if report.ok:
                if failures:
                    log.info("status page reachable again")
                failures = 0
            else:
                failures += 1
                log.warning(
                    "status page: %s (will retry every %g s)",
                    report.message,
                    self.settings.poll_interval,
                )
            wait = self.settings.poll_interval - (self.clock() - started)
            if report.retry_after:
                wait = max(wait, report.retry_after)
            return max(wait, 0.0)

        return step

    async def _deliver_step(self) -> float:
        self._wake.clear()
        waiters, self._waiters = self._waiters, []
        try:
            report = await self.deliverer.round()
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(
                        exc if isinstance(exc, Exception) else ModbotError("stopped")
                    )
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(report)
        if report.wake_at is None:
            return self.settings.poll_interval
        return max(report.wake_at - self.clock(), 0.05)

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
