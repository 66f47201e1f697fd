"""What each CLI command does, wired from settings (the CLI only parses arguments).

Everything is built here per call and passed down: no module-level singletons, so
one process could watch several (status page, subreddit) pairs.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import httpx

from modbot import __version__, incidents, timeline
from modbot.bot import Bot, PollReport, page_info_from
from modbot.commands import Operations
from modbot.errors import FeedError, ModbotError, RedditError, StoreError, TemplateError
from modbot.feed import IncidentsFeed, parse_incidents
from modbot.inbox import Inbox
from modbot.publisher import Checkpoint, DryRunTarget, Publisher, Target, crash_at
from modbot.reddit import RedditClient
from modbot.render import PageInfo, Renderer
from modbot.settings import Settings
from modbot.statuspage import StatuspageClient, make_http_client
from modbot.store import Store

log = logging.getLogger(__name__)

DRY_RUN_PAGE_PREFIX = "dry-run "


def page_key(settings: Settings, dry_run: bool) -> str:
    """The store key of the watched page; dry-run keeps its own baseline and comments."""
    return (DRY_RUN_PAGE_PREFIX if dry_run else "") + settings.statuspage_url


def is_dry_run(settings: Settings, requested: bool = False) -> bool:
    """Dry-run when asked to, or when Reddit credentials are absent."""
    return requested or settings.dry_run or not settings.has_reddit_credentials


def make_renderer(settings: Settings, page: PageInfo | None = None) -> Renderer:
    """The renderer for ``settings`` (templates are checked while loading)."""
    url = settings.statuspage_url
    host_page = page or PageInfo(name=url.split("//", 1)[-1], url=url)
    return Renderer(
        settings.templates_path,
        page=host_page,
        zone=ZoneInfo(settings.timezone) if settings.timezone else None,
        subreddit=settings.subreddit,
        max_length=settings.max_comment_length,
    )


@dataclass
class Runtime:
    """The pieces of one running bot, closed together."""

    bot: Bot
    store: Store
    target: Target


@asynccontextmanager
async def runtime(
    settings: Settings,
    *,
    dry_run: bool,
    out: TextIO,
    http: httpx.AsyncClient | None = None,
    target: Target | None = None,
    clock: Callable[[], float] = time.time,
    feed_attempts: int = 3,
    checkpoint: Checkpoint | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store and the HTTP client, build the bot, and close it all afterwards.

    ``clock``, ``feed_attempts`` and ``checkpoint`` let tests control time, retries
    and crash points; the CLI uses the defaults.
    """
    store = Store.open(settings.database)
    own_http = http is None
    client = http or make_http_client(settings.http_timeout)
    reddit = None if dry_run or target is not None else RedditClient(settings, clock=clock)
    try:
        renderer = make_renderer(settings)
        chosen: Target = target or reddit or DryRunTarget(out)
        page = page_key(settings, dry_run)
        publisher = Publisher(
            store,
            chosen,
            page=page,
            min_edit_interval=settings.min_edit_interval,
            reconcile_grace=settings.reconcile_grace,
            verify_interval=settings.megathread_check_interval,
            clock=clock,
            checkpoint=checkpoint or crash_at(settings.crash_at),
        )
        bot = Bot(
            store=store,
            feed=StatuspageClient(settings.statuspage_url, client, attempts=feed_attempts),
            renderer=renderer,
            publisher=publisher,
            page=page,
            poll_interval=settings.poll_interval,
            components=settings.components,
            clock=clock,
        )
        yield Runtime(bot=bot, store=store, target=chosen)
    finally:
        if reddit is not None:
            await reddit.close()
        if own_http:
            await client.aclose()
        store.close()


def dry_run_banner(settings: Settings, requested: bool) -> str:
    """The first line ``modbot run`` prints in dry-run."""
    why = (
        "--dry-run was given" if requested or settings.dry_run else "no Reddit credentials are set"
    )
    return (
        f"modbot {__version__}: DRY-RUN ({why}): nothing will be posted to Reddit; "
        "each comment the bot would post or edit is printed here instead."
    )


async def run(settings: Settings, *, once: bool, dry_run: bool, out: TextIO) -> int:
    """``modbot run``: poll and deliver until stopped (or once)."""
    dry = is_dry_run(settings, dry_run)
    if dry:
        out.write(dry_run_banner(settings, dry_run) + "\n")
        out.flush()
    log.info(
        "watching %s every %g s; state in %s%s",
        settings.statuspage_url,
        settings.poll_interval,
        settings.database,
        "" if once else "; Ctrl-C stops",
    )
    async with runtime(settings, dry_run=dry, out=out) as rt:
        if once:
            report = await rt.bot.run_once()
            return 0 if report.ok else 1
        rt.bot.on_poll = _first_poll_note(settings, out) if dry else None
        extra = {} if dry else {"inbox": _inbox_step(settings, rt)}
        stop = asyncio.Event()
        with _stop_on_signals(stop):
            await rt.bot.run(stop, extra)
    log.info("stopped; state saved in %s", settings.database)
    return 0


def _inbox_step(settings: Settings, rt: Runtime) -> Callable[[], Awaitable[float]]:
    """The loop step that handles moderator commands sent on Reddit."""
    assert isinstance(rt.target, RedditClient)
    operations = Operations(rt.bot, subreddit=settings.subreddit, dry_run=False)
    inbox = Inbox(rt.target, operations, rt.store, rt.bot.clock)

    async def step() -> float:
        await inbox.check()
        return settings.inbox_interval

    return step


def _first_poll_note(settings: Settings, out: TextIO) -> Callable[[PollReport], None]:
    """In dry-run, say plainly what happens when the first poll fails (e.g. offline)."""
    state = {"first": True}

    def note(report: PollReport) -> None:
        if state["first"] and not report.ok:
            out.write(
                f"modbot: cannot read {settings.statuspage_url} yet ({report.message}).\n"
                f"Still trying every {settings.poll_interval:g} s; comments appear here once it "
                "answers. To see what the bot posts without any network, run: modbot demo\n"
            )
            out.flush()
        state["first"] = False

    return note


class _stop_on_signals:  # noqa: N801 - used like a function in a with statement
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


# --- preview ----------------------------------------------------------------------------


async def load_feed(settings: Settings, feed_file: Path | None) -> IncidentsFeed:
    """A saved incidents.json, or one live fetch of the configured page."""
    if feed_file is not None:
        try:
            raw = await asyncio.to_thread(feed_file.read_bytes)
        except OSError as exc:
            raise ModbotError(f"cannot read {feed_file}: {exc.strerror}") from None
        return parse_incidents(raw)
    async with make_http_client(settings.http_timeout) as http:
        result = await StatuspageClient(settings.statuspage_url, http).fetch()
    assert result.feed is not None  # a first fetch is never conditional
    return result.feed


async def preview(
    settings: Settings, incident_id: str | None, feed_file: Path | None, out: TextIO
) -> int:
    """``modbot preview``: print the comment for one incident (or every open one)."""
    feed = await load_feed(settings, feed_file)
    renderer = make_renderer(settings, page_info_from(feed, settings.statuspage_url))
    views = [incidents.view_of(i) for i in feed.incidents]
    if incident_id is not None:
        chosen = [v for v in views if v.id == incident_id]
        if not chosen:
            known = ", ".join(v.id for v in views[:10]) or "none"
            raise ModbotError(f"incident {incident_id} is not in the feed (first ids: {known})")
    else:
        chosen = [v for v in views if v.is_open]
        if not chosen:
            out.write("No open incidents on the page. Give an incident id to preview a past one.\n")
            return 0
    for view in chosen:
        rendered = renderer.render_incident(view)
        out.write(
            f"===== incident {view.id} ({view.status}), {len(rendered.body)} characters =====\n"
        )
        out.write(rendered.body + "\n\n")
    return 0


# --- check ------------------------------------------------------------------------------


async def check(settings: Settings, out: TextIO, *, live: bool = False) -> int:
    """``modbot check``: settings, templates, state file and, with credentials, Reddit.

    With ``live`` it also reads the status page once and insists on a healthy state
    file, a working Reddit login and a megathread, for health checks. Returns 1 when
    something would stop the bot from working.
    """
    problems = 0
    line = _printer(out)
    line("settings", "ok")
    line("status page", f"{settings.statuspage_url} (polled every {settings.poll_interval:g} s)")
    if settings.components:
        line("components", ", ".join(settings.components))
    line("time zone", settings.timezone or "UTC only")
    try:
        names = make_renderer(settings).check()
        line("templates", f"ok: {', '.join(names)} in {settings.templates_path}")
    except TemplateError as exc:
        line("templates", f"BROKEN: {exc}")
        problems += 1
    problems += _check_store(settings, line, required=live)
    if live:
        problems += await _check_feed(settings, line)
    if settings.has_reddit_credentials:
        problems += await _check_reddit(settings, line)
    elif live:
        line("reddit", "FAILED: no credentials, so nothing can be posted (dry-run)")
        problems += 1
    else:
        line("reddit", "no credentials: `modbot run` works in dry-run (prints instead of posting)")
    return 1 if problems else 0


async def _check_feed(settings: Settings, line: Callable[[str, str], None]) -> int:
    try:
        feed = await load_feed(settings, None)
    except FeedError as exc:
        line("feed", f"FAILED: {exc}")
        return 1
    line("feed", f"ok: {len(feed.incidents)} incidents listed")
    return 0


async def _check_reddit(settings: Settings, line: Callable[[str, str], None]) -> int:
    """Log in and report what posting needs; returns the number of blocking problems."""
    async with RedditClient(settings) as reddit:
        try:
            name = await reddit.me()
        except RedditError as exc:
            line("reddit login", f"FAILED: {exc}")
            return 1
        line("reddit login", f"ok: logged in as u/{name}")
        try:
            if not await reddit.subreddit_exists():
                line("subreddit", f"FAILED: r/{reddit.subreddit_name} does not exist")
                return 1
            line("subreddit", f"r/{reddit.subreddit_name} exists")
            moderators = await reddit.moderators()
            mine = moderators.get(name.lower())
            if mine is None:
                line("moderator", "no: it can post, but cannot distinguish or pin its comments")
            else:
                line("moderator", f"yes, permissions: {', '.join(mine.permissions) or 'none'}")
            thread = await reddit.find_megathread()
        except RedditError as exc:
            line("reddit", f"FAILED: {exc}")
            return 1
        if thread is None:
            line(
                "megathread",
                f"NONE: no pinned post in r/{reddit.subreddit_name} matches "
                f"{settings.megathread_title!r} (or it is locked/archived)",
            )
            return 1
        line("megathread", f"{thread.title} ({thread.permalink})")
    return 0


def _check_store(settings: Settings, line: Callable[[str, str], None], *, required: bool) -> int:
    if not settings.database.exists():
        if required:
            line("state file", f"FAILED: {settings.database} does not exist (is the bot running?)")
            return 1
        line("state file", f"{settings.database} (not created yet; `modbot run` creates it)")
        return 0
    try:
        store = Store.open(settings.database)
    except StoreError as exc:
        line("state file", f"BROKEN: {exc}")
        return 1
    try:
        problems = store.integrity_problems()
        if problems:
            line("state file", f"BROKEN: {settings.database}: {problems[0]}")
            return 1
        line("state file", f"ok: {settings.database} (schema {store.schema_version})")
        return 0
    finally:
        store.close()


def _printer(out: TextIO) -> Callable[[str, str], None]:
    def line(what: str, text: str) -> None:
        out.write(f"{what + ':':<14}{text}\n")

    return line


# --- demo -------------------------------------------------------------------------------


def demo_documents() -> tuple[list[dict[str, Any]], str]:
    """The bundled real incident as a list of feed snapshots, and its source note."""
    raw = resources.files("modbot").joinpath("data/demo_incident.json").read_text("utf-8")
    data = json.loads(raw)
    return timeline.replay(data["incident"], data["page"], postmortem=True), data["_source"]


class ReplayFeed:
    """Serves prepared snapshots through httpx's in-memory transport, one per step."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents
        self.step = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request with the current snapshot."""
        return httpx.Response(200, json=self.documents[self.step])


async def demo(settings: Settings, out: TextIO, delay: float) -> int:
    """``modbot demo``: replay a real incident through the real pipeline, offline."""
    documents, source = demo_documents()
    replay = ReplayFeed(documents)
    out.write(
        "modbot demo: replaying a real incident from status.claude.com, one status update at a\n"
        "time, through the real pipeline (feed client, diff, templates, store) in dry-run.\n"
        "No network and no Reddit account are used; each comment version is printed below.\n\n"
    )
    with tempfile.TemporaryDirectory(prefix="modbot-demo-") as folder:
        demo_settings = settings.model_copy(
            update={
                "database": Path(folder) / "demo.sqlite3",
                "statuspage_url": "https://status.claude.com",
                "min_edit_interval": 0.0,
                "components": (),
            }
        )
        http = httpx.AsyncClient(transport=httpx.MockTransport(replay.handle))
        async with http, runtime(demo_settings, dry_run=True, out=out, http=http) as rt:
            for number in range(len(documents)):
                replay.step = number
                status = documents[number]["incidents"][0]["status"]
                out.write(
                    f">>> step {number + 1}/{len(documents)}: the page says {status.upper()}\n\n"
                )
                out.flush()
                report = await rt.bot.run_once()
                if not report.ok:
                    raise FeedError(report.message)
                if number + 1 < len(documents):
                    await asyncio.sleep(delay)
    out.write(f"That is what modbot does. Data: {source}\n")
    return 0


# --- moderator commands -------------------------------------------------------------------


@asynccontextmanager
async def operations(
    settings: Settings, *, dry_run: bool, out: TextIO
) -> AsyncIterator[Operations]:
    """A bot without its loops, for one moderator command from the CLI."""
    dry = is_dry_run(settings, dry_run)
    async with runtime(settings, dry_run=dry, out=out) as rt:
        yield Operations(rt.bot, subreddit=settings.subreddit, dry_run=dry)


def _say_dry_run(settings: Settings, requested: bool, out: TextIO) -> None:
    if is_dry_run(settings, requested):
        out.write(dry_run_banner(settings, requested) + "\n")


async def post(
    settings: Settings,
    *,
    text: str | None,
    incident_id: str | None,
    edit: str | None,
    dry_run: bool,
    out: TextIO,
) -> int:
    """``modbot post``: a notice (new or ``edit``), or one incident's comment now."""
    _say_dry_run(settings, dry_run, out)
    async with operations(settings, dry_run=dry_run, out=out) as ops:
        if incident_id is not None:
            known = ops.store.tracked(ops.page, [incident_id])
            feed = None if known else await load_feed(settings, None)
            outcome = await ops.post_incident(incident_id, feed)
        elif edit is not None:
            outcome = await ops.edit_notice(edit, text or "")
        else:
            outcome = await ops.post_notice(text or "", source="cli")
    out.write(outcome.text + "\n")
    return 0 if outcome.link else 1  # 1: not confirmed (yet); the text says why


async def refresh(
    settings: Settings, *, incident_id: str | None, dry_run: bool, out: TextIO
) -> int:
    """``modbot refresh``: re-render tracked open incidents and edit what changed."""
    _say_dry_run(settings, dry_run, out)
    async with operations(settings, dry_run=dry_run, out=out) as ops:
        outcome = await ops.refresh(incident_id)
    out.write(outcome.text + "\n")
    return 0


async def status(settings: Settings, out: TextIO) -> int:
    """``modbot status``: one screen from the state file (no network)."""
    if not settings.database.exists():
        out.write(f"No state yet at {settings.database}: start the bot with `modbot run`.\n")
        return 1
    async with operations(settings, dry_run=False, out=out) as ops:
        out.write(ops.status().text + "\n")
    return 0


async def set_pause(settings: Settings, *, paused: bool, out: TextIO) -> int:
    """``modbot pause`` / ``modbot resume``."""
    who = f"{getpass.getuser()} (CLI)"
    async with operations(settings, dry_run=False, out=out) as ops:
        outcome = ops.pause(who) if paused else ops.resume(who)
    out.write(outcome.text + "\n")
    return 0
