"""Reddit through asyncpraw: the only module that imports it.

``RedditClient`` is the one session and call budget of the bot's account. Its one public
way to Reddit is ``call`` (a timeout, the budget, the fence before a write, errors
translated); on top of it, ``Megathread`` implements the ``Target`` port (find the
megathread, post, edit, find the bot's own comments, delete) for the deliverer, and
the client itself the ``Mailbox`` port (the inbox, the moderators, the messages the
bot sends and where to find them) and the ``Wiki`` port for the inbox, plus what
``check`` needs (who am I, does the subreddit exist).

asyncpraw 8.0.3 is pinned, and three of its habits are handled here:

* asyncprawcore retries any 5xx up to three times, POSTs included, so a comment that
  was stored before the error gets posted again behind a call that looks
  successful. That retry is switched off (``_NoRetry``); this module retries only
  what is safe (reads, edits, deletes) with tenacity, and a post whose outcome is
  unknown goes back to the publisher, which reconciles before posting again.
* Its ``timeout`` setting is ignored for API calls, so each call runs under
  ``asyncio.timeout``. Waits that asyncprawcore's rate limiter asks for happen
  before that timeout starts, so a slow budget never looks like a lost request.
* HTTP 400 surfaces as a bare ``aiohttp.ClientConnectionError`` (asyncpraw reads a
  body that asyncprawcore already released); it is mapped to a refusal.

Errors are translated into the ``RedditError`` family from ``modbot.errors``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import asyncpraw
import asyncprawcore
from asyncpraw.endpoints import API_PATH
from asyncpraw.exceptions import RedditAPIException
from asyncprawcore.sessions import FiniteRetryStrategy
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from modbot.config.settings import Settings
from modbot.core import markdown, outbox
from modbot.core.budget import CALLER, CallBudget
from modbot.core.records import (
    Channel,
    InboxItem,
    MessageRow,
    Moderator,
    PostedComment,
    ReaderItem,
    Removal,
    Thread,
    WikiRevision,
)
from modbot.errors import (
    CommentGone,
    RedditAuthError,
    RedditError,
    RedditForbidden,
    RedditRateLimited,
    RedditRejected,
    RedditUnavailable,
    ThreadUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_ERRORS = frozenset({"THREAD_LOCKED", "TOO_OLD", "DELETED_LINK", "LOCKED"})
COMMENT_ERRORS = frozenset({"DELETED_COMMENT", "COMMENT_DELETED"})
DEFAULT_RATELIMIT_WAIT = 60.0
NO_MEGATHREAD_RECHECK = 60.0
WIKI_FOLDER = "modbot"  # the bot reads wiki/modbot/incident, .../manual, .../maintenance
SHARED_LISTING_AGE = 10.0  # how long one thread listing serves the other watches
MAX_PACING_SLEEP = 10.0  # longer waits are rescheduled, not slept
HISTORY_LIMIT = 100
# Commands by modmail older than this are not run: a first start does not answer old ones.
MODMAIL_MAX_AGE = 86400.0
ACCOUNT_ID = re.compile(r"t2_[0-9a-z]{1,16}")  # an account's fullname, as listings give it
KEEPALIVE = 120.0  # seconds an idle connection to Reddit is kept (see ``_session``)
_WAIT_RE = re.compile(r"(\d+)\s*(millisecond|second|minute|hour)", re.IGNORECASE)


class _NoRetry(FiniteRetryStrategy):
    """asyncprawcore's retry strategy with no retries and no initial sleep."""

    DEFAULT_RETRIES = 0

    def __init__(self, retries: int = 0) -> None:
        super().__init__(retries=0)


def ratelimit_wait(message: str | None) -> float:
    """Seconds from Reddit's "try again in N minutes" text (the wording varies)."""
    found = _WAIT_RE.search(message or "")
    if not found:
        return DEFAULT_RATELIMIT_WAIT
    amount, unit = int(found.group(1)), found.group(2).lower()
    factor = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}[unit]
    return max(amount * factor, 1.0)


def translate(exc: BaseException, what: str) -> RedditError:  # noqa: PLR0911, PLR0912 - one per kind
    """The ``RedditError`` for an asyncpraw/asyncprawcore/aiohttp exception."""
    if isinstance(exc, TimeoutError):
        return RedditUnavailable(f"{what}: Reddit did not answer in time")
    if isinstance(exc, RedditAPIException):
        return _api_error(exc, what)
    if isinstance(exc, asyncprawcore.TooManyRequests):
        wait = _seconds(exc.retry_after) or DEFAULT_RATELIMIT_WAIT
        return RedditRateLimited(f"{what}: rate limited (HTTP 429)", retry_after=wait)
    if isinstance(exc, asyncprawcore.ServerError):
        return RedditUnavailable(f"{what}: Reddit error {exc.response.status}")
    if isinstance(exc, asyncprawcore.OAuthException):
        reason = "grant" if exc.error == "invalid_grant" else ""
        return RedditAuthError(f"{what}: Reddit login failed ({exc.error})", reason)
    if isinstance(exc, asyncprawcore.InvalidToken):
        return RedditAuthError(f"{what}: Reddit login failed ({exc})")
    if isinstance(exc, asyncprawcore.Forbidden):
        return RedditForbidden(f"{what}: forbidden (HTTP 403: banned or not allowed)", 600.0)
    if isinstance(exc, asyncprawcore.NotFound):
        return RedditRejected(f"{what}: not found (HTTP 404)")
    if isinstance(exc, asyncprawcore.BadRequest) or (
        isinstance(exc, aiohttp.ClientConnectionError)
        and isinstance(exc.__context__, asyncprawcore.BadRequest)
    ):
        return RedditRejected(f"{what}: Reddit refused the request (HTTP 400)")
    if isinstance(exc, asyncprawcore.ResponseException):
        status = exc.response.status
        if status >= 500:  # e.g. the token endpoint, which asyncprawcore does not map
            return RedditUnavailable(f"{what}: Reddit error {status}")
        if status == 429:
            wait = _seconds(exc.response.headers.get("Retry-After")) or DEFAULT_RATELIMIT_WAIT
            return RedditRateLimited(f"{what}: rate limited (HTTP 429)", retry_after=wait)
        if status == 403:  # the token endpoint: the app is not approved, or suspended
            return RedditForbidden(f"{what}: forbidden (HTTP 403)", 600.0)
        if status == 401:
            return RedditAuthError(
                f"{what}: Reddit login failed (HTTP 401: check app id and secret)", "app"
            )
        return RedditRejected(f"{what}: unexpected HTTP {status}")
    inner = getattr(exc, "original_exception", None)
    if isinstance(exc, asyncprawcore.RequestException) and isinstance(
        inner, asyncprawcore.OAuthException
    ):  # a refresh token revoked mid-session surfaces inside asyncprawcore's retry
        return translate(inner, what)
    if isinstance(exc, asyncprawcore.RequestException | aiohttp.ClientError):
        return RedditUnavailable(f"{what}: connection to Reddit failed ({_reason(exc)})")
    return RedditUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def _api_error(exc: RedditAPIException, what: str) -> RedditError:
    item = exc.items[0]
    code = item.error_type
    text = f"{what}: {code}" + (f" ({item.message})" if item.message else "")
    if code == "RATELIMIT":
        return RedditRateLimited(text, retry_after=ratelimit_wait(item.message))
    if code in THREAD_ERRORS:
        return ThreadUnavailable(text)
    if code in COMMENT_ERRORS:
        return CommentGone(text)
    return RedditRejected(text)


def _seconds(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "original_exception", None)
    if isinstance(inner, TimeoutError):
        return "timed out"
    return str(inner or exc) or type(exc).__name__


def login_of(settings: Settings) -> dict[str, Any]:
    """asyncpraw's login arguments: a refresh token, or the account's name and password."""
    if settings.reddit_refresh_token:
        return {"refresh_token": settings.reddit_refresh_token.get_secret_value()}
    assert settings.reddit_username is not None
    assert settings.reddit_password is not None
    return {
        "username": settings.reddit_username,
        "password": settings.reddit_password.get_secret_value(),
    }


# --- the app alone: modbot auth's authorization-code flow, and a stranger's view ----------


def _app_client(settings: Settings, redirect: str | None = None) -> asyncpraw.Reddit:
    assert settings.reddit_client_id is not None
    assert settings.reddit_client_secret is not None
    options: dict[str, Any] = {
        "client_id": settings.reddit_client_id,
        "client_secret": settings.reddit_client_secret.get_secret_value(),
        "user_agent": settings.user_agent,
        "reddit_url": settings.reddit_url,
        "oauth_url": settings.reddit_oauth_url,
        "short_url": settings.reddit_url,
        "check_for_updates": False,
        "timeout": int(settings.reddit_timeout),
    }
    if redirect:  # the authorization-code flow; without it, an app-only (userless) login
        options["redirect_uri"] = redirect
    return asyncpraw.Reddit(**options)


async def authorize_url(settings: Settings, redirect: str, scopes: list[str], state: str) -> str:
    """The page where the account's owner allows the app (asks for a permanent token)."""
    async with _app_client(settings, redirect) as reddit:
        return str(reddit.auth.url(scopes=scopes, state=state, duration="permanent"))


async def exchange_code(settings: Settings, redirect: str, code: str) -> tuple[str, str]:
    """Trade the callback's code for a refresh token; (token, account name)."""
    async with _app_client(settings, redirect) as reddit:
        try:
            async with asyncio.timeout(settings.reddit_timeout):
                token = await reddit.auth.authorize(code)
                user = await reddit.user.me()
        except Exception as exc:  # translated into our error tree
            raise translate(exc, "exchanging the code") from exc
    if not token:
        raise RedditAuthError("Reddit answered without a refresh token (was the link used twice?)")
    return token, str(user or "")


def _session() -> aiohttp.ClientSession:
    """The account's HTTP session, keeping an idle connection for ``KEEPALIVE`` seconds.

    aiohttp's default drops a connection idle for 15 s, and the bot's reads come every 15
    to 30 s (the inbox, the readers' listings): every read would open a new connection,
    a TLS handshake each time. Kept longer, they reuse one; a connection that Reddit
    closes sooner is noticed by aiohttp and replaced. The headers and timeout are
    asyncprawcore's own (it adds the User-Agent to a session it is given)."""
    connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


class RedditClient:
    """One logged-in bot account: the session, its call budget, its inbox.

    Every watch posts through a ``Megathread`` (``megathread()``) that shares this one
    session and budget; the inbox (the ``Mailbox`` port) is the account's.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not settings.has_reddit_credentials:
            raise RedditAuthError("Reddit credentials are required")
        assert settings.reddit_client_secret is not None
        self.settings = settings
        # With a refresh token the account's name comes from Reddit (``account``).
        self.username: str = settings.reddit_username or ""
        self.clock = clock
        self._reddit = asyncpraw.Reddit(
            client_id=settings.reddit_client_id,
            client_secret=settings.reddit_client_secret.get_secret_value(),
            **login_of(settings),
            user_agent=settings.user_agent,
            reddit_url=settings.reddit_url,
            oauth_url=settings.reddit_oauth_url,
            short_url=settings.reddit_url,
            check_for_updates=False,
            ratelimit_seconds=0,
            timeout=int(settings.reddit_timeout),
            requestor_kwargs={"session": _session()},
        )
        self._disable_hidden_retries()
        self._cooldown_until = 0.0
        # Awaited right before anything is written (a comment, an edit, a delete, a reply,
        # a message), after any pacing, and again before a second attempt: the app makes
        # it prove this process still leads, so a leader that was paused or cut off
        # changes nothing on Reddit when it wakes.
        self.before_write = before_write
        self._create_cooldown_until = 0.0
        self.budget = CallBudget(settings.reddit_calls_per_minute)
        self._moderators: dict[str, tuple[float, dict[str, Moderator]]] = {}
        self._approved: dict[str, tuple[float, set[str] | None]] = {}
        self._megathreads: dict[tuple[str, str], Megathread] = {}
        self.calls = 0
        self._calls_by: Counter[str] = Counter()  # by caller (``CALLER``): what each spent

    def _disable_hidden_retries(self) -> None:
        reddit: Any = self._reddit
        for name in ("_core", "_authorized_core", "_read_only_core"):
            core = getattr(reddit, name, None)
            if core is not None:
                core._retry_strategy_class = _NoRetry

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._reddit.close()

    async def __aenter__(self) -> RedditClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def megathread(self, subreddit: str, title: str) -> Megathread:
        """The ``Target`` for one subreddit's megathread (one per subreddit and title, so
        watches that share a thread share its lookups)."""
        key = (subreddit.lower(), title)
        if key not in self._megathreads:
            self._megathreads[key] = Megathread(self, subreddit, title)
        return self._megathreads[key]

    # --- the call wrapper ---------------------------------------------------------------
    async def _pace(self, what: str, *, creates: bool) -> None:
        """Honour Reddit's requests to slow down before a call.

        A cooldown from a 429 (every call) or a RATELIMIT error (creating comments)
        raises ``RedditRateLimited`` at once, so the caller reschedules instead of a
        task sleeping for minutes. asyncprawcore's header-based pacing is short and
        is slept here, outside the call's timeout.
        """
        now = self.clock()
        until = max(self._cooldown_until, self._create_cooldown_until if creates else 0.0)
        if until > now:
            wait = until - now
            raise RedditRateLimited(f"{what}: Reddit asked to wait {wait:.0f} s more", wait)
        await self._within_budget(what)
        core: Any = getattr(self._reddit, "_core", None)
        limiter = getattr(core, "rate_limiter", None)
        next_ns = getattr(limiter, "next_request_timestamp_ns", None)
        delay = (next_ns - time.monotonic_ns()) / 1e9 if isinstance(next_ns, int) else 0.0
        if delay > MAX_PACING_SLEEP:
            raise RedditRateLimited(f"{what}: request budget spent for {delay:.0f} s", delay)
        if delay > 0:
            log.info("Reddit's rate budget says wait %.1f s", delay)
            await asyncio.sleep(delay)

    async def _within_budget(self, what: str) -> None:
        """Keep to ``MODBOT_REDDIT_CALLS_PER_MINUTE`` over any 60 s (Reddit allows 100),
        shared fairly among the watches (see ``modbot.core.budget``)."""
        who = CALLER.get()
        while (wait := self.budget.wait(who, self.clock())) > 0:
            if wait > MAX_PACING_SLEEP:
                raise RedditRateLimited(f"{what}: own budget of calls per minute spent", wait)
            await asyncio.sleep(wait)
        self.budget.spend(who, self.clock())

    async def _once(
        self, what: str, call: Callable[[Any], Awaitable[T]], *, creates: bool, writes: bool
    ) -> T:
        await self._pace(what, creates=creates)
        for attempt in (1, 2):
            if (creates or writes) and self.before_write is not None:
                await self.before_write()
            self.calls += 1
            self._calls_by[CALLER.get()] += 1
            if attempt == 2:
                self.budget.spend(CALLER.get(), self.clock())
            try:
                async with asyncio.timeout(self.settings.reddit_timeout):
                    return await call(self._reddit)
            except asyncprawcore.InvalidToken as exc:
                # 401: asyncprawcore dropped the token; the next request logs in again.
                if attempt == 2:
                    raise RedditAuthError(f"{what}: Reddit rejected a fresh login token") from exc
                log.info("Reddit token expired; logging in again")
            except RedditError:
                raise
            except Exception as exc:  # translated into our error tree
                error = translate(exc, what)
                self._note_cooldown(exc, error)
                raise error from exc
        raise AssertionError("unreachable")

    def _note_cooldown(self, exc: BaseException, error: RedditError) -> None:
        if not isinstance(error, RedditRateLimited) or not error.retry_after:
            return
        until = self.clock() + error.retry_after
        if isinstance(exc, RedditAPIException):  # RATELIMIT: creating comments only
            self._create_cooldown_until = max(self._create_cooldown_until, until)
        else:  # 429: the whole request budget
            self._cooldown_until = max(self._cooldown_until, until)

    async def call(
        self,
        what: str,
        call: Callable[[Any], Awaitable[T]],
        *,
        retry: bool,
        creates: bool = False,
        writes: bool = False,
    ) -> T:
        """Run one asyncpraw call (``call`` gets the session) with a timeout, within the
        budget, fenced before a write; ``retry`` only where repeating is safe.
        ``creates`` makes something new; ``writes`` changes something that exists.
        ``what`` names it in errors."""
        if not retry:
            return await self._once(what, call, creates=creates, writes=writes)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RedditUnavailable),
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=1, max=8),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(what, call, creates=creates, writes=writes)
        raise AssertionError("unreachable")

    # --- identity and subreddit -----------------------------------------------------------
    async def account(self) -> str:
        """The bot's account name: configured, or asked of Reddit once (refresh tokens).

        Finding the bot's own comments needs it, so an unknown name raises (through the
        call) rather than making "none of ours" look like an answer.
        """
        if not self.username:
            self.username = await self.me()
            if not self.username:
                raise RedditAuthError("Reddit did not say which account the token belongs to")
        return self.username

    async def me(self) -> str:
        """Log in and return the account's name."""

        async def call(reddit: Any) -> str:
            user = await reddit.user.me()
            return str(user) if user is not None else ""

        return await self.call("login", call, retry=True)

    async def profile_state(self, name: str) -> str:
        """``ok``, ``suspended`` (Reddit says so on the profile) or ``hidden`` (the profile
        is 404 to others: shadow-banned), where the account's comments would be invisible.

        Asked with an app-only login, as a stranger would see it: a shadow-banned account
        still sees its own profile."""

        async def call(reddit: Any) -> str:
            async with _app_client(self.settings) as stranger:
                try:
                    profile = await stranger.redditor(name, fetch=True)
                except asyncprawcore.NotFound:
                    return "hidden"
            return "suspended" if getattr(profile, "is_suspended", False) else "ok"

        return await self.call(f"reading u/{name}", call, retry=True)

    async def subreddit_state(self, subreddit: str) -> str:
        """``ok``, ``missing``, ``banned`` or ``private``: what posting there would meet."""

        async def call(reddit: Any) -> str:
            try:
                await reddit.subreddit(subreddit, fetch=True)
            except asyncprawcore.Redirect:
                return "missing"  # Reddit sends unknown names to its search
            except asyncprawcore.NotFound:
                return "banned"
            except asyncprawcore.Forbidden:
                return "private"
            return "ok"

        return await self.call(f"reading r/{subreddit}", call, retry=True)

    # --- the wiki (the ``Wiki`` port, the inbox's) ----------------------------------------
    async def wiki_page(self, subreddit: str, page: str) -> WikiRevision | None:
        """``wiki/modbot/<page>``'s current revision, or None when there is no such page."""

        async def call(reddit: Any) -> WikiRevision | None:
            sub = await reddit.subreddit(subreddit, fetch=False)
            try:
                found = await sub.wiki.get_page(f"{WIKI_FOLDER}/{page}")
            except asyncprawcore.NotFound:
                return None
            author = getattr(found, "revision_by", None)
            return WikiRevision(
                page=page,
                revision_id=str(getattr(found, "revision_id", "") or ""),
                content=str(getattr(found, "content_md", "") or ""),
                author=str(author) if author else None,
                revised_at=float(getattr(found, "revision_date", 0) or 0),
            )

        return await self.call(f"reading r/{subreddit}/wiki/{WIKI_FOLDER}/{page}", call, retry=True)

    async def subreddit_exists(self, subreddit: str) -> bool:
        """True when the subreddit exists and can be read."""

        async def call(reddit: Any) -> bool:
            try:
                await reddit.subreddit(subreddit, fetch=True)
            except (asyncprawcore.Redirect, asyncprawcore.NotFound):
                return False
            return True

        return await self.call(f"reading r/{subreddit}", call, retry=True)

    async def moderators(self, subreddit: str, *, max_age: float = 300.0) -> dict[str, Moderator]:
        """A subreddit's moderators by lower-case name (cached for ``max_age`` s)."""
        now = self.clock()
        cached = self._moderators.get(subreddit.lower())
        if cached is not None and now - cached[0] < max_age:
            return cached[1]

        async def call(reddit: Any) -> dict[str, Moderator]:
            found: dict[str, Moderator] = {}
            for mod in await (await reddit.subreddit(subreddit)).moderator():
                perms = tuple(getattr(mod, "mod_permissions", ()) or ())
                found[str(mod).lower()] = Moderator(str(mod), perms)
            return found

        moderators = await self.call(f"reading r/{subreddit}'s moderators", call, retry=True)
        self._moderators[subreddit.lower()] = (now, moderators)
        return moderators

    async def find_megathread(self, subreddit: str, title: re.Pattern[str]) -> Thread | None:
        """Look at the pinned posts now (one listing call); ``None`` if none is usable."""

        async def call(reddit: Any) -> Thread | None:
            listing = await reddit.subreddit(subreddit)
            async for post in listing.hot(limit=2):
                if not getattr(post, "stickied", False) or not title.search(post.title):
                    continue
                if post.locked or post.archived or getattr(post, "removed_by_category", None):
                    continue
                return Thread(id=post.id, title=post.title, permalink=self.url(post.permalink))
            return None

        return await self.call(f"finding r/{subreddit}'s megathread", call, retry=True)

    # --- readers' posts and comments (the ``Listings`` port) -----------------------------------
    async def new_items(
        self, subreddit: str, listing: str, *, before: str | None, limit: int
    ) -> list[ReaderItem]:
        """One page of the subreddit's new posts (``listing`` "posts") or new comments
        ("comments"), newest first: the ``limit`` items just newer than ``before``, or the
        newest ones. One call; the caller pages with ``before``."""
        path = f"r/{subreddit}/{'new' if listing == 'posts' else 'comments'}"
        params: dict[str, str | int] = {"limit": limit}
        if before:
            params["before"] = before

        async def call(reddit: Any) -> list[ReaderItem]:
            found = await reddit.get(path, params=params)
            return [_reader_item(thing) for thing in getattr(found, "children", None) or []]

        return await self.call(f"reading r/{subreddit}'s new {listing}", call, retry=True)

    async def account_created(self, name: str) -> float | None:
        """When ``name``'s account was made, if Reddit says (None for a suspended,
        deleted or shadow-banned account, whose profile says nothing)."""

        async def call(reddit: Any) -> float | None:
            try:
                redditor = await reddit.redditor(name, fetch=True)
            except asyncprawcore.NotFound:
                return None
            created = getattr(redditor, "created_utc", None)
            return float(created) if isinstance(created, int | float) else None

        return await self.call(f"reading u/{name}'s age", call, retry=True)

    def calls_made(self, caller: str) -> int:
        """Reddit calls made so far for ``caller`` (each attempt counts)."""
        return self._calls_by[caller]

    async def accounts_created(self, author_ids: Sequence[str]) -> dict[str, float | None]:
        """When each of these accounts (t2_...) was made, if Reddit says: a hundred a call
        (``/api/user_data_by_account_ids``); an account Reddit leaves out (suspended,
        deleted) maps to None."""
        made: dict[str, float | None] = dict.fromkeys(author_ids)
        for start in range(0, len(author_ids), 100):
            chunk = list(author_ids[start : start + 100])

            async def call(reddit: Any, chunk: list[str] = chunk) -> dict[str, float | None]:
                found: dict[str, float | None] = {}
                async for user in reddit.redditors.partial_redditors(chunk):
                    created = getattr(user, "created_utc", None)
                    if isinstance(created, int | float) and not isinstance(created, bool):
                        found[str(user.fullname)] = float(created)
                return found

            answered = await self.call("reading readers' account ages", call, retry=True)
            made.update((k, v) for k, v in answered.items() if k in made)
        return made

    async def posts(self, post_ids: Sequence[str]) -> list[ReaderItem]:
        """These posts as they are now (a hundred a call)."""
        found: list[ReaderItem] = []
        for start in range(0, len(post_ids), 100):
            chunk = [f"t3_{p}" for p in post_ids[start : start + 100]]

            async def call(reddit: Any, chunk: list[str] = chunk) -> list[ReaderItem]:
                return [_reader_item(thing) async for thing in reddit.info(fullnames=chunk)]

            found += await self.call("reading readers' posts", call, retry=True)
        return found

    async def approved_users(self, subreddit: str, *, max_age: float = 300.0) -> set[str] | None:
        """A subreddit's approved users by lower-case name (cached for ``max_age`` s);
        None when the bot may not see them."""
        now = self.clock()
        cached = self._approved.get(subreddit.lower())
        if cached is not None and now - cached[0] < max_age:
            return cached[1]

        async def call(reddit: Any) -> set[str] | None:
            sub = await reddit.subreddit(subreddit)
            try:
                return {str(user).lower() async for user in sub.contributor(limit=None)}
            except asyncprawcore.Forbidden:
                return None

        found = await self.call(f"reading r/{subreddit}'s approved users", call, retry=True)
        self._approved[subreddit.lower()] = (now, found)
        return found

    # --- readers' stray posts (the ``Moderation`` port) -----------------------------------------
    async def reply_to_post(self, post_id: str, body: str) -> PostedComment:
        """Reply to a reader's post, distinguished when the bot moderates its subreddit
        (never retried here: the outcome may be unknown)."""

        async def call(reddit: Any) -> PostedComment:
            submission = await reddit.submission(post_id, fetch=False)
            comment = await submission.reply(body)
            if comment is None:
                raise RedditUnavailable("replying: Reddit answered without the new comment")
            return self.posted(comment)

        posted = await self.call(f"replying to post {post_id}", call, retry=False, creates=True)

        async def distinguish(reddit: Any) -> None:
            comment = await reddit.comment(posted.id, fetch=False)
            await comment.mod.distinguish(how="yes", sticky=True)

        try:
            await self.call(
                f"distinguishing reply {posted.id}", distinguish, retry=True, writes=True
            )
        except RedditError as exc:  # not a moderator (any more): the reply stands
            log.info("could not distinguish reply %s: %s", posted.id, exc)
        return posted

    async def remove_post(self, post_id: str, reason: str) -> None:
        """Remove a reader's post, with ``reason`` as the moderators' note."""

        async def call(reddit: Any) -> None:
            submission = await reddit.submission(post_id, fetch=False)
            await submission.mod.remove(mod_note=reason)

        await self.call(f"removing post {post_id}", call, retry=False, writes=True)

    async def post_removed(self, post_id: str) -> bool:
        """True when the post is removed or deleted already (one call)."""
        found = await self.posts([post_id])
        return not found or found[0].removed

    # --- the inbox ----------------------------------------------------------------------
    async def unread(self, limit: int = 25) -> list[InboxItem]:
        """Unread private messages and username mentions, oldest first (not marked read)."""
        await self.account()  # commands are parsed against the account's name

        async def call(reddit: Any) -> list[InboxItem]:
            items = []
            async for item in reddit.inbox.unread(limit=limit, mark_read=False):
                author = getattr(item, "author", None)
                items.append(
                    InboxItem(
                        fullname=item.fullname,
                        author=str(author) if author else None,
                        body=markdown.sound(getattr(item, "body", "") or ""),
                        is_mention=isinstance(item, asyncpraw.models.Comment),
                        handle=item,
                    )
                )
            return list(reversed(items))

        return await self.call("reading the inbox", call, retry=True)

    async def mark_read(self, item: InboxItem) -> None:
        """Mark one inbox item read (a modmail message: its conversation)."""
        if item.conversation is not None:
            await self.mark_modmail_read(item.conversation)
            return

        async def call(reddit: Any) -> None:
            await reddit.inbox.mark_read([item.handle])

        await self.call(f"marking {item.fullname} read", call, retry=True)

    # --- commands by modmail: the subreddits' new modmail, read and answered ----------------
    # Kept apart from the modmail the bot starts itself (alerts to the moderators).
    async def modmail_unread(self, subreddits: Sequence[str]) -> list[InboxItem]:
        """The messages of the subreddits' new-modmail conversations unread by the bot that
        it has not answered (by the markers of its replies), at most a day old, oldest
        first; not marked read. One call when nothing is unread (the counts), else a
        listing per kind of conversation and a read of each unread one."""
        if not subreddits:
            return []
        me = await self.account()
        counts = await self.call("counting unread modmail", _modmail_counts, retry=True)
        states = [
            state
            for state, kinds in (("all", ("new", "inprogress", "highlighted")), ("mod", ("mod",)))
            if any(int(counts.get(kind, 0) or 0) for kind in kinds)
        ]
        entity = ",".join(subreddits)
        items: list[tuple[float, InboxItem]] = []
        for state in states:

            async def listed(reddit: Any, state: str = state) -> list[str]:
                params = {"entity": entity, "state": state, "limit": 25}
                listing = await reddit.get(API_PATH["modmail_conversations"], params=params)
                return [c.id for c in listing.conversations if getattr(c, "last_unread", None)]

            for conversation_id in await self.call("listing modmail", listed, retry=True):
                items += await self._modmail_items(conversation_id, me)
        since = self.clock() - MODMAIL_MAX_AGE
        return [
            item
            for sent, item in sorted(items, key=lambda i: (i[0], i[1].fullname))
            if sent >= since
        ]

    async def _modmail_items(self, conversation_id: str, me: str) -> list[tuple[float, InboxItem]]:
        """The messages of one conversation that others sent and the bot has not answered,
        with when each was sent."""

        async def fetched(reddit: Any) -> Any:
            conversation = asyncpraw.models.ModmailConversation(reddit, id=conversation_id)
            await conversation._fetch()
            return conversation

        conversation = await self.call(
            f"reading modmail conversation {conversation_id}", fetched, retry=True
        )
        messages = list(getattr(conversation, "messages", []) or [])
        answered = {
            markdown.marker_of(getattr(m, "body_markdown", "") or "")
            for m in messages
            if _author_name(m).lower() == me.lower()
        }
        items = []
        for message in messages:
            author = _author_name(message)
            fullname = f"modmail_{message.id}"
            if author.lower() == me.lower() or (
                outbox.marker_id(outbox.reply_key(fullname)) in answered
            ):
                continue
            item = InboxItem(
                fullname=fullname,
                author=author or None,
                body=markdown.sound(getattr(message, "body_markdown", "") or ""),
                is_mention=False,
                conversation=conversation_id,
            )
            items.append((_iso_time(getattr(message, "date", None)), item))
        return items

    async def mark_modmail_read(self, conversation_id: str) -> None:
        """Mark a conversation read, for the bot's account (each moderator's read state is
        their own in new modmail)."""

        async def call(reddit: Any) -> None:
            await asyncpraw.models.ModmailConversation(reddit, id=conversation_id).read()

        await self.call(f"marking modmail {conversation_id} read", call, retry=True)

    async def _reply_in_modmail(self, message: MessageRow) -> str | None:
        async def reply(reddit: Any) -> str | None:
            conversation = asyncpraw.models.ModmailConversation(reddit, id=message.recipient)
            sent = await conversation.reply(body=message.body)
            return str(getattr(sent, "id", "") or "") or None

        what = f"replying in modmail conversation {message.recipient}"
        return await self.call(what, reply, retry=False, creates=True)

    async def _found_in_modmail(self, message: MessageRow) -> list[PostedComment]:
        """The bot's messages in the conversation that carry ``message``'s marker."""
        me = await self.account()

        async def fetched(reddit: Any) -> Any:
            conversation = asyncpraw.models.ModmailConversation(reddit, id=message.recipient)
            await conversation._fetch()
            return conversation

        conversation = await self.call(
            f"reading modmail conversation {message.recipient}", fetched, retry=True
        )
        marker = outbox.marker_id(message.key)
        return [
            PostedComment(
                id=m.id,
                permalink="",
                created_utc=_iso_time(getattr(m, "date", None)),
                body=m.body_markdown,
                marker=marker,
            )
            for m in getattr(conversation, "messages", []) or []
            if _author_name(m).lower() == me.lower()
            and markdown.marker_of(getattr(m, "body_markdown", "") or "") == marker
        ]

    # --- the outbox: what the bot sends that is not a megathread comment ------------------
    async def send(self, message: MessageRow) -> str | None:
        """Send one message its channel's way: compose a private message, or reply to a
        message, comment or modmail conversation, or start an alert's conversation. Never
        retried here: it may have gone out. Reddit's id of the reply (composing answers
        none), or of the modmail message."""
        if message.channel is Channel.MODMAIL:
            return await self._modmail(message)
        if message.channel is Channel.MODMAIL_REPLY:
            return await self._reply_in_modmail(message)
        if message.channel is Channel.MESSAGE:

            async def compose(reddit: Any) -> str | None:
                redditor = await reddit.redditor(message.recipient, fetch=False)
                await redditor.message(subject=message.subject[:100], message=message.body)
                return None

            what = f"messaging u/{message.recipient}"
            return await self.call(what, compose, retry=False, creates=True)

        async def reply(reddit: Any) -> str | None:
            data = {"text": message.body, "thing_id": message.recipient}
            created = await reddit.post(API_PATH["comment"], data=data)
            first = created[0] if isinstance(created, list) and created else None
            return str(getattr(first, "id", "") or "") or None

        return await self.call(f"replying to {message.recipient}", reply, retry=False, creates=True)

    async def find_sent(self, message: MessageRow) -> list[PostedComment]:
        """The copies of ``message`` that went out, oldest first: in the bot's sent box
        (messages, replies to messages) or its comment history (replies to comments),
        found by the marker on their last line. Raises when the listing cannot be read,
        or does not reach back to the message's intent while finding nothing."""
        if message.channel is Channel.MODMAIL:
            return await self._find_modmail(message)
        if message.channel is Channel.MODMAIL_REPLY:
            return await self._found_in_modmail(message)
        by_comment = message.channel is Channel.COMMENT_REPLY
        things = await self._sent(comments=by_comment)
        marker = outbox.marker_id(message.key)
        found = [
            self.posted(thing, marker)
            for thing in things
            if markdown.marker_of(getattr(thing, "body", "") or "") == marker
            and (not by_comment or getattr(thing, "parent_id", None) == message.recipient)
        ]
        if not found and message.intent_at is not None and not _reaches(things, message.intent_at):
            where = "own comments" if by_comment else "the sent messages"
            raise RedditUnavailable(
                f"looking for message {message.key}: {where} do not reach back to it"
            )
        return sorted(found, key=lambda c: (c.created_utc, c.id))

    async def sent_recently(self) -> list[PostedComment]:
        """The bot's newest sent messages and comments that carry a message's marker."""
        found = []
        for comments in (False, True):
            for thing in await self._sent(comments=comments):
                marker = markdown.marker_of(getattr(thing, "body", "") or "")
                if marker is not None and marker.startswith(f"{outbox.KIND}-"):
                    found.append(self.posted(thing, marker))
        return sorted(found, key=lambda c: (c.created_utc, c.id))

    # --- new modmail: alerts to a subreddit's moderators ------------------------------------
    async def _modmail(self, message: MessageRow) -> str | None:
        """An alert: a reply in the moderators' conversation with the alert's subject, or
        a new conversation when there is none (the first alert of its condition, or the
        moderators archived it). Reddit's id of the message sent."""
        subreddit = message.recipient
        me = (await self.moderators(subreddit)).get((await self.account()).lower())
        if me is None or not {"all", "mail"} & set(me.permissions):
            raise RedditRejected(
                f"alerting r/{subreddit}'s moderators: u/{self.username} is not a moderator "
                "with the mail permission (make it one, or set MODBOT_ALERTS=off)"
            )
        conversations = await self._conversations(subreddit, message.subject)
        if conversations:
            conversation_id = conversations[-1][0]  # the newest, if there are several

            async def reply(reddit: Any) -> str | None:
                sub = await reddit.subreddit(subreddit, fetch=False)
                conversation = await sub.modmail(conversation_id, fetch=False)
                sent = await conversation.reply(body=message.body)
                return str(getattr(sent, "id", "") or "") or None

            what = f"replying in r/{subreddit}'s modmail"
            return await self.call(what, reply, retry=False, creates=True)

        async def create(reddit: Any) -> str | None:
            # A conversation among the moderators (no ``to``), as asyncpraw's
            # ``modmail.create`` would send it with a recipient.
            data = {
                "body": message.body,
                "isAuthorHidden": False,
                "srName": subreddit,
                "subject": message.subject,
            }
            created = await reddit.post(API_PATH["modmail_conversations"], data=data)
            sent = getattr(created, "messages", None) or []
            if not sent:
                return None
            return str(getattr(sent[-1], "id", "") or "") or None

        return await self.call(
            f"writing to r/{subreddit}'s modmail", create, retry=False, creates=True
        )

    async def _conversations(self, subreddit: str, subject: str) -> list[tuple[str, float]]:
        """The moderators' conversations of ``subreddit`` with this subject, oldest
        first, as (id, last update). Raises when the listing cannot be read."""
        await self.account()

        async def call(reddit: Any) -> tuple[list[tuple[str, float]], int]:
            sub = await reddit.subreddit(subreddit, fetch=False)
            found, seen = [], 0
            async for conversation in sub.modmail.conversations(state="mod", limit=HISTORY_LIMIT):
                seen += 1
                if getattr(conversation, "subject", None) == subject:
                    found.append((conversation.id, _iso_time(conversation.last_updated)))
            return found, seen

        found, seen = await self.call(f"reading r/{subreddit}'s modmail", call, retry=True)
        if not found and seen >= HISTORY_LIMIT:
            raise RedditUnavailable(
                f"reading r/{subreddit}'s modmail: the newest {HISTORY_LIMIT} conversations "
                "do not include the alert's; cannot tell whether it exists"
            )
        return sorted(found, key=lambda c: (c[1], c[0]))

    async def _find_modmail(self, message: MessageRow) -> list[PostedComment]:
        """The copies of an alert (by its marker, written by the bot) in the moderators'
        conversations that carry its subject, oldest first."""
        subreddit, marker = message.recipient, outbox.marker_id(message.key)
        found = []
        for conversation_id, _ in await self._conversations(subreddit, message.subject):

            async def call(reddit: Any, conversation_id: str = conversation_id) -> list[Any]:
                sub = await reddit.subreddit(subreddit, fetch=False)
                conversation = await sub.modmail(conversation_id)
                return list(getattr(conversation, "messages", None) or [])

            for sent in await self.call(f"reading r/{subreddit}'s modmail", call, retry=True):
                body = str(getattr(sent, "body_markdown", "") or "")
                author = str(getattr(sent, "author", "") or "")
                if author.lower() == self.username.lower() and markdown.marker_of(body) == marker:
                    found.append(
                        PostedComment(
                            id=str(sent.id),
                            permalink=f"https://mod.reddit.com/mail/all/{conversation_id}",
                            created_utc=_iso_time(getattr(sent, "date", None)),
                            body=body,
                            marker=marker,
                        )
                    )
        return sorted(found, key=lambda c: (c.created_utc, c.id))

    async def _sent(self, *, comments: bool) -> list[Any]:
        """The newest things the bot sent: its comments, or its sent messages."""
        await self.account()

        async def listed(reddit: Any) -> list[Any]:
            if comments:
                redditor = await reddit.redditor(self.username, fetch=False)
                return [c async for c in redditor.comments.new(limit=HISTORY_LIMIT)]
            return [m async for m in reddit.inbox.sent(limit=HISTORY_LIMIT)]

        where = "own comments" if comments else "the sent messages"
        return await self.call(f"reading {where}", listed, retry=True)

    async def delete_sent(self, message: MessageRow, copy_id: str) -> None:
        """Delete one copy of a reply that is a comment (a message cannot be unsent)."""
        if message.channel is not Channel.COMMENT_REPLY:
            raise RedditRejected(f"deleting {copy_id}: a private message cannot be unsent")

        async def call(reddit: Any) -> None:
            comment = await reddit.comment(copy_id, fetch=False)
            await comment.delete()

        await self.call(f"deleting comment {copy_id}", call, retry=True, writes=True)

    # --- helpers --------------------------------------------------------------------------
    def url(self, permalink: str) -> str:
        return "https://www.reddit.com" + permalink if permalink.startswith("/") else permalink

    def posted(self, comment: Any, marker: str = "") -> PostedComment:
        return PostedComment(
            id=comment.id,
            permalink=self.url(getattr(comment, "permalink", "") or ""),
            created_utc=float(getattr(comment, "created_utc", 0.0) or 0.0),
            body=getattr(comment, "body", "") or "",
            marker=marker,
        )


# What a moderator sees of a comment no moderator removed: AutoModerator's filter, or
# Reddit's spam filter (``banned_by`` true: it has no name).
FILTERED_CATEGORIES = frozenset({"automod_filtered", "reddit"})
FILTERS = frozenset({"AutoModerator", "True"})


def removal_of(thing: Any, *, by_author: bool = True) -> Removal | None:
    """Why a comment of the bot's is not shown (None: it is). Telling a filter from a
    moderator needs the fields Reddit shows moderators only; without them, any removal
    counts as a moderator's. ``by_author``: a comment with no author is gone (a listing
    names it; an edit's answer need not)."""
    body = getattr(thing, "body", None)
    banned_by = getattr(thing, "banned_by", None)
    category = getattr(thing, "removed_by_category", None)
    filtered = (
        category in FILTERED_CATEGORIES
        or str(banned_by) in FILTERS
        or getattr(thing, "spam", False) is True
    )
    removed = getattr(thing, "removed", False) or banned_by or category or body == "[removed]"
    if filtered and body != "[deleted]":
        return Removal.FILTERED
    authorless = by_author and not str(getattr(thing, "author", "") or "")
    if removed or body == "[deleted]" or authorless:
        return Removal.REMOVED
    return None


def _iso_time(value: object) -> float:
    """A modmail time (ISO 8601) as a timestamp; 0 when Reddit gave none, or one no
    timestamp can hold (year 1 with an offset overflows)."""
    try:
        return datetime.fromisoformat(str(value)).timestamp() if value else 0.0
    except (ValueError, OverflowError, OSError):
        return 0.0


async def _modmail_counts(reddit: Any) -> dict[str, Any]:
    """Unread new-modmail conversations by kind, for the bot's account."""
    counts = await reddit.get(API_PATH["modmail_unread_count"])
    return dict(counts) if isinstance(counts, dict) else {}


def _author_name(message: Any) -> str:
    author = getattr(message, "author", None)
    return str(getattr(author, "name", "") or author or "")


def _reaches(things: list[Any], since: float) -> bool:
    """True when a listing of the newest ``HISTORY_LIMIT`` things holds everything sent
    since ``since``: it is not full, or its oldest is older."""
    if len(things) < HISTORY_LIMIT:
        return True
    return min(float(getattr(t, "created_utc", 0.0) or 0.0) for t in things) <= since


def _reader_item(thing: Any) -> ReaderItem:
    """A listed post or comment as the report rules read it."""
    author = getattr(thing, "author", None)
    name = str(author) if author else None
    author_id = getattr(thing, "author_fullname", None)
    if not (isinstance(author_id, str) and ACCOUNT_ID.fullmatch(author_id)):
        author_id = None  # it goes back to Reddit in a comma-separated query
    distinguished = getattr(thing, "distinguished", None) in ("moderator", "admin")
    if isinstance(thing, asyncpraw.models.Submission):
        selftext = getattr(thing, "selftext", "") or ""
        removed = bool(getattr(thing, "removed_by_category", None)) or selftext in (
            "[removed]",
            "[deleted]",
        )
        return ReaderItem(
            fullname=f"t3_{thing.id}",
            created_utc=float(getattr(thing, "created_utc", 0.0) or 0.0),
            author=None if name in (None, "[deleted]") else name,
            text=f"{getattr(thing, 'title', '') or ''}\n\n{selftext}",
            thread_id=thing.id,
            removed=removed,
            distinguished=distinguished,
            locked=bool(getattr(thing, "locked", False)) or bool(getattr(thing, "archived", False)),
            author_id=author_id,
        )
    body = getattr(thing, "body", "") or ""
    removed = (
        bool(getattr(thing, "removed", False))
        or bool(getattr(thing, "banned_by", None))
        or body in ("[removed]", "[deleted]")
    )
    return ReaderItem(
        fullname=f"t1_{thing.id}",
        created_utc=float(getattr(thing, "created_utc", 0.0) or 0.0),
        author=None if name in (None, "[deleted]") else name,
        text=body,
        thread_id=str(getattr(thing, "link_id", "") or "").removeprefix("t3_"),
        removed=removed,
        distinguished=distinguished,
        author_id=author_id,
    )


class Megathread:
    """One subreddit's pinned megathread: the ``Target`` port, through the shared session.

    The thread is looked up again every ``MODBOT_MEGATHREAD_CHECK_INTERVAL`` (sooner
    when a caller asks, and after errors about it); comments are created, edited, found
    by marker and deleted there.
    """

    def __init__(self, client: RedditClient, subreddit: str, title: str) -> None:
        self.client = client
        self.subreddit = subreddit
        self.title = title
        self._title = re.compile(title, re.IGNORECASE)
        self._thread: Thread | None = None
        self._thread_checked_at: float | None = None
        # The last "every comment of ours here" listing, shared by the watches posting
        # into this thread: at start-up each looks for its own comments, and one
        # listing serves them all. Any post or delete through here makes it stale, and
        # it serves each watch once: a watch that asks again is looking for news (a late
        # copy of a lost post lands with no write of ours to mark the listing stale).
        self._writes = 0
        self._listing: tuple[str, int, float, list[PostedComment]] | None = None
        self._served: set[str] = set()
        # Watches sharing this thread ask at the same moment; one of them asks Reddit.
        self._thread_lock = asyncio.Lock()
        self._listing_lock = asyncio.Lock()

    def thread_suspect(self) -> None:
        """Look the megathread up again before the next delivery."""
        self._thread_checked_at = None

    async def current_thread(self, max_age: float | None = None) -> Thread | None:
        """The pinned megathread, re-checked every ``MODBOT_MEGATHREAD_CHECK_INTERVAL`` (or
        ``max_age``, when shorter).

        Raises when Reddit cannot be asked and no megathread is known yet.
        """
        interval = self.client.settings.megathread_check_interval
        if max_age is not None:
            interval = min(interval, max_age)
        if self._thread is None:
            interval = min(interval, NO_MEGATHREAD_RECHECK)
        async with self._thread_lock:
            return await self._check_thread(interval)

    async def _check_thread(self, interval: float) -> Thread | None:
        now = self.client.clock()
        if self._thread_checked_at is not None and now - self._thread_checked_at < interval:
            return self._thread
        try:
            found = await self.client.find_megathread(self.subreddit, self._title)
        except RedditError as exc:
            if self._thread is None:
                raise
            log.warning("could not check which post is pinned, keeping the last one: %s", exc)
            self._thread_checked_at = now - interval + NO_MEGATHREAD_RECHECK / 2
            return self._thread
        if found is None:
            log.warning(
                "no usable pinned post in r/%s matches %r (none pinned, or locked/archived); "
                "updates are kept until one is pinned",
                self.subreddit,
                self.title,
            )
        elif self._thread is None or found.id != self._thread.id:
            log.info("megathread of r/%s: %s (%s)", self.subreddit, found.title, found.permalink)
        self._thread, self._thread_checked_at = found, now
        return found

    async def post(self, thread: Thread, body: str) -> PostedComment:
        """Create a top-level comment; never retried here (the outcome may be unknown)."""
        client = self.client
        self._writes += 1  # before the call: a post whose outcome is unknown may exist

        async def call(reddit: Any) -> PostedComment:
            submission = await reddit.submission(thread.id, fetch=False)
            comment = await submission.reply(body)
            if comment is None:
                raise RedditUnavailable("posting: Reddit answered without the new comment")
            return client.posted(comment)

        posted = await client.call("posting a comment", call, retry=False, creates=True)
        if client.settings.distinguish:
            await self._distinguish(posted.id)
        return posted

    async def edit(self, comment_id: str, body: str) -> None:
        """Replace a comment's body (idempotent, so retried on 5xx and timeouts)."""

        async def call(reddit: Any) -> None:
            comment = await reddit.comment(comment_id, fetch=False)
            edited = await comment.edit(body)
            # A filtered comment takes edits: once approved, it shows the latest text.
            if removal_of(edited, by_author=False) is Removal.REMOVED:
                raise CommentGone(f"editing {comment_id}: the comment was removed by a moderator")

        await self.client.call(f"editing comment {comment_id}", call, retry=True, writes=True)

    async def delete(self, comment_id: str) -> None:
        """Delete one of the bot's comments."""
        self._writes += 1

        async def call(reddit: Any) -> None:
            comment = await reddit.comment(comment_id, fetch=False)
            await comment.delete()

        await self.client.call(f"deleting comment {comment_id}", call, retry=True, writes=True)

    async def find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        """The bot's comments in a thread carrying ``marker_id`` (None: any marker),
        oldest first.

        Looks in the bot's recent comment history first (one call), then in the thread
        itself; a listing that cannot be read raises, because "unknown" is not "absent".
        """
        if marker_id is None:
            return await self._all_mine(thread_id)
        return await self._find(thread_id, marker_id)

    async def _all_mine(self, thread_id: str) -> list[PostedComment]:
        """Every comment of ours with a marker, from a listing at most a few seconds old
        and older than no post or delete made through this thread."""
        async with self._listing_lock:
            return await self._listed(thread_id)

    async def _listed(self, thread_id: str) -> list[PostedComment]:
        now, writes, who = self.client.clock(), self._writes, CALLER.get()
        if self._listing is not None and who not in self._served:
            listed_thread, listed_writes, listed_at, found = self._listing
            fresh = now - listed_at < SHARED_LISTING_AGE
            if listed_thread == thread_id and listed_writes == writes and fresh:
                self._served.add(who)
                return list(found)
        found = await self._find(thread_id, None)
        self._listing, self._served = (thread_id, writes, now, found), {who}
        return list(found)

    async def _find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        client = self.client
        await client.account()
        found = await client.call(
            "reading own comments",
            lambda reddit: self._from_history(reddit, thread_id, marker_id),
            retry=True,
        )
        if not found:
            found = await client.call(
                "reading the megathread",
                lambda reddit: self._from_thread(reddit, thread_id, marker_id),
                retry=True,
            )
        return sorted(found, key=lambda c: (c.created_utc, c.id))

    async def _from_history(
        self, reddit: Any, thread_id: str, marker_id: str | None
    ) -> list[PostedComment]:
        redditor = await reddit.redditor(self.client.username, fetch=False)
        found = []
        async for comment in redditor.comments.new(limit=HISTORY_LIMIT):
            if comment.link_id == f"t3_{thread_id}":
                found += self._marked(comment, marker_id)
        return found

    async def _from_thread(
        self, reddit: Any, thread_id: str, marker_id: str | None
    ) -> list[PostedComment]:
        submission = await reddit.submission(thread_id, fetch=False)
        submission.comment_sort = "new"
        await submission.load()
        await submission.comments.replace_more(limit=0)
        found = []
        for comment in submission.comments.list():
            if not isinstance(comment, asyncpraw.models.Comment):
                continue
            if str(comment.author or "").lower() == self.client.username.lower():
                found += self._marked(comment, marker_id)
        return found

    def _marked(self, comment: Any, marker_id: str | None) -> list[PostedComment]:
        """``[comment]`` when its marker (on its last line) is ``marker_id`` (any, if None)."""
        found = markdown.marker_of(getattr(comment, "body", "") or "")
        if found is not None and (marker_id is None or found == marker_id):
            return [self.client.posted(comment, found)]
        return []

    async def _distinguish(self, comment_id: str) -> None:
        client = self.client
        try:
            if (await client.account()).lower() not in await client.moderators(self.subreddit):
                log.info("MODBOT_DISTINGUISH is on but the bot is not a moderator; skipping")
                return

            async def call(reddit: Any) -> None:
                comment = await reddit.comment(comment_id, fetch=False)
                await comment.mod.distinguish(how="yes", sticky=True)

            await client.call(f"distinguishing comment {comment_id}", call, retry=True, writes=True)
        except RedditError as exc:
            log.warning("could not distinguish and pin comment %s: %s", comment_id, exc)

    async def removed(self, comment_ids: list[str]) -> dict[str, Removal]:
        """Which of these comments are not shown, and why (one call per 100)."""
        gone: dict[str, Removal] = {}
        for start in range(0, len(comment_ids), 100):
            chunk = comment_ids[start : start + 100]

            async def call(reddit: Any, chunk: list[str] = chunk) -> dict[str, Removal]:
                seen = {}
                async for thing in reddit.info(fullnames=[f"t1_{c}" for c in chunk]):
                    why = removal_of(thing)
                    if why is not None:
                        seen[thing.id] = why
                return seen

            gone |= await self.client.call("checking the bot's comments", call, retry=True)
        return gone
