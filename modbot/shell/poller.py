"""Polling one watch: fetch a snapshot, diff it, render what changed, save it all at once.

One transaction per changed poll holds the new views, their bodies, the delivery
intents of new incidents and the page's validators, so the validators can never run
ahead of the state they describe: if the save fails, the next poll fetches in full
and nothing is lost. The poller never talks to Reddit; it wakes the deliverer.

It also owns the watch's templates: a changed file (or a wiki page the inbox read) is
checked in the render worker before it replaces the last good set, and then only what
readers still see is re-rendered (open incidents, and those closed in the last day
whose comment is in the current megathread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from modbot.core import incidents, markdown, moves
from modbot.core.feed import IncidentsFeed
from modbot.core.platforms import platform_name
from modbot.core.records import (
    Alias,
    Event,
    EventKind,
    IncidentView,
    PageInfo,
    PlatformMove,
    PollReport,
    Rendered,
    Tracked,
    Validators,
)
from modbot.core.render import Readers
from modbot.errors import FeedError, FeedRateLimited, TemplateError
from modbot.ports import FeedState, Movable, Source, Store
from modbot.rendering.bodies import Bodies
from modbot.rendering.files import folder_stamp, read_templates
from modbot.shell.wiki import WikiTemplates, describe

log = logging.getLogger(__name__)

RERENDER_WINDOW = 24 * 3600.0  # closed incidents readers may still look at
DAY = 24 * 3600.0
FIRST_PRUNE = 600.0  # seconds after start (a restart loop must not read whole pages)
# The "last checked" line moves on at most this often: each move is an edit of every
# open incident's comment.
CHECKED_EVERY = 600.0
# How long an incident closed because its page moved may still be adopted, should the
# new platform list it after all.
ADOPT_WINDOW = 24 * 3600.0


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
        keep_days: float = 0.0,
        current_thread: Callable[[], str | None] = lambda: None,
        wiki: WikiTemplates | None = None,
        last_checked: bool = False,
        pressed: Callable[[], Awaitable[bool]] | None = None,
        readers: Callable[[Sequence[IncidentView]], Awaitable[dict[str, Readers]]] | None = None,
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
        # The aliases of the incidents of the latest snapshot (new id -> the one kept).
        self._aliases: dict[str, Alias] = {}
        self._validators: Validators | None = None  # None: not loaded from the store yet
        self._stamp = folder_stamp(templates_dir) if templates_dir else None
        self._bad_stamp: object = None
        self._foreign_pages: set[str] = set()  # page URLs of the feed's already logged
        self.current_thread = current_thread  # the megathread the deliverer posts in
        self.wiki = wiki  # templates from the subreddit's wiki, if on
        # The store's version when it last had nothing unrendered: until it changes, an
        # unchanged poll reads nothing.
        self._rendered_at: int | None = None
        self._views = incidents.ViewMemo()  # the last snapshot's views
        # The page's baseline and platform as last read or saved: only this poller's own
        # saves change them (``restart`` forgets them), so a changed poll reads them once.
        self._state: FeedState | None = None
        # Settled incidents older than this are pruned (0: never), once a day, after a
        # whole read of the page (the incidents it still lists are kept).
        self.keep = keep_days * DAY
        self._prune_at: float | None = None
        # The "last checked HH:MM UTC" line: on or off, whether Reddit calls or deliveries
        # are backed up now (then the line alone never makes an edit), and the time the
        # open incidents' comments were last rendered with.
        self.last_checked = last_checked
        self.pressed = pressed
        self._line_shows: float | None = None
        # What readers reported about incidents, for their comments (None: not read).
        self.readers = readers
        # Incidents whose readers' counts changed: re-rendered by the next poll, so that
        # one task alone renders and saves a watch's incidents.
        self._counts_changed: set[str] = set()

    def restart(self) -> None:
        """Forget what memory holds and read it from the store again (another process
        polled meanwhile)."""
        self.known = {}
        self._aliases = {}
        self._validators = None
        self._rendered_at = None
        self._state = None
        self._line_shows = None
        if self.wiki is not None:
            self.wiki.restart()

    # --- one poll -------------------------------------------------------------------------
    async def poll(self) -> PollReport:
        """Fetch once and save what changed; feed errors become a failed report."""
        await self.reload_templates()
        if self._prune_at is None:
            self._prune_at = self.clock() + FIRST_PRUNE
        prune = bool(self.keep) and self.clock() >= self._prune_at
        if self._validators is None:
            state = self._state = await self.store.feed_state(self.watch)
            self._validators = state.validators
            if state.platform is not None and isinstance(self.source, Movable):
                self.source.resume(state.platform)
            if page_info(self.source.home) != self.bodies.page:
                # Comments name another page than the configured one (its URL changed,
                # or a feed chose it before the configuration did): a full read goes
                # through ``_sync_page``, which re-renders them and saves the page.
                self._validators = Validators()
            elif state.baseline_at is not None and state.platform is None:
                # A state kept before platforms were: one full read learns which one
                # serves the page, so that a later move is seen as one.
                self._validators = Validators()
        try:
            # A day's prune wants what the page lists now: one whole read (no validators).
            fetched = await self.source.fetch(Validators() if prune else self._validators)
        except FeedError as exc:
            log.debug("%s: the poll failed", self.watch, exc_info=True)  # its cause, with -v
            retry = exc.retry_after if isinstance(exc, FeedRateLimited) else None
            report = PollReport(ok=False, changed=False, message=str(exc), retry_after=retry)
        else:
            self._checked(self.clock())
            if fetched.feed is None:
                self._validators = fetched.validators
                report = PollReport(ok=True, changed=False, message="unchanged")
            else:
                report = await self._apply(fetched.feed, fetched.validators, fetched.platform)
                if prune:
                    await self._prune(fetched.feed)
        kind = getattr(self.source, "chosen", None) or self.source.kind
        await self.store.record_poll(
            self.watch, ok=report.ok, message=report.message, now=self.clock(), kind=kind
        )
        await self._render_behind(report)
        if report.changed:
            self.on_change()
        return report

    async def _render_behind(self, report: PollReport) -> None:
        """Render what the page did not change but the comments should show: incidents
        with no body yet, readers' new counts, a "last checked" line that moved on."""
        await self._render_missing()
        if self._counts_changed:
            wanted, self._counts_changed = self._counts_changed, set()
            recounted = await self.store.announced(self.watch, wanted)
            if recounted:
                await self.rerender(recounted)
        if report.ok:
            await self._show_checked()

    async def _prune(self, feed: IncidentsFeed) -> None:
        """Forget settled incidents older than ``MODBOT_KEEP_DAYS`` that the page no longer
        lists (their comments are never touched again); once a day."""
        now = self.clock()
        self._prune_at = now + DAY  # a failure is not retried on every poll
        # Listed under the page's id or, after a move, under the one the bot keeps.
        listed = [incident.id for incident in feed.incidents]
        listed += [alias.incident_id for alias in self._aliases.values()]
        pruned = await self.store.prune(
            self.watch, closed_before=now - self.keep, keep=listed, now=now
        )
        if pruned:
            log.info(
                "%s: %d settled incidents older than %g days pruned from the state",
                self.watch,
                len(pruned),
                self.keep / DAY,
            )

    async def _render_missing(self) -> None:
        """Render incidents to post about that have no body yet (one a moderator forced
        from the command line, one found on Reddit that the store took as a baseline):
        looked for only when the store has changed since it last had none."""
        version = self.store.version()
        if version is not None and version == self._rendered_at:
            return
        missing = await self.store.unrendered(self.watch)
        if missing:
            await self.rerender(missing)
        else:
            self._rendered_at = version

    def _checked(self, now: float) -> None:
        """The page was read at ``now``: what the "last checked" line shows moves on, at
        most every ``CHECKED_EVERY`` seconds (comments changed from now on show it)."""
        shown = self.bodies.checked_at
        if self.last_checked and (shown is None or now - shown >= CHECKED_EVERY):
            self.bodies.checked_at = now

    async def _show_checked(self) -> None:
        """Re-render the open incidents whose line is behind, unless Reddit calls or
        deliveries are backed up: then the line waits for a real change (or a calmer
        poll), never making an edit of its own."""
        at = self.bodies.checked_at
        if at is None or at == self._line_shows:
            return
        if self.pressed is not None and await self.pressed():
            return
        self._line_shows = at
        chosen = {i: t for i, t in self.known.items() if t.announce and t.view.is_open}
        if chosen:
            await self.rerender(chosen)

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

    async def _apply(
        self, feed: IncidentsFeed, validators: Validators, platform: str | None = None
    ) -> PollReport:
        state = self._state
        if state is None or state.baseline_at is None:
            state = self._state = await self.store.feed_state(self.watch)
        baseline = state.baseline_at
        now = self.clock()
        move = self._moved(state, platform, now)
        feed = await self._translated(feed)
        listed = {incident.id for incident in feed.incidents}
        missing = listed - self.known.keys()
        if feed.lists_open_maintenances:
            # A maintenance that left the snapshot has completed; its record is needed.
            missing |= {row.incident_id for row in await self.store.open_incidents(self.watch)}
            missing -= self.known.keys()
        if missing:
            self.known.update(await self.store.tracked(self.watch, missing))
        new = listed - self.known.keys()  # never seen by the bot, under any id
        feed, aliases, closed = await self._adopt(feed, new, move, now)
        listed = {incident.id for incident in feed.incidents}
        page = await self._sync_page(feed)
        # On the poll of a move, the incidents the new platform brought over already
        # resolved are history, however it dates them (a migration's time): recorded as
        # at a first poll, not announced. Open ones are announced as ever.
        outcome = incidents.diff(
            {i: t for i, t in self.known.items() if i not in closed},
            feed,
            baseline_at=None if move else baseline,
            components=self.components,
            memo=self._views,
        )
        changed = {**outcome.changed, **closed}
        events = outcome.events + tuple(
            Event(EventKind.ADOPTED, a.incident_id, a.alias_id) for a in aliases
        )
        events += tuple(Event(EventKind.PAGE_MOVED, i) for i, t in closed.items() if t.announce)
        rendered, errors = await self.render(await self._to_render(changed))
        if move is not None:
            move = replace(move, adopted=len(aliases), closed=len(closed))
        await self.store.save_poll(
            self.watch,
            url=self.source.url,
            changed=changed,
            rendered=rendered,
            render_errors=errors,
            validators=validators,
            baseline_at=baseline or datetime.fromtimestamp(now, UTC),
            page=page,
            now=now,
            platform=platform,
            aliases=aliases,
            move=move,
        )
        # Only after the save: a failed save leaves both as they were, and the next
        # poll sees the same change again.
        self._validators = validators
        self._state = replace(
            state,
            baseline_at=baseline or datetime.fromtimestamp(now, UTC),
            platform=platform or state.platform,
        )
        self.known = {i: t for i, t in {**self.known, **changed}.items() if i in listed}
        if move is not None:
            log.warning(
                "%s: the page moved from %s to %s (incidents that keep their comment under "
                "a new id: %d; open ones it does not list, closed as moved: %d)",
                self.watch,
                platform_name(move.before),
                platform_name(move.after),
                move.adopted,
                move.closed,
            )
        for event in events:
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
        summary = f"{len(feed.incidents)} incidents, {len(events)} changes"
        return PollReport(
            ok=True, changed=bool(changed), events=events, message=summary, moved=move is not None
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

    # --- moves between platforms --------------------------------------------------------------
    def _moved(self, state: FeedState, platform: str | None, now: float) -> PlatformMove | None:
        """The move this poll shows: another platform than the last good read's serves
        the page (known on both sides, after the first poll)."""
        if (
            platform is None
            or state.platform is None
            or platform == state.platform
            or state.baseline_at is None
        ):
            return None
        return PlatformMove(
            watch=self.watch,
            moved_at=now,
            before=state.platform,
            after=platform,
            page_url=self.source.home,
        )

    async def _translated(self, feed: IncidentsFeed) -> IncidentsFeed:
        """The snapshot with the incidents the bot knows by another id under that id."""
        raw = {incident.id for incident in feed.incidents}
        self._aliases = {k: v for k, v in self._aliases.items() if k in raw}
        unknown = raw - self.known.keys() - self._aliases.keys()
        if unknown:
            self._aliases.update(await self.store.aliases(self.watch, unknown))
        return moves.translate(feed, self._aliases)

    async def _adopt(
        self, feed: IncidentsFeed, new: set[str], move: PlatformMove | None, now: float
    ) -> tuple[IncidentsFeed, list[Alias], dict[str, Tracked]]:
        """The snapshot with the ``new`` incidents that are ones the bot knows
        (``moves.match``) under the ids it keeps, and their aliases; on a move, the open
        incidents the new platform does not list, closed as moved.

        New incidents are matched against the announced ones the page stopped listing:
        only a move (or a page that re-created an incident) leaves any, so an ordinary
        poll pays one read when a new incident appears, and nothing otherwise.
        """
        if not new and move is None:
            return feed, [], {}
        listed = {incident.id for incident in feed.incidents}
        found = await self.store.adoptable(self.watch, closed_since=now - ADOPT_WINDOW)
        candidates = {i: t for i, t in found.items() if i not in listed}
        fresh = [incident for incident in feed.incidents if incident.id in new]
        matched = moves.match(candidates, fresh)
        aliases = [Alias(new_id, kept, candidates[kept].view) for new_id, kept in matched.items()]
        if aliases:
            self._aliases.update({alias.alias_id: alias for alias in aliases})
            feed = moves.translate(feed, self._aliases)
            self.known.update({kept: candidates[kept] for kept in matched.values()})
        closed: dict[str, Tracked] = {}
        if move is not None:
            at = datetime.fromtimestamp(now, UTC)
            for kept, tracked in candidates.items():
                if kept not in matched.values() and tracked.view.is_open:
                    closed[kept] = moves.closed_by_move(
                        tracked, before=move.before, after=move.after, page_url=move.page_url, at=at
                    )
        return feed, aliases, closed

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
            wiki_changed = wiki is not None
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
