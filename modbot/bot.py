"""The running bot: poll the status page, update the store, deliver what is due.

``Bot`` owns two tasks while it runs: the poller (fetch, diff, render, save; one
transaction per changed poll) and the deliverer (ask the publisher what is due and do
it). They meet only through the store and an ``asyncio.Event`` that wakes the
deliverer after a poll saved something. Stopping sets an event both watch; because
every step commits before and after each Reddit call, cancelling mid-call is safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from modbot import incidents
from modbot.errors import FeedError, FeedRateLimited, ModbotError, TemplateError
from modbot.feed import IncidentsFeed
from modbot.incidents import Tracked
from modbot.publisher import LAST_ERROR_KEY, Publisher
from modbot.render import PageInfo, Rendered, Renderer
from modbot.statuspage import FetchResult
from modbot.store import Store

log = logging.getLogger(__name__)

PAUSED_KEY = "paused"
LAST_POLL_KEY = "last_poll:{page}"
PAGE_INFO_KEY = "page_info:{page}"
STOP_GRACE = 3.0


class FeedSource(Protocol):
    """Where snapshots come from (``StatuspageClient``, or a replay in the demo)."""

    async def fetch(self) -> FetchResult:
        """One poll of the feed."""
        ...


@dataclass(frozen=True)
class PollReport:
    """What one poll found."""

    ok: bool
    changed: bool
    events: tuple[incidents.Event, ...] = ()
    message: str = ""
    retry_after: float | None = None


def pause_state(store: Store) -> dict[str, object] | None:
    """Who paused posting and when, or ``None`` when the bot is not paused."""
    saved = store.get(PAUSED_KEY)
    if not saved:
        return None
    value = json.loads(saved)
    return value if isinstance(value, dict) and value.get("paused") else None


def set_paused(store: Store, paused: bool, *, by: str, at: float) -> None:
    """Pause or resume posting; the running bot notices within one poll interval."""
    store.put(PAUSED_KEY, json.dumps({"paused": paused, "by": by, "at": at}))


def page_info_from(feed: IncidentsFeed, configured_url: str) -> PageInfo:
    """The page name and public URL to show: the feed's own, else the configured URL."""
    url = (feed.page.url if feed.page and feed.page.url else configured_url).rstrip("/")
    name = urlsplit(url).hostname or url
    return PageInfo(name=name, url=url)


class Bot:
    """One status page watched, one target (Reddit or dry-run) delivered to."""

    def __init__(
        self,
        *,
        store: Store,
        feed: FeedSource,
        renderer: Renderer,
        publisher: Publisher,
        page: str,
        poll_interval: float,
        components: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        on_poll: Callable[[PollReport], None] | None = None,
    ) -> None:
        self.store = store
        self.feed = feed
        self.renderer = renderer
        self.publisher = publisher
        self.page = page
        self.poll_interval = poll_interval
        self.components = tuple(components)
        self.clock = clock
        self.on_poll = on_poll
        # Only the incidents of the latest snapshot stay in memory (the feed lists 50
        # at most); the rest live in the store, so memory stays flat over years.
        self.known: dict[str, Tracked] = {}
        self._work = asyncio.Event()
        self._feed_failures = 0
        self._load_page_info()

    # --- one poll -------------------------------------------------------------------
    async def poll(self) -> PollReport:
        """Fetch once and save what changed; feed errors become a failed report."""
        self._reload_templates()
        try:
            result = await self.feed.fetch()
        except FeedError as exc:
            report = PollReport(
                ok=False,
                changed=False,
                message=str(exc),
                retry_after=exc.retry_after if isinstance(exc, FeedRateLimited) else None,
            )
            self._record_poll(report)
            return report
        if result.feed is None:
            report = PollReport(ok=True, changed=False, message="unchanged (304)")
            self._record_poll(report)
            return report
        report = self._apply(result.feed)
        self._record_poll(report)
        if report.changed:
            self._work.set()
        return report

    def _apply(self, feed: IncidentsFeed) -> PollReport:
        self._sync_page_info(feed)
        baseline = self.store.baseline_at(self.page)
        listed = {incident.id for incident in feed.incidents}
        missing = listed - self.known.keys()
        if missing:
            self.known.update(self.store.tracked(self.page, missing))
        outcome = incidents.diff(self.known, feed, baseline_at=baseline, components=self.components)
        forced = self.store.forced(self.page) if outcome.changed else set()
        to_render = {i: t for i, t in outcome.changed.items() if t.announce or i in forced}
        rendered, errors = self.render(to_render)
        now = self.clock()
        self.store.save_poll(
            self.page,
            changed=outcome.changed,
            rendered=rendered,
            render_errors=errors,
            now=now,
            baseline_at=baseline or datetime.fromtimestamp(now, UTC),
        )
        self.known = {i: t for i, t in {**self.known, **outcome.changed}.items() if i in listed}
        for event in outcome.events:
            log.info("incident %s", event)
        if baseline is None:
            open_count = sum(1 for t in outcome.changed.values() if t.announce)
            log.info(
                "first poll of %s: %d incidents recorded as a baseline, %d open to announce",
                self.page,
                len(outcome.changed),
                open_count,
            )
        summary = f"{len(feed.incidents)} incidents, {len(outcome.events)} changes"
        return PollReport(
            ok=True, changed=bool(outcome.changed), events=outcome.events, message=summary
        )

    def render(self, tracked: Mapping[str, Tracked]) -> tuple[dict[str, Rendered], dict[str, str]]:
        """Render incidents; a failing one keeps its previous body and reports why."""
        rendered: dict[str, Rendered] = {}
        errors: dict[str, str] = {}
        for incident_id, item in tracked.items():
            try:
                rendered[incident_id] = self.renderer.render_incident(item.view)
            except TemplateError as exc:
                log.error(
                    "incident %s not re-rendered, its comment stays as it was: %s", incident_id, exc
                )
                errors[incident_id] = str(exc)
        return rendered, errors

    def rerender_all(self, *, only_open: bool = True) -> int:
        """Re-render announced incidents with the current templates; returns how many."""
        forced = self.store.forced(self.page)
        chosen = {
            i: t
            for i, t in self.store.tracked(self.page).items()
            if (t.announce or i in forced) and (t.view.is_open or not only_open)
        }
        rendered, errors = self.render(chosen)
        self.store.save_renders(self.page, rendered, errors)
        self._work.set()
        return len(rendered)

    def _reload_templates(self) -> None:
        try:
            changed = self.renderer.reload_if_changed()
        except TemplateError as exc:
            log.error("template change rejected, still using the previous templates: %s", exc)
            return
        if changed:
            self.rerender_all(only_open=False)

    # --- page info --------------------------------------------------------------------
    def _load_page_info(self) -> None:
        saved = self.store.get(PAGE_INFO_KEY.format(page=self.page))
        if saved:
            data = json.loads(saved)
            self.renderer.page = PageInfo(name=data["name"], url=data["url"])

    def _sync_page_info(self, feed: IncidentsFeed) -> None:
        info = page_info_from(feed, self.page)
        if info == self.renderer.page:
            return
        self.renderer.page = info
        self.store.put(PAGE_INFO_KEY.format(page=self.page), json.dumps(info.__dict__))
        self.rerender_all(only_open=False)

    def _record_poll(self, report: PollReport) -> None:
        now = self.clock()
        value: dict[str, object] = {"at": now, "ok": report.ok, "message": report.message}
        saved = self.store.get(LAST_POLL_KEY.format(page=self.page))
        last_ok = json.loads(saved).get("last_ok") if saved else None
        value["last_ok"] = now if report.ok else last_ok
        self.store.put(LAST_POLL_KEY.format(page=self.page), json.dumps(value))
        if not report.ok:
            error = {"at": now, "kind": "status page", "message": report.message}
            self.store.put(LAST_ERROR_KEY, json.dumps(error))

    # --- delivery -----------------------------------------------------------------------
    def paused(self) -> bool:
        """True while a moderator has paused posting."""
        return pause_state(self.store) is not None

    async def deliver(self) -> float | None:
        """Deliver what is due now; return when to look again (``None``: on the next poll)."""
        return await self.publisher.deliver_due(paused=self.paused())

    # --- the loops ----------------------------------------------------------------------
    async def run_once(self) -> PollReport:
        """One poll, then every delivery due (for cron and scripts).

        An edit held back by the minimum edit gap is waited for, so the run ends with
        every comment current; longer waits (rate limits, backoff) are left for the
        next run.
        """
        report = await self.poll()
        if not report.ok:
            log.warning("status page: %s", report.message)
        horizon = self.clock() + self.publisher.min_edit_interval
        wake_at = await self.deliver()
        while wake_at is not None and wake_at <= horizon:
            await asyncio.sleep(max(wake_at - self.clock(), 0.0))
            wake_at = await self.deliver()
        return report

    async def run(self, stop: asyncio.Event, extra: Mapping[str, Step] | None = None) -> None:
        """Run the poller, the deliverer and any ``extra`` loops until ``stop`` is set.

        Each loop repeats one step and sleeps for the seconds it returns. An error
        in a step is logged and the loop carries on; stopping gives every task
        ``STOP_GRACE`` seconds, then cancels what is left (safe at any point).
        """
        loops: dict[str, Step] = {"poller": self._poll_step, "deliverer": self._deliver_step}
        loops.update(extra or {})
        tasks = [
            asyncio.create_task(self._loop(name, step, stop), name=name)
            for name, step in loops.items()
        ]
        try:
            await stop.wait()
        finally:
            stop.set()
            await _finish(tasks, STOP_GRACE)

    async def _loop(self, name: str, step: Step, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                wait = await step()
            except ModbotError as exc:
                log.error("%s: %s", name, exc)
                wait = self.poll_interval
            except Exception:
                log.exception("%s: unexpected error; carrying on", name)
                wait = self.poll_interval
            wake = self._work if name == "deliverer" else None
            await _wait(stop, wait, wake)

    async def _poll_step(self) -> float:
        started = self.clock()
        report = await self.poll()
        if self.on_poll is not None:
            self.on_poll(report)
        if report.ok:
            if self._feed_failures:
                log.info("status page reachable again")
            self._feed_failures = 0
        else:
            self._feed_failures += 1
            log.warning(
                "status page: %s (will retry every %g s)", report.message, self.poll_interval
            )
        wait = self.poll_interval - (self.clock() - started)
        if report.retry_after:
            wait = max(wait, report.retry_after)
        return max(wait, 0.0)

    async def _deliver_step(self) -> float:
        self._work.clear()
        wake_at = await self.deliver()
        if wake_at is None:
            return self.poll_interval
        return max(wake_at - self.clock(), 0.05)


Step = Callable[[], Awaitable[float]]


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
