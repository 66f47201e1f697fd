"""What each CLI command does: one small function per verb, wired from settings.

Heavy libraries are imported inside the functions that need them, so a command pays
only for what it uses: ``modbot status`` never loads the Reddit or HTTP libraries,
and ``--help`` (handled before this module is imported) loads none of them.
"""

from __future__ import annotations

import getpass
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modbot import __version__
from modbot.errors import (
    CommandError,
    ConfigError,
    ModbotError,
    RedditError,
    StoreError,
    TemplateError,
)

if TYPE_CHECKING:
    from modbot.app import App
    from modbot.config.settings import Settings
    from modbot.config.watches import Watch
    from modbot.core.feed import IncidentsFeed
    from modbot.core.records import DeliveryRow, Health, PollReport
    from modbot.reddit.client import RedditClient
    from modbot.rendering.bodies import Bodies

log = logging.getLogger(__name__)


def is_dry_run(settings: Settings, requested: bool = False) -> bool:
    """Dry-run when asked to, or when Reddit credentials are absent."""
    return requested or settings.dry_run or not settings.has_reddit_credentials


def dry_run_banner(settings: Settings, requested: bool) -> str:
    """The first line ``modbot run`` prints in dry-run."""
    why = (
        "--dry-run was given" if requested or settings.dry_run else "no Reddit credentials are set"
    )
    return (
        f"modbot {__version__}: DRY-RUN ({why}): nothing will be posted to Reddit; "
        "each comment the bot would post or edit is printed here instead."
    )


def _say_dry_run(settings: Settings, requested: bool, out: TextIO) -> None:
    if is_dry_run(settings, requested):
        out.write(dry_run_banner(settings, requested) + "\n")
        out.flush()


@asynccontextmanager
async def _app(
    settings: Settings, *, dry_run: bool, out: TextIO, watches: Sequence[Watch] | None = None
) -> AsyncIterator[App]:
    from modbot.app import App  # noqa: PLC0415 - loads the HTTP and Reddit libraries

    dry = is_dry_run(settings, dry_run)
    async with App(settings, dry_run=dry, out=out, watches=watches) as app:
        yield app


# --- run --------------------------------------------------------------------------------------


async def run(settings: Settings, *, once: bool, dry_run: bool, out: TextIO) -> int:
    """``modbot run``: poll and deliver until stopped (or once)."""
    import asyncio  # noqa: PLC0415 - not for the commands that need no loop

    from modbot.app import settle_memory, stop_on_signals  # noqa: PLC0415

    dry = is_dry_run(settings, dry_run)
    _say_dry_run(settings, dry_run, out)
    watches = _watches(settings)
    for watch in watches:
        log.info("watching %s every %g s (%s)", watch.url, watch.poll_interval, watch.name)
    log.info("state in %s%s", settings.database, "" if once else "; Ctrl-C stops")
    async with _app(settings, dry_run=dry, out=out, watches=watches) as app:
        if once:
            report = await app.run_once_leading()
            return 0 if report.ok else 1
        settle_memory()
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await app.run(stop, _first_poll_note(settings, watches[0].url, out) if dry else None)
        if app.fatal is not None:
            raise app.fatal
    log.info("stopped; state saved in %s", settings.database)
    return 0


def _first_poll_note(settings: Settings, url: str, out: TextIO) -> Callable[[PollReport], None]:
    """In dry-run, say plainly what happens when the first poll fails (e.g. offline);
    ``url`` is the (first) watch's page, the catalog's with MODBOT_PROVIDER."""
    state = {"first": True}

    def note(report: PollReport) -> None:
        if state["first"] and not report.ok:
            out.write(
                f"modbot: cannot read {url} yet ({report.message}).\n"
                f"Still trying every {settings.poll_interval:g} s; comments appear here once it "
                "answers. To see what the bot posts without any network, run: modbot demo\n"
            )
            out.flush()
        state["first"] = False

    return note


# --- preview ----------------------------------------------------------------------------------


def _watches(settings: Settings) -> list[Watch]:
    # The read-only commands' settings (``config.quick``) come with their watches.
    given: Sequence[Watch] | None = getattr(settings, "watches", None)
    if given:
        return list(given)
    from modbot.config.watches import load_watches  # noqa: PLC0415

    return load_watches(settings)


async def load_feed(settings: Settings, watch: Watch, feed_file: Path | None) -> IncidentsFeed:
    """A saved incidents.json, or one live fetch of the watch's page."""
    import asyncio  # noqa: PLC0415 - not for the commands that need no loop

    from modbot.core.feed import parse_incidents  # noqa: PLC0415
    from modbot.core.records import Validators  # noqa: PLC0415
    from modbot.sources.choose import make_http_client, make_source  # noqa: PLC0415

    if feed_file is not None:
        try:
            raw = await asyncio.to_thread(feed_file.read_bytes)
        except OSError as exc:
            raise ModbotError(f"cannot read {feed_file}: {exc.strerror}") from exc
        return parse_incidents(raw)
    async with make_http_client(settings.http_timeout) as http:
        fetched = await make_source(watch, http).fetch(Validators())
    assert fetched.feed is not None  # a first fetch is never conditional
    return fetched.feed


@asynccontextmanager
async def _bodies(settings: Settings, watch: Watch) -> AsyncIterator[Bodies]:
    """A renderer for one-off commands: the watch's templates in a render worker."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from modbot.rendering.bodies import Bodies  # noqa: PLC0415
    from modbot.rendering.files import read_templates  # noqa: PLC0415
    from modbot.rendering.sandbox import RenderWorker  # noqa: PLC0415
    from modbot.shell.poller import page_info  # noqa: PLC0415

    worker = RenderWorker(timeout=settings.render_timeout)
    try:
        templates = read_templates(watch.templates_path)
        await worker.check(templates, settings.max_comment_length)
        yield Bodies(
            worker,
            templates,
            home=watch.url,
            page=page_info(watch.url),
            zone=ZoneInfo(watch.timezone) if watch.timezone else None,
            subreddit=watch.subreddit,
            max_length=settings.max_comment_length,
            watch=watch.name,
        )
    finally:
        await worker.close()


async def preview(
    settings: Settings,
    incident_id: str | None,
    feed_file: Path | None,
    out: TextIO,
    watch_name: str | None = None,
) -> int:
    """``modbot preview``: print the comment for one incident (or every open one)."""
    from modbot.config.watches import pick  # noqa: PLC0415
    from modbot.core import incidents  # noqa: PLC0415

    watch = pick(_watches(settings), watch_name)
    feed = await load_feed(settings, watch, feed_file)
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
    async with _bodies(settings, watch) as bodies:
        for view in chosen:
            rendered = await bodies.incident(view)
            out.write(
                f"===== incident {view.id} ({view.status}), {len(rendered.body)} characters =====\n"
            )
            out.write(rendered.body + "\n\n")
    return 0


# --- check ------------------------------------------------------------------------------------


async def check(
    settings: Settings, out: TextIO, *, connect: bool = False, deep: bool = False
) -> int:
    """``modbot check``: settings, watches, templates, state file and, with credentials,
    Reddit.

    With ``connect`` it also reads every watch's page once, and insists on a working
    Reddit login and a megathread. Returns 1 when something would stop the bot working.
    """
    from modbot.config.watches import config_path  # noqa: PLC0415

    problems = 0
    line = _printer(out)
    watches = _watches(settings)
    path = config_path(settings)
    line("settings", "ok" + (f"; {len(watches)} watches from {path}" if path else ""))
    for watch in watches:
        where = f" -> r/{watch.subreddit}" if watch.subreddit else ""
        line(
            f"watch {watch.name}",
            f"{watch.kind}: {watch.url}{where} (every {watch.poll_interval:g} s)",
        )
        if watch.components:
            line("  components", ", ".join(watch.components))
    for folder in sorted({w.templates_path for w in watches}):
        first = next(w for w in watches if w.templates_path == folder)
        try:
            async with _bodies(settings, first):
                pass
            line("templates", f"ok: {folder}")
        except TemplateError as exc:
            line("templates", f"BROKEN: {exc}")
            problems += 1
    problems += await _check_store(settings, line, deep=deep)
    if connect:
        for watch in watches:
            problems += await _check_feed(settings, watch, line)
    if settings.has_reddit_credentials:
        problems += await _check_reddit(settings, watches, line)
    elif connect:
        line("reddit", "FAILED: no credentials, so nothing can be posted (dry-run)")
        problems += 1
    else:
        line("reddit", "no credentials: `modbot run` works in dry-run (prints instead of posting)")
    return 1 if problems else 0


async def check_live(settings: Settings, out: TextIO) -> int:
    """``modbot check --live``: is the running bot alive and current? From its state
    file only, with no network of its own: the health check for containers and timers."""
    from modbot.core.machine import is_waiting  # noqa: PLC0415
    from modbot.store import open_store  # noqa: PLC0415

    line = _printer(out)
    if not settings.database.exists():
        line("state file", f"FAILED: {settings.database} does not exist (is the bot running?)")
        return 1
    dry = is_dry_run(settings)
    try:
        store = await open_store(settings.database, inline=True)
    except StoreError as exc:
        line("state file", f"FAILED: {exc}")
        return 1
    problems = 0
    try:
        for watch in _watches(settings):
            scope = watch.scope(dry)
            health = await store.health(scope)
            waiting = [r for r in (await store.work(scope)).rows if is_waiting(r)]
            problems += _live(line, watch, health, waiting, dry=dry, now=time.time())
    finally:
        await store.close()
    return 1 if problems else 0


def _live(
    line: Callable[[str, str], None],
    watch: Watch,
    health: Health,
    waiting: list[DeliveryRow],
    *,
    dry: bool,
    now: float,
) -> int:
    """One watch's heartbeat, as ``check --live`` (and ``/healthz``) judge it; the number
    of problems."""
    from modbot.shell.statusview import (  # noqa: PLC0415
        liveness_window,
        poll_problem,
        reddit_problem,
        when,
    )

    polling = poll_problem(watch.name, watch.poll_interval, health, now)
    reddit = reddit_problem(watch.name, watch.poll_interval, health, len(waiting), dry=dry, now=now)
    polled, called = health.last_good_poll_at, health.last_reddit_ok_at
    if polling is not None:
        line("polling", f"FAILED: {polling}")
    elif polled is not None:
        line("polling", f"{watch.name}: ok: last good poll {now - polled:.0f} s ago")
    if reddit is not None:
        line("reddit", f"FAILED: {reddit}")
    elif not dry:
        if called is not None and now - called <= liveness_window(watch.poll_interval):
            line("reddit", f"{watch.name}: ok: last good Reddit call {now - called:.0f} s ago")
        else:
            line(
                "reddit",
                f"{watch.name}: ok: nothing to deliver (last good Reddit call {when(called)})",
            )
    return (polling is not None) + (reddit is not None)


async def _check_feed(settings: Settings, watch: Watch, line: Callable[[str, str], None]) -> int:
    from modbot.errors import FeedError  # noqa: PLC0415

    try:
        feed = await load_feed(settings, watch, None)
    except FeedError as exc:
        line("feed", f"{watch.name}: FAILED: {exc}")
        return 1
    line("feed", f"{watch.name}: ok: {len(feed.incidents)} incidents listed")
    await _check_components(settings, watch, line)
    return 0


async def _check_components(
    settings: Settings, watch: Watch, line: Callable[[str, str], None]
) -> None:
    """Name the page's components, and warn about filter names that match none of them
    (a misspelt filter would post nothing, forever)."""
    from modbot.errors import FeedError  # noqa: PLC0415
    from modbot.sources.components import listed_components  # noqa: PLC0415
    from modbot.sources.fetch import make_http_client  # noqa: PLC0415

    try:
        async with make_http_client(settings.http_timeout) as http:
            listed = await listed_components(watch, http)
    except FeedError as exc:
        line("components", f"{watch.name}: cannot list them ({exc})")
        return
    if listed is None:
        line("components", f"{watch.name}: the page does not list its components")
        return
    which = "the page lists" if listed.complete else "the incidents on the page name"
    line("components", f"{watch.name}: {which}: {', '.join(listed.names) or 'none'}")
    for name in listed.unmatched(watch.components):
        more = "" if listed.complete else " (only those of its listed incidents are known)"
        line(
            "components",
            f"{watch.name}: WARNING: the filter {name!r} matches none of the names "
            f"{which}{more}: incidents would be posted only if one matched",
        )


async def _check_reddit(
    settings: Settings, watches: list[Watch], line: Callable[[str, str], None]
) -> int:
    """Log in and report what posting needs, per subreddit; the number of blocking problems."""
    from modbot.reddit.client import RedditClient  # noqa: PLC0415

    async with RedditClient(settings) as reddit:
        try:
            name = await reddit.me()
        except RedditError as exc:
            line("reddit login", f"FAILED: {login_failure(exc, settings)}")
            return 1
        how = "a refresh token" if settings.reddit_refresh_token else "a password"
        line("reddit login", f"ok: logged in as u/{name} with {how}")
        try:
            profile = await reddit.profile_state(name)
            if profile != "ok":
                line("account", f"FAILED: {ACCOUNT_PROBLEMS[profile].format(name=name)}")
                return 1
        except RedditError as exc:
            line("account", f"FAILED: {exc}")
            return 1
        problems = 0
        for watch in watches:
            assert watch.subreddit is not None  # required with credentials
            problems += await _check_subreddit(reddit, name, watch, line, settings.distinguish)
        return problems


ACCOUNT_PROBLEMS = {
    "suspended": "u/{name} is suspended: it cannot post; appeal to Reddit",
    "hidden": (
        "u/{name}'s profile answers 404: the account is shadow-banned, so its comments "
        "would be invisible to everyone else; look at it from a logged-out browser and "
        "appeal to Reddit"
    ),
}
SUBREDDIT_PROBLEMS = {
    "missing": "r/{sr} does not exist: check the subreddit's name (MODBOT_SUBREDDIT or the watch)",
    "banned": "r/{sr} is banned by Reddit: nothing can be posted there",
    "private": "r/{sr} is private: make u/{name} an approved user or a moderator there",
}


def login_failure(exc: RedditError, settings: Settings) -> str:
    """One line naming why Reddit refused the login, and the fix."""
    from modbot.errors import RedditAuthError, RedditForbidden  # noqa: PLC0415

    if isinstance(exc, RedditAuthError) and exc.reason == "app":
        return (
            "the app's id or secret is wrong (HTTP 401 from Reddit's token endpoint): check "
            "MODBOT_REDDIT_CLIENT_ID and MODBOT_REDDIT_CLIENT_SECRET"
        )
    if isinstance(exc, RedditAuthError) and exc.reason == "grant":
        if settings.reddit_refresh_token:
            return (
                "Reddit refused the refresh token (invalid_grant): it was revoked or belongs "
                "to another app; run `modbot auth` again"
            )
        return (
            "Reddit refused the username and password (invalid_grant): the password is "
            "wrong, or the account has two-factor login, which needs a refresh token "
            "(`modbot auth`, then MODBOT_REDDIT_REFRESH_TOKEN)"
        )
    if isinstance(exc, RedditForbidden):
        return (
            "Reddit refused the app (HTTP 403): it is not approved for API access yet, or "
            "the app or the account is suspended (README: Connect it to Reddit)"
        )
    return f"{exc} (can this machine reach Reddit?)"


async def _check_subreddit(
    reddit: RedditClient,
    name: str,
    watch: Watch,
    line: Callable[[str, str], None],
    distinguish: bool,
) -> int:
    subreddit = watch.subreddit or ""
    try:
        state = await reddit.subreddit_state(subreddit)
        if state != "ok":
            line(
                "subreddit", "FAILED: " + SUBREDDIT_PROBLEMS[state].format(sr=subreddit, name=name)
            )
            return 1
        line("subreddit", f"r/{subreddit} exists")
        mine = (await reddit.moderators(subreddit)).get(name.lower())
        if mine is None:
            line("moderator", "no: it can post, but cannot distinguish or pin its comments")
        else:
            line("moderator", f"yes, permissions: {', '.join(mine.permissions) or 'none'}")
        can_pin = mine is not None and bool({"all", "posts"} & set(mine.permissions))
        if distinguish and not can_pin:
            line(
                "moderator",
                f"FAILED: MODBOT_DISTINGUISH is on but u/{name} is not a moderator of "
                f"r/{subreddit} with the posts permission: make it one, or turn it off",
            )
            return 1
        if not _stray_posts(watch, name, can_pin, line):
            return 1
        thread = await reddit.megathread(subreddit, watch.megathread_title).current_thread()
    except RedditError as exc:
        line("reddit", f"FAILED: {exc}")
        return 1
    if thread is None:
        line(
            "megathread",
            f"NONE: no pinned post in r/{subreddit} matches "
            f"{watch.megathread_title!r} (or it is locked/archived)",
        )
        return 1
    line("megathread", f"{thread.title} ({thread.permalink})")
    return 0


def _stray_posts(watch: Watch, name: str, can_act: bool, line: Callable[[str, str], None]) -> bool:
    """Say what the watch does with readers' stray report posts, and whether the account
    may; False when it is asked to remove them and may not."""
    config = watch.reports
    if not config.reading or config.action == "off":
        return True
    subreddit = watch.subreddit or ""
    if can_act:
        what = (
            "replies (distinguished) and removes them"
            if config.action == "remove"
            else "replies to them (distinguished)"
        )
        line("stray posts", f"{what}: u/{name} has the posts permission")
        return True
    if config.action == "remove":
        line(
            "stray posts",
            f"FAILED: MODBOT_REPORTS_ACTION=remove needs u/{name} to be a moderator of "
            f"r/{subreddit} with the posts permission: make it one, or set reply or off",
        )
        return False
    line(
        "stray posts",
        f"left alone: replying needs u/{name} to be a moderator of r/{subreddit} with the "
        "posts permission (it must see the approved users)",
    )
    return True


async def _check_store(
    settings: Settings, line: Callable[[str, str], None], *, deep: bool = False
) -> int:
    from modbot.store import open_store  # noqa: PLC0415

    if not settings.database.exists():
        line("state file", f"{settings.database} (not created yet; `modbot run` creates it)")
        return 0
    try:
        store = await open_store(settings.database)
    except StoreError as exc:
        line("state file", f"BROKEN: {exc}")
        return 1
    try:
        # --deep reads the whole file (what grows with the history); otherwise what a
        # start looks at.
        damage = await (store.integrity_problems() if deep else store.startup_problems())
        if damage:
            line("state file", f"BROKEN: {settings.database} is damaged ({damage[0]})")
            return 1
        await store.writable()
        version = await store.schema_version()
        checked = "every page read" if deep else "writable"
        line("state file", f"ok: {settings.database} (schema {version}, {checked})")
        return 0
    except StoreError as exc:
        line("state file", f"FAILED: {exc}")
        return 1
    finally:
        await store.close()


def _printer(out: TextIO) -> Callable[[str, str], None]:
    def line(what: str, text: str) -> None:
        out.write(f"{what + ':':<13} {text}\n")  # a long label keeps its space

    return line


# --- auth -------------------------------------------------------------------------------------

# ``modmail``: commands sent to the subreddit by modmail, and the replies to them.
BASE_SCOPES = ("identity", "read", "history", "submit", "edit", "privatemessages", "modmail")


def auth_scopes(settings: Settings) -> list[str]:
    """What the bot needs: reading, its own comment history, commenting, editing, its
    inbox; pinning only when it distinguishes, the wiki only for wiki templates."""
    scopes = list(BASE_SCOPES)
    if settings.distinguish:
        scopes.append("modposts")
    if settings.wiki_templates or any(w.wiki_templates for w in _watches(settings)):
        scopes.append("wikiread")
    return scopes


async def auth(settings: Settings, out: TextIO, *, port: int, wait: float) -> int:
    """``modbot auth``: a refresh token for the bot's account, through the browser."""
    import secrets  # noqa: PLC0415

    from modbot.reddit.authflow import redirect_uri, wait_for_code  # noqa: PLC0415
    from modbot.reddit.client import authorize_url, exchange_code  # noqa: PLC0415

    if not (settings.reddit_client_id and settings.reddit_client_secret):
        raise ConfigError(
            "modbot auth needs the app's MODBOT_REDDIT_CLIENT_ID and "
            "MODBOT_REDDIT_CLIENT_SECRET (see the README: Connect it to Reddit)"
        )
    redirect = redirect_uri(port)
    state = secrets.token_urlsafe(16)
    url = await authorize_url(settings, redirect, auth_scopes(settings), state)
    out.write(
        "1. Open this link in a browser where you are logged in as the bot's account,\n"
        "   and choose Allow:\n\n"
        f"   {url}\n\n"
        f"2. Reddit then sends the browser back to {redirect}, where this command is\n"
        f"   listening (the app's redirect URI must be exactly {redirect}).\n"
        f"Waiting up to {wait:g} s ...\n"
    )
    out.flush()
    code = await wait_for_code(port, state, wait)
    token, account = await exchange_code(settings, redirect, code)
    out.write(
        f"\nDone: a refresh token for u/{account or '?'}. Put this line in your .env in place "
        "of\nMODBOT_REDDIT_USERNAME and MODBOT_REDDIT_PASSWORD, and keep it as secret as a "
        "password\n(it is shown only this once):\n\n"
        f"MODBOT_REDDIT_REFRESH_TOKEN={token}\n"
    )
    return 0


# --- providers --------------------------------------------------------------------------------


def providers(out: TextIO, *, markdown: bool = False) -> int:
    """``modbot providers``: the catalog of providers a watch can name."""
    from modbot.config import catalog  # noqa: PLC0415

    out.write(catalog.markdown_table() if markdown else catalog.listing())
    return 0


# --- demo -------------------------------------------------------------------------------------


async def demo(
    settings: Settings,
    out: TextIO,
    delay: float,
    kind: str = "statuspage",
    *,
    provider: str | None = None,
) -> int:
    """``modbot demo``: replay a real incident through the real pipeline, offline."""
    import asyncio  # noqa: PLC0415 - not for the commands that need no loop

    from modbot.app import App  # noqa: PLC0415
    from modbot.config.catalog import lookup  # noqa: PLC0415
    from modbot.config.watches import load_watches  # noqa: PLC0415
    from modbot.errors import FeedError  # noqa: PLC0415
    from modbot.sources.demo import (  # noqa: PLC0415
        DEMOS,
        ReplaySource,
        demo_documents,
        moved_to,
        provider_demo,
    )

    where = ""
    if provider is not None:
        entry = lookup(provider)
        documents, url, source_note = provider_demo(entry)
        kind = entry.kind
        # The page before the incident, so that the incident is new to the bot.
        documents = [{"page": documents[0]["page"], "incidents": []}, *documents]
        if entry.demo_note:
            where = f"for {entry.display_name} ({entry.demo_note})"
        if documents[1]["incidents"][0]["status"] in ("resolved", "postmortem"):
            # Resolved at its first update: news only if it happens now (its times are
            # moved, its text and order kept, and the output says so).
            # (A few seconds ahead: the bot's first poll, its baseline, comes after this.)
            documents = moved_to(documents, datetime.now(UTC) + timedelta(seconds=10))
            source_note += "; its times are moved to the present, as it has one update only"
    else:
        url = DEMOS[kind]
        documents, source_note = demo_documents(kind)
    replay = ReplaySource(documents, url)
    where = where or f"from {url.split('//', 1)[-1]}"
    out.write(
        f"modbot demo: replaying a real incident {where}, one status update at a\n"
        "time, through the real pipeline (diff, templates, store, delivery) in dry-run.\n"
        "No network and no Reddit account are used; each comment version is printed below.\n\n"
    )
    with tempfile.TemporaryDirectory(prefix="modbot-demo-") as folder:
        demo_settings = settings.model_copy(
            update={
                "database": Path(folder) / "demo.sqlite3",
                "statuspage_url": url,
                "source_kind": kind,
                "min_edit_interval": 0.0,
                "components": (),
                "config": None,
                "provider": None,
            }
        )
        watches = load_watches(demo_settings.model_copy(update={"config": None}))[:1]
        async with App(demo_settings, dry_run=True, out=out, source=replay, watches=watches) as app:
            for number in range(len(documents)):
                replay.step = number
                listed = documents[number]["incidents"]
                says = f"says {listed[0]['status'].upper()}" if listed else "lists no incident yet"
                out.write(f">>> step {number + 1}/{len(documents)}: the page {says}\n\n")
                out.flush()
                report = await app.run_once()
                if not report.ok:
                    raise FeedError(report.message)
                if number + 1 < len(documents):
                    await asyncio.sleep(delay)
    out.write(f"That is what modbot does. Data: {source_note}\n")
    return 0


# --- moderator commands -----------------------------------------------------------------------


def notice_watch(watches: list[Watch], name: str | None, subreddit: str | None) -> Watch:
    """The watch a notice belongs to: the named one, the first of the named subreddit, or
    the only subreddit's first; several subreddits need ``--subreddit``."""
    from modbot.config.watches import pick  # noqa: PLC0415
    from modbot.errors import ConfigError  # noqa: PLC0415

    if name is not None:
        return pick(watches, name)
    wanted = (subreddit or "").removeprefix("r/").lower()
    candidates = [w for w in watches if not wanted or (w.subreddit or "").lower() == wanted]
    if not candidates:
        raise ConfigError(f"no watch posts into r/{wanted}")
    if len({(w.subreddit or "").lower() for w in candidates}) > 1:
        names = ", ".join(sorted({f"r/{w.subreddit}" for w in candidates if w.subreddit}))
        raise ConfigError(f"watches post into several subreddits: give --subreddit ({names})")
    return candidates[0]


async def post(
    settings: Settings,
    *,
    text: str | None,
    incident_id: str | None,
    edit: str | None,
    dry_run: bool,
    out: TextIO,
    watch_name: str | None = None,
    subreddit: str | None = None,
) -> int:
    """``modbot post``: a notice (new or ``edit``), or one incident's comment now."""
    from modbot.config.watches import pick  # noqa: PLC0415

    watches = _watches(settings)
    chosen = (
        pick(watches, watch_name)
        if incident_id is not None
        else notice_watch(watches, watch_name, subreddit)
    )
    _say_dry_run(settings, dry_run, out)
    async with _app(settings, dry_run=dry_run, out=out) as app:
        runtime = app.runtime(chosen.name) if len(watches) > 1 else app.first
        ops = runtime.operations
        if incident_id is not None:
            known = await app.store.tracked(runtime.scope, [incident_id])
            feed = None if known else await load_feed(settings, chosen, None)
            outcome = await ops.post_incident(incident_id, feed)
        elif edit is not None:
            outcome = await ops.edit_notice(edit, text or "")
        else:
            outcome = await ops.post_notice(text or "", source="cli")
    out.write(outcome.text + "\n")
    return 0 if outcome.link else 1  # 1: not confirmed (yet); the text says why


async def refresh(
    settings: Settings,
    *,
    incident_id: str | None,
    every: bool,
    dry_run: bool,
    out: TextIO,
    watch_name: str | None = None,
) -> int:
    """``modbot refresh``: re-render incidents and edit the comments whose text changed."""
    from modbot.config.watches import pick  # noqa: PLC0415

    chosen = pick(_watches(settings), watch_name)
    _say_dry_run(settings, dry_run, out)
    async with _app(settings, dry_run=dry_run, out=out) as app:
        outcome = await app.runtime(chosen.name).operations.refresh(incident_id, every=every)
    out.write(outcome.text + "\n")
    return 0


async def status(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    """``modbot status``: every watch, from the state file alone (no network)."""
    from modbot.config.watch import deployment_name  # noqa: PLC0415
    from modbot.shell.statusview import (  # noqa: PLC0415
        health_json,
        leadership_text,
        status_text,
        watches_table,
    )
    from modbot.store import open_store  # noqa: PLC0415

    if not settings.database.exists():
        out.write(f"No state yet at {settings.database}: start the bot with `modbot run`.\n")
        return 1
    watches = _watches(settings)
    dry = is_dry_run(settings)
    store = await open_store(settings.database, inline=True)
    try:
        deployment = deployment_name(settings, watches, dry_run=dry)
        who = await store.leadership(deployment, settings.lease_interval)
        if as_json:
            scopes = [(w.name, w.kind, w.scope(dry)) for w in watches]
            text = await health_json(store, scopes, who)
        else:
            now = time.time()
            parts = [await watches_table(store, watches, dry_run=dry)] if len(watches) > 1 else []
            if who is not None:
                parts.insert(0, leadership_text(who, settings.lease_interval))
            for watch in watches:
                parts.append(
                    await status_text(
                        store,
                        watch.scope(dry),
                        url=watch.url,
                        subreddit=watch.subreddit,
                        dry_run=dry,
                        now=now,
                        reports=watch.reports,
                    )
                )
            text = "\n\n".join(parts)
    finally:
        await store.close()
    out.write(text + "\n")
    return 0


def reports_explain(
    settings: Settings, text: str, out: TextIO, watch_name: str | None = None
) -> int:
    """``modbot reports explain TEXT``: which report rules a text matches, and why.
    Prints only the rules' labels and the watch's component names, never the text."""
    from modbot.config.reportrules import shipped_rules  # noqa: PLC0415
    from modbot.config.watches import pick  # noqa: PLC0415
    from modbot.core.reports import describe, explain  # noqa: PLC0415

    watches = _watches(settings)
    watch = pick(watches, watch_name) if watch_name or len(watches) == 1 else None
    components = watch.components if watch is not None else ()
    # A watch's own rule changes (its report_rules table) join here once watches carry them.
    rules = shipped_rules()
    if watch is not None and watch_name:
        out.write(f"watch {watch.name}\n")
    out.write(describe(explain(text, rules, components), components) + "\n")
    return 0


async def migrate_store(settings: Settings, to: str, out: TextIO) -> int:
    """``modbot migrate-store --to DATABASE``: copy every row into an empty store."""
    from modbot.config.database import database_location, existing_folder  # noqa: PLC0415
    from modbot.store import open_store  # noqa: PLC0415

    try:
        target = database_location(to)
        if isinstance(target, Path):
            existing_folder(target)
    except ValueError as exc:
        raise ConfigError(f"--to: {exc}") from exc
    source = settings.database
    if _same_store(source, target):
        raise ConfigError(f"--to names the store the bot uses now ({source}); name another")
    if not source.exists():
        raise ConfigError(f"there is no state at {source} to copy")
    new_file = isinstance(target, Path) and not target.exists()
    try:
        tables = await _copy_rows(open_store, source, target)
    except BaseException:
        if new_file and isinstance(target, Path):  # leave no empty file behind
            for suffix in ("", "-wal", "-shm", "-run.lock"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - a CLI verb
        raise
    copied = ", ".join(f"{len(rows)} {table}" for table, rows in tables.items())
    out.write(
        f"Copied the state from {source} to {target}: {copied}.\n"
        f"Now set MODBOT_DATABASE to the new store (on every machine) and start the bot.\n"
    )
    return 0


def _same_store(one: object, other: object) -> bool:
    if isinstance(one, Path) and isinstance(other, Path):
        return one.resolve() == other.resolve()
    return str(one) == str(other)


async def _copy_rows(
    open_store: Callable[..., Any], source: Any, target: Any
) -> dict[str, list[dict[str, Any]]]:
    """Every row from ``source`` into ``target``, with every bot kept off both."""
    origin = await open_store(source)
    try:
        destination = await open_store(target)
        try:
            held = []
            try:
                for store, where in ((origin, source), (destination, target)):
                    running = await store.shut_out()
                    if running:
                        who = running[0]
                        process = f" ({who.host} pid {who.pid})" if who.pid else ""
                        raise ModbotError(
                            f"a bot is running on {where}{process}: stop every `modbot run` "
                            "using either store first; nothing was copied"
                        )
                    held.append(store)
                tables: dict[str, list[dict[str, Any]]] = await origin.export_rows()
                await destination.import_rows(tables)
            finally:
                for store in held:
                    await store.let_in()
        finally:
            await destination.close()
    finally:
        await origin.close()
    return tables


async def set_pause(
    settings: Settings, *, paused: bool, out: TextIO, watch_name: str | None = None
) -> int:
    """``modbot pause`` / ``modbot resume``."""
    from modbot.config.watches import pick  # noqa: PLC0415
    from modbot.store import open_store, refuse_damaged  # noqa: PLC0415

    watch = pick(_watches(settings), watch_name)
    who = f"{getpass.getuser()} (CLI)"
    store = await open_store(settings.database)
    try:
        await refuse_damaged(store, settings.database)
        await store.set_paused(watch.scope(is_dry_run(settings)), paused, by=who, now=time.time())
    finally:
        await store.close()
    name = f"{watch.name}: " if watch_name else ""
    if paused:
        out.write(f"{name}paused: no posts or edits until resumed; updates are kept\n")
    else:
        out.write(f"{name}resumed: held updates will be delivered within one poll interval\n")
    return 0


async def quiet(
    settings: Settings, duration_text: str, *, out: TextIO, watch_name: str | None = None
) -> int:
    """``modbot quiet --for 2h`` / ``--off``: hold early notices (or stop holding them)."""
    from modbot.config.watches import pick  # noqa: PLC0415
    from modbot.core.commands import duration  # noqa: PLC0415
    from modbot.shell.statusview import when  # noqa: PLC0415
    from modbot.store import open_store, refuse_damaged  # noqa: PLC0415

    try:
        seconds = duration(duration_text)
    except CommandError as exc:
        raise ConfigError(str(exc).replace("!quiet", "--for")) from exc
    watch = pick(_watches(settings), watch_name)
    who = f"{getpass.getuser()} (CLI)"
    now = time.time()
    until = now + seconds if seconds else 0.0
    store = await open_store(settings.database)
    try:
        await refuse_damaged(store, settings.database)
        await store.set_quiet(watch.scope(is_dry_run(settings)), until, by=who, now=now)
    finally:
        await store.close()
    name = f"{watch.name}: " if watch_name else ""
    if seconds:
        out.write(f"{name}early notices held until {when(until)}; reports are still counted\n")
    else:
        out.write(f"{name}early notices: no longer held\n")
    return 0
