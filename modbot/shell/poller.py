"""Polling one watch: fetch a snapshot, diff it, render what changed, save it all at once.

One transaction per changed poll holds the new views, their bodies, the delivery
intents of new incidents and the page's validators, so the validators can never run
ahead of the state they describe: if the save fails, the next poll fetches in full
and nothing is lost. The poller never talks to Reddit; it wakes the deliverer.

It also owns the watch's templates: a changed file is checked in the render worker
before it replaces the last good set, and then only what readers still see is
re-rendered (open incidents, and those closed in the last day whose comment is in the
current megathread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from modbot.core import incidents, markdown
from modbot.core.feed import IncidentsFeed
from modbot.core.records import IncidentView, PageInfo, PollReport, Rendered, Tracked, Validators
from modbot.core.render import Readers
from modbot.errors import FeedError, FeedRateLimited, TemplateError
from modbot.ports import Source, Store
from modbot.rendering.bodies import Bodies
from modbot.rendering.files import folder_stamp, read_templates
from modbot.shell.wiki import WikiTemplates, describe

log = logging.getLogger(__name__)

RERENDER_WINDOW = 24 * 3600.0  # closed incidents readers may still look at


def page_info(home: str) -> PageInfo:
    """The page comments name and link to: ``home``, the page of the URL the moderator
    configured (for a feed, the site the feed's URL is on), never the URL a feed gives
    for itself. A watch of ``https://anthropic.statuspage.io`` whose feed says it is
    ``https://status.claude.com`` names and links the configured origin: what the
    moderator chose, which serves the same page, and a feed that could name its own
    page could name any."""
    url = home.strip().rstrip("/")
    return PageInfo(name=markdown.host_of(url) or url, url=url)


def foreign_page_url(feed: IncidentsFeed, home: str) -> str | None:
    """The URL the feed gives for its page when that is not on ``home``'s host, else
    ``None`` (a feed that names no page agrees with the configuration)."""
    given = (feed.page.url or "").strip() if feed.page else ""
    if not given or markdown.host_of(given) == markdown.host_of(home):
        return None
    return given


FOREIGN_PAGES_LOGGED = 16  # different foreign page URLs a watch logs, at most


class Poller:
    """Polls one watch's source into the store."""

    def __init__(
        self,
        *,
        watch: str,
        source: Source,
        store: Store,
        bodies: Bodies,
        components: tuple[str, ...] = (),
        templates_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.watch = watch
        self.source = source
        self.store = store
        self.bodies = bodies
        self.components = components
        self.templates_dir = templates_dir
        self.clock = clock
        self.on_change = on_change
        # Only the incidents of the latest snapshot stay in memory (a feed lists 50 at
        # most); the rest live in the store, so memory stays flat over years.
        self.known: dict[str, Tracked] = {}
        self._validators: Validators | None = None  # None: not loaded from the store yet
        self._stamp = folder_stamp(templates_dir) if templates_dir else None
        self._bad_stamp: object = None
        self._foreign_pages: set[str] = set()  # page URLs of the feed's already logged
        self.current_thread: Callable[[], str | None] = lambda: None
        self.wiki: WikiTemplates | None = None  # templates from the subreddit's wiki, if on
        # What readers reported about incidents, for their comments (None: not read).
        self.readers: Callable[[Sequence[IncidentView]], Awaitable[dict[str, Readers]]] | None = (
            None
        )
        # Incidents whose readers' counts changed: re-rendered by the next poll, so that
        # one task alone renders and saves a watch's incidents.
        self._counts_changed: set[str] = set()

    def restart(self) -> None:
        """Forget what memory holds and read it from the store again (another process
        polled meanwhile)."""
        self.known = {}
        self._validators = None
        if self.wiki is not None:
            self.wiki.restart()

    # --- one poll -------------------------------------------------------------------------
    async def poll(self) -> PollReport:
        """Fetch once and save what changed; feed errors become a failed report."""
        await self.reload_templates()
        if self._validators is None:
            self._validators = (await self.store.feed_state(self.watch)).validators
            if page_info(self.source.home) != self.bodies.page:
                # Comments name another page than the configured one (its URL changed,
                # or a feed chose it before the configuration did): a full read goes
                # through ``_sync_page``, which re-renders them and saves the page.
                self._validators = Validators()
        try:
            fetched = await self.source.fetch(self._validators)
        except FeedError as exc:
            log.debug("%s: the poll failed", self.watch, exc_info=True)  # its cause, with -v
            retry = exc.retry_after if isinstance(exc, FeedRateLimited) else None
            report = PollReport(ok=False, changed=False, message=str(exc), retry_after=retry)
        else:
            if fetched.feed is None:
                self._validators = fetched.validators
                report = PollReport(ok=True, changed=False, message="unchanged")
            else:
                report = await self._apply(fetched.feed, fetched.validators)
        kind = getattr(self.source, "chosen", None) or self.source.kind
        await self.store.record_poll(
            self.watch, ok=report.ok, message=report.message, now=self.clock(), kind=kind
        )
        missing = await self.store.unrendered(self.watch)
        if missing:
            await self.rerender(missing)
        if self._counts_changed:
            wanted, self._counts_changed = self._counts_changed, set()
            recounted = await self.store.announced(self.watch, wanted)
            if recounted:
                await self.rerender(recounted)
        if report.changed:
            self.on_change()
        return report

    def recount(self, incident_ids: Collection[str]) -> None:
        """Readers' counts about these incidents changed: render them again at the next
        poll (an unchanged body costs no edit)."""
        self._counts_changed |= set(incident_ids)

    def newest_open(self) -> IncidentView | None:
        """The most recently started open incident on the page (for template previews)."""
        views = [t.view for t in self.known.values() if t.announce and t.view.is_open]
        return max(
            views,
            key=lambda v: v.created_at.timestamp() if v.created_at else float("-inf"),
            default=None,
        )

    def open_announced(self) -> int:
        """Announced incidents still open among those on the page now."""
        return sum(1 for t in self.known.values() if t.announce and t.view.is_open)

    async def _apply(self, feed: IncidentsFeed, validators: Validators) -> PollReport:
        state = await self.store.feed_state(self.watch)
        baseline = state.baseline_at
        listed = {incident.id for incident in feed.incidents}
        missing = listed - self.known.keys()
        if feed.lists_open_maintenances:
            # A maintenance that left the snapshot has completed; its record is needed.
            missing |= {row.incident_id for row in await self.store.open_incidents(self.watch)}
            missing -= self.known.keys()
        if missing:
            self.known.update(await self.store.tracked(self.watch, missing))
        page = await self._sync_page(feed)
        outcome = incidents.diff(self.known, feed, baseline_at=baseline, components=self.components)
        rendered, errors = await self.render(await self._to_render(outcome.changed))
        now = self.clock()
        await self.store.save_poll(
            self.watch,
            url=self.source.url,
            changed=outcome.changed,
            rendered=rendered,
            render_errors=errors,
            validators=validators,
            baseline_at=baseline or datetime.fromtimestamp(now, UTC),
            page=page,
            now=now,
        )
        # Only after the save: a failed save leaves both as they were, and the next
        # poll sees the same change again.
        self._validators = validators
        self.known = {i: t for i, t in {**self.known, **outcome.changed}.items() if i in listed}
        for event in outcome.events:
            log.info("%s: incident %s", self.watch, event)
        if baseline is None:
            open_count = sum(1 for t in outcome.changed.values() if t.announce)
            log.info(
                "%s: first poll of %s: %d incidents recorded as a baseline, %d open to announce",
                self.watch,
                self.source.url,
                len(outcome.changed),
                open_count,
            )
        summary = f"{len(feed.incidents)} incidents, {len(outcome.events)} changes"
        return PollReport(
            ok=True, changed=bool(outcome.changed), events=outcome.events, message=summary
        )

    async def _to_render(self, changed: Mapping[str, Tracked]) -> dict[str, Tracked]:
        """Announced incidents, and those a moderator forced (the store knows which)."""
        chosen = {i: t for i, t in changed.items() if t.announce}
        quiet = [i for i, t in changed.items() if not t.announce]
        if quiet:
            forced = await self.store.announced(self.watch, quiet)
            chosen.update({i: changed[i] for i in forced})
        return chosen

    async def render(
        self, tracked: Mapping[str, Tracked]
    ) -> tuple[dict[str, Rendered], dict[str, str]]:
        """Render incidents; a failing one keeps its previous body and reports why."""
        rendered: dict[str, Rendered] = {}
        errors: dict[str, str] = {}
        views = [item.view for item in tracked.values()]
        readers = await self.readers(views) if self.readers is not None and views else None
        try:
            outputs = await self.bodies.incidents(views, readers)
        except TemplateError as exc:  # the whole batch: a runaway template, the worker
            outputs = [exc] * len(tracked)
        for incident_id, output in zip(tracked, outputs, strict=True):
            if isinstance(output, TemplateError):
                log.error(
                    "incident %s not re-rendered, its comment stays as it was: %s",
                    incident_id,
                    output,
                )
                errors[incident_id] = str(output)
            else:
                rendered[incident_id] = output
        return rendered, errors

    async def rerender(self, chosen: Mapping[str, Tracked]) -> int:
        """Re-render ``chosen`` with the current templates and save; returns how many."""
        rendered, errors = await self.render(chosen)
        await self.store.save_renders(self.watch, rendered, errors)
        self.on_change()
        return len(rendered)

    async def rerender_visible(self) -> int:
        """Re-render what readers still see (after a template or page change)."""
        chosen = await self.store.rerender_scope(
            self.watch,
            closed_since=self.clock() - RERENDER_WINDOW,
            thread_id=self.current_thread(),
        )
        return await self.rerender(chosen)

    # --- templates and page -------------------------------------------------------------------
    async def reload_templates(self) -> bool:
        """Switch to changed template files (and wiki pages) once they pass the checks;
        True if switched."""
        if self.templates_dir is None:
            return False
        stamp = folder_stamp(self.templates_dir)
        wiki, wiki_changed = None, False
        if self.wiki is not None:
            wiki = await self.wiki.changes()
            wiki_changed = wiki is not None and (bool(wiki[0] or wiki[1]) or self.wiki.pending)
        files_changed = stamp not in (self._stamp, self._bad_stamp)
        if not files_changed and not wiki_changed:
            return False
        try:
            files = read_templates(self.templates_dir)
            if self.wiki is None:
                await self.bodies.adopt(files)
                where = str(self.templates_dir)
            else:
                fresh, gone = wiki or ([], [])
                await self.wiki.apply(files, fresh, gone, self.bodies, self.newest_open)
                where = describe(files, self.wiki.subreddit, self.wiki.good)
        except TemplateError as exc:
            self._bad_stamp = stamp
            log.error("template change rejected, still using the previous templates: %s", exc)
            return False
        self._stamp = stamp
        await self.store.record_templates(self.watch, where, self.clock())
        count = await self.rerender_visible()
        log.info("templates reloaded from %s; %d incidents re-rendered", self.templates_dir, count)
        return True

    async def _sync_page(self, feed: IncidentsFeed) -> PageInfo | None:
        self._check_page(feed)
        info = page_info(self.source.home)
        if info == self.bodies.page:
            return None
        self.bodies.page = info
        await self.rerender_visible()
        return info

    def _check_page(self, feed: IncidentsFeed) -> None:
        """Say once per value when the feed names a page on another host than the
        configured one: its links stay text, which the moderator may want to know."""
        foreign = foreign_page_url(feed, self.source.home)
        if foreign is None or foreign in self._foreign_pages:
            return
        if len(self._foreign_pages) >= FOREIGN_PAGES_LOGGED:
            return
        self._foreign_pages.add(foreign)
        log.warning(
            "%s: the feed says its page is %r, not on %s as configured: comments link to "
            "%s only (and to the vendor's short links), never to the page the feed names",
            self.watch,
            foreign[:200],
            markdown.host_of(self.source.home) or self.source.home,
            self.source.home,
        )
