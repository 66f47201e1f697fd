"""A fake Reddit HTTP server that real asyncpraw talks to.

``FakeReddit`` is an aiohttp server on 127.0.0.1 (ephemeral port) that implements the
slice of Reddit's OAuth API modbot uses, with real state held in plain dataclasses.
asyncpraw is pointed at it through ``oauth_url``/``reddit_url``, so tests exercise
the exact requests, response shapes and exceptions seen in production. A bot in
another process only needs ``fake.url``; tests in this process read and change state
through the Python methods below. Usage::

    async with FakeReddit(subreddit="ClaudeAI", username="modbot", password="hunter2",
                          client_id="cid", client_secret="csecret") as fake:
        post = fake.add_submission("Weekly thread", sticky=1)
        async with asyncpraw.Reddit(**fake.asyncpraw_kwargs()) as reddit:
            submission = await reddit.submission(post.id)
            await submission.reply("hello")
        assert [c.body for c in fake.comments_by("modbot")] == ["hello"]

Faults (each consumed by the next matching request; ``path_regex`` is searched in the
path as sent, e.g. "/api/comment/"): ``fail_next`` answers a status before or *after*
performing the write, ``ratelimit_next`` answers Reddit's 200 + ``RATELIMIT`` error,
``delay_next`` hangs (use ``asyncio.timeout`` on the client side), ``land_late_next``
loses the answer and performs the write seconds later (Reddit under load stores some
writes long after the client gave up), ``down = True`` answers 503 to everything,
``expire_tokens()`` makes the next call get 401 ``invalid_token``. ``listing_lag``
hides young comments from the thread and user listings (not from /api/info).
``ratelimit_headers`` is "auto" (never makes asyncprawcore sleep), a ``(remaining,
used, reset)`` tuple, or None to omit them.
The hooks ``on_comment_created``/``on_comment_edited``/``on_message_read`` run
synchronously after a change made over HTTP and before the answer is written (e.g. to
SIGKILL a bot subprocess at that instant; ``on_message_sent`` likewise for a message
composed (``/api/compose/``) or a reply to a message). ``calls`` records every request,
secrets masked; ``unexpected_calls`` lists those to endpoints the fake does not know
(404).

Logins (``POST /api/v1/access_token``, HTTP Basic client id/secret): the bot's
password (scope "*" unless ``scope`` is sent); ``refresh_token`` for tokens from
``add_refresh_token`` or issued by the fake; ``authorization_code`` for codes from
``authorize``/``approve_authorization`` (single use, same ``redirect_uri``; a
``permanent`` one adds a ``refresh_token``). An access token acts as its grant's user
for ``/api/v1/me``, ``/api/compose/``, ``/message/sent/`` and own-profile visibility;
every other endpoint acts as the bot account. Scopes are enforced per endpoint
(``ROUTE_SCOPES``): a call outside them is 403 ``insufficient_scope``.
``issued_tokens``/``issued_refresh_tokens`` list every token for leak checks;
``revoke_refresh_token`` is the user removing the app.

Access knobs: ``app_suspended = True`` (app not approved or suspended: the login works,
every API call is 403); ``suspend_account(name)`` (``/user/{name}/about`` answers only
``name`` + ``is_suspended``; for the bot every API call is 403); ``shadowban_account``
(its profile is 404 to others); ``ban_subreddit`` (404 ``reason: banned`` on its
pages and threads) and ``make_private`` (403 ``reason: private`` unless the bot
moderates it). Wiki pages: ``set_wiki_page`` adds a revision, served at
``/r/{sr}/wiki/{page}`` (``?v=`` for an old one) and ``/r/{sr}/wiki/revisions/{page}``.
New modmail (``/api/mod/conversations``: list by ``entity`` and ``state``, create, read
one, reply) for moderators with ``mail`` or ``all`` (403 otherwise); ``modmail()`` lists
a subreddit's conversations. ``filter_comment`` is AutoModerator's or the spam filter's
removal (``banned_by`` AutoModerator or true, ``removed_by_category``), unlike
``remove_comment`` (a moderator's); ``approve_comment`` undoes either.

What asyncpraw 8.0.3 / asyncprawcore 4.0.0 raise for each answer (see the tests):

- 500/502/503/504: ``asyncprawcore.ServerError`` after 3 attempts, sleeping 0-2 s then
  2-4 s between them. POSTs are retried too, so ``fail_next(..., when="after")``
  leaves duplicate comments behind a call that looks successful.
- 200 + API error (THREAD_LOCKED, TOO_OLD, DELETED_LINK, DELETED_COMMENT, TOO_LONG,
  NO_TEXT, RATELIMIT): ``asyncpraw.exceptions.RedditAPIException``; branch on
  ``items[0].error_type``. RATELIMIT is retried only if it fits ``ratelimit_seconds``.
- 400: a bare ``aiohttp.ClientConnectionError("Connection closed")``: asyncpraw
  reads the body of a response asyncprawcore has already released.
- 401 ``invalid_token``: asyncprawcore logs in again and retries by itself, through
  the same retry loop (one attempt used, 0-2 s sleep). With that loop turned off it
  raises ``asyncprawcore.InvalidToken`` once and the next call logs in again.
- 403: ``asyncprawcore.Forbidden``; 404: ``asyncprawcore.NotFound``;
  429: ``asyncprawcore.TooManyRequests`` (``retry_after`` = the header or None).
- Unknown subreddit: 302 to ``/subreddits/search`` -> ``asyncprawcore.Redirect``;
  banned: 404 -> ``NotFound``; private: 403 -> ``Forbidden``. The ``reason`` in the body
  is unreadable (``response.json()`` raises "Connection closed"): only the status tells.
- App or bot account suspended: ``Forbidden`` on every call (the login succeeds).
  Missing scope: ``asyncprawcore.InsufficientScope`` (a ``ResponseException``, 403).
- Wrong password, unknown or revoked refresh token, bad or used code: 200
  ``{"error": "invalid_grant"}`` -> ``asyncprawcore.OAuthException`` (``.error``), but
  when the refresh happens inside asyncprawcore's 401 retry it arrives wrapped in
  ``asyncprawcore.RequestException`` (``.original_exception``). Wrong client id/secret:
  401 -> ``asyncprawcore.ResponseException``.
- Shadow-banned or unknown redditor, missing wiki page or revision: 404 -> ``NotFound``.
- Compose errors (USER_DOESNT_EXIST, SUBREDDIT_NOEXIST, NO_SUBJECT, NO_TEXT, TOO_LONG
  with ``field`` "subject" or "text"): ``RedditAPIException``, every error in ``items``.

Simplifications: ``limit`` on ``/comments/{id}/`` counts top-level comments and no
"more" stubs are ever sent; scores are always 1; only the bot account has a password.
Non-moderators see a removed comment as body "[removed]", author "[deleted]". Wiki HTML
is escaped paragraphs only; nobody can edit the wiki over HTTP. ``/api/info`` still
returns things of banned or private subreddits. Authorisation codes never expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import encode_basic_auth, web

JSON = dict[str, Any]
When = Literal["before", "after"]

MAX_COMMENT_LENGTH = 10_000
MAX_SUBJECT_LENGTH = 100
RATELIMIT_WINDOW = 60  # seconds; see _ratelimit_headers
SECRET_FIELDS = frozenset({"password", "refresh_token", "access_token", "token", "code"})
INVALID_TOKEN = 'Bearer realm="reddit", error="invalid_token"'
INSUFFICIENT_SCOPE = 'Bearer realm="reddit", error="insufficient_scope"'
# Reddit's OAuth scopes (https://www.reddit.com/api/v1/scopes); "*" is what the
# password grant gets by default.
SCOPES = frozenset({
    "*", "account", "creddits", "edit", "flair", "history", "identity", "livemanage",
    "modconfig", "modcontributors", "modflair", "modlog", "modmail", "modnote", "modothers",
    "modposts", "modself", "modwiki", "mysubreddits", "privatemessages", "read", "report",
    "save", "structuredstyles", "submit", "subscribe", "vote", "wikiedit", "wikiread",
})  # fmt: skip
# The scope each route needs (``comment`` needs "privatemessages" to answer a message).
ROUTE_SCOPES = {
    "me": "identity", "subreddit_about": "read", "sticky": "read", "moderators": "read",
    "hot": "read", "new": "read", "subreddit_comments": "read", "comments": "read",
    "comment": "submit", "edit": "edit", "delete": "edit",
    "distinguish": "modposts", "remove": "modposts", "removal_reason": "modposts",
    "contributors": "read", "info": "read", "user_about": "read", "user_data": "read",
    "user_comments": "history",
    "inbox": "privatemessages", "read_message": "privatemessages", "sent": "privatemessages",
    "compose": "privatemessages", "wiki_page": "wikiread", "wiki_revisions": "wikiread",
    "modmail_list": "modmail", "modmail_create": "modmail", "modmail_get": "modmail",
    "modmail_unread_count": "modmail", "modmail_read": "modmail",
    "modmail_reply": "modmail",
}  # fmt: skip

# Reddit's API errors: code -> (message, field), as sent in {"json": {"errors": [...]}}.
API_ERRORS: dict[str, tuple[str, str]] = {
    "THREAD_LOCKED": ("Comments are locked.", "parent"),
    "TOO_OLD": ("that's a piece of history now; it's too late to reply to it", "parent"),
    "DELETED_LINK": ("the link you are commenting on has been deleted", "parent"),
    "DELETED_COMMENT": ("that comment has been deleted", "parent"),
    "TOO_LONG": (f"this is too long (max: {MAX_COMMENT_LENGTH})", "text"),
    "NO_TEXT": ("we need something here", "text"),
    "NO_SUBJECT": ("please enter a subject", "subject"),
    "USER_DOESNT_EXIST": ("that user doesn't exist", "to"),
    "SUBREDDIT_NOEXIST": ("that subreddit doesn't exist", "to"),
}


# --------------------------------------------------------------------------- state


@dataclass
class Account:
    name: str
    id: str
    created_utc: float


@dataclass
class Comment:
    id: str
    author: str
    body: str
    link_id: str  # "t3_..."
    parent_id: str  # "t3_..." for top-level comments, else "t1_..."
    created_utc: float
    edited: float | Literal[False] = False
    history: list[str] = field(default_factory=list)  # every body, first = as posted
    distinguished: str | None = None
    stickied: bool = False
    removed: bool = False  # by a moderator
    removed_by: str | None = None
    deleted: bool = False  # by its author
    filtered: str | None = None  # "automod_filtered" or "reddit" (the spam filter)

    @property
    def fullname(self) -> str:
        return f"t1_{self.id}"

    @property
    def submission_id(self) -> str:
        return self.link_id.removeprefix("t3_")

    @property
    def is_root(self) -> bool:
        return self.parent_id.startswith("t3_")


@dataclass
class Submission:
    id: str
    title: str
    author: str
    selftext: str
    created_utc: float
    sticky: int | None = None  # slot 1 or 2
    locked: bool = False
    archived: bool = False
    removed_by_category: str | None = None  # "moderator" or "deleted"
    comments: list[Comment] = field(default_factory=list)  # all, in creation order
    subreddit: str = ""  # "" means the fake's main subreddit

    @property
    def fullname(self) -> str:
        return f"t3_{self.id}"


@dataclass
class Message:
    id: str
    author: str
    dest: str  # a username, or "#Subreddit" for a message to a subreddit's moderators
    subject: str
    body: str
    created_utc: float
    new: bool = True
    parent_id: str | None = None  # "t4_..." when this is a reply
    from_subreddit: str | None = None  # compose's ``from_sr``: recorded, never checked

    @property
    def fullname(self) -> str:
        return f"t4_{self.id}"

    @property
    def to(self) -> str:
        return self.dest

    @property
    def time(self) -> float:
        return self.created_utc


@dataclass
class ModmailMessage:
    """One message of a new-modmail conversation."""

    id: str
    author: str
    body: str  # markdown
    created_utc: float
    internal: bool = False  # a private moderator note


@dataclass
class Conversation:
    """A new-modmail conversation of a subreddit: with ``participant`` (a user who wrote
    to the moderators, or one they wrote to), or, with none, a moderators' discussion.
    ``unread``: by the bot's account (new modmail keeps each moderator's read state
    apart)."""

    id: str
    subreddit: str
    subject: str
    author: str
    participant: str | None
    messages: list[ModmailMessage] = field(default_factory=list)
    archived: bool = False
    unread: bool = False

    @property
    def internal(self) -> bool:
        return self.participant is None

    @property
    def updated(self) -> float:
        return self.messages[-1].created_utc


@dataclass
class WikiRevision:
    id: str  # UUID, as Reddit's revision ids
    subreddit: str
    page: str  # lower case, e.g. "modbot/incident"
    content: str
    author: str | None
    timestamp: float  # the fake's clock; Reddit answers it as whole seconds
    reason: str | None = None


@dataclass(frozen=True)
class Grant:
    """What a token stands for: a user and the scopes the user granted."""

    username: str
    scopes: tuple[str, ...]
    refresh_token: str | None = None  # for access tokens obtained through one


@dataclass(frozen=True)
class _AuthCode:
    grant: Grant
    redirect_uri: str
    duration: Literal["permanent", "temporary"]


@dataclass
class Mention:
    """A username mention in the bot's inbox; the thing itself is ``comment``."""

    comment: Comment
    new: bool = True

    @property
    def fullname(self) -> str:
        return self.comment.fullname

    @property
    def created_utc(self) -> float:
        return self.comment.created_utc


@dataclass
class Call:
    method: str
    path: str  # as sent, without the query string
    query: dict[str, str]
    form: dict[str, str]  # secrets replaced with "***"
    time: float  # time.monotonic() on arrival
    status: int = 0
    route: str | None = None  # None: no such endpoint in the fake
    peer: str = ""  # the client's address and port: a new one is a new connection


@dataclass
class _Fault:
    kind: Literal["fail", "ratelimit", "delay", "late"]
    method: str  # "*" matches any
    pattern: re.Pattern[str]
    when: When
    count: int
    status: int = 503
    headers: dict[str, str] | None = None
    body: Any = None
    seconds: float = 0.0
    message: str = ""
    form: dict[str, re.Pattern[str]] = field(default_factory=dict)  # field -> searched
    hold: float | None = None  # a late write's answer: after this, or when the client hangs up
    stamp: Literal["landing", "request"] = "landing"


@dataclass
class _Ctx:
    request: web.Request
    query: dict[str, str]
    form: dict[str, str]
    match: re.Match[str] | None = None
    user: str = ""  # the token's user
    scopes: tuple[str, ...] = ()

    def arg(self, name: str) -> str:
        """A named group of the route's path pattern."""
        assert self.match is not None
        return self.match[name]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Callable[[_Ctx], web.Response]


class _HandlerError(Exception):
    """Raised by a handler to answer with ``response`` straight away."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


# --------------------------------------------------------------------------- helpers


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _http_error(
    status: int, headers: dict[str, str] | None = None, body: Any = None
) -> web.Response:
    if body is None:
        body = {"message": web.Response(status=status).reason, "error": status}
    if isinstance(body, str | bytes):
        return web.Response(body=body, status=status, headers=headers)
    return _json(body, status=status, headers=headers)


def _api_error(
    code: str, message: str | None = None, field_name: str | None = None
) -> _HandlerError:
    default_message, default_field = API_ERRORS.get(code, (code, ""))
    errors = [[code, message or default_message, field_name or default_field]]
    return _HandlerError(_json({"json": {"errors": errors}}))


def _redact(values: dict[str, str]) -> dict[str, str]:
    return {k: "***" if k in SECRET_FIELDS else v for k, v in values.items()}


def _thing(kind: str, data: JSON) -> JSON:
    return {"kind": kind, "data": data}


def _things(things: list[JSON]) -> web.Response:
    return _json({"json": {"errors": [], "data": {"things": things}}})


def _name(child: JSON) -> str:
    return str(child["data"]["name"])


def _listing(
    children: list[JSON],
    *,
    limit: int | None = None,
    after: str | None = None,
    key: Callable[[JSON], str] = _name,
) -> JSON:
    if after:
        names = [key(child) for child in children]
        children = children[names.index(after) + 1 :] if after in names else []
    page = children if limit is None else children[:limit]
    more = len(page) < len(children)
    data = {
        "after": key(page[-1]) if more else None,
        "before": None,
        "dist": len(page),
        "children": page,
    }
    return {"kind": "Listing", "data": data}


def _cursor_page(
    names: list[str], query: dict[str, str]
) -> tuple[range, tuple[str | None, str | None]]:
    """Which of ``names`` (newest first) a listing page holds, as Reddit cuts it:
    ``before=X`` the ``limit`` items just newer than X, ``after=X`` those just older,
    neither the newest; a cursor naming an item not listed (deleted, removed) gives an
    empty page. Also the page's ``before`` and ``after`` cursors."""
    limit = _limit(query)
    cursor = query.get("before") or query.get("after")
    if cursor and cursor not in names:
        return range(0), (None, None)
    if query.get("before"):
        at = names.index(cursor or "")
        page, newer, older = range(max(0, at - limit), at), at > limit, True
    elif cursor:
        at = names.index(cursor) + 1
        page, newer, older = range(at, min(at + limit, len(names))), True, at + limit < len(names)
    else:
        page, newer, older = range(min(limit, len(names))), False, limit < len(names)
    before = names[page[0]] if page and newer else None
    after = names[page[-1]] if page and older else None
    return page, (before, after)


def _page_listing(children: list[JSON], cursors: tuple[str | None, str | None]) -> JSON:
    before, after = cursors
    data = {"after": after, "before": before, "dist": len(children), "children": children}
    return {"kind": "Listing", "data": data}


def _limit(query: dict[str, str], default: int = 25, cap: int = 100) -> int:
    try:
        return max(1, min(int(query.get("limit", default)), cap))
    except ValueError:
        return default


def _iso(timestamp: float) -> str:
    """Modmail's times: ISO 8601 with the zone."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "_"


def _wiki_name(page: str) -> str:
    """Reddit's spelling of a wiki page name: lower case, no outer slashes."""
    return page.strip("/").replace(" ", "_").lower()


def _md_to_html(markdown: str) -> str:
    """Enough of Reddit's rendering for a test: escaped paragraphs in a ``md`` div."""
    paragraphs = [p for p in re.split(r"\n\s*\n", markdown.strip()) if p]
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    return f'<!-- SC_OFF --><div class="md">{body}</div><!-- SC_ON -->'


def _scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Scopes in the order given, without repeats; unknown names are refused like
    Reddit's authorisation page does ("invalid scope requested")."""
    wanted = scopes.split() if isinstance(scopes, str) else list(scopes)
    if unknown := sorted(set(wanted) - SCOPES):
        raise ValueError(f"invalid scope requested: {', '.join(unknown)}")
    if not wanted:
        raise ValueError("no scope requested")
    return tuple(dict.fromkeys(wanted))


# --------------------------------------------------------------------------- server


class FakeReddit:
    """Fake Reddit: one subreddit, one logged-in bot account, faults on demand."""

    def __init__(
        self,
        *,
        subreddit: str = "ClaudeAI",
        username: str = "modbot",
        password: str = "hunter2",
        client_id: str = "cid",
        client_secret: str = "csecret",
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Reddit's clock: creation times and listing lag. Tests that move the bot's
        # time by hand pass the same clock, so both sides agree on a comment's age.
        self.clock = clock
        self.subreddit = subreddit
        self.subreddit_exists = True
        self.subreddit_fullname = "t5_2qh1i"
        self.username = username
        self.password = password
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = 86400

        self._ids = itertools.count(36**5)  # base36 ids of six characters
        self._last_created = 0.0
        self.accounts: dict[str, Account] = {}
        self.moderators: dict[str, list[str]] = {}  # of the main subreddit
        self.other_subreddits: dict[str, dict[str, list[str]]] = {}  # name -> its moderators
        self.submissions: dict[str, Submission] = {}
        self.comments: dict[str, Comment] = {}
        self.messages: dict[str, Message] = {}  # received by the bot and its replies
        self.mentions: dict[str, Mention] = {}  # keyed by comment id
        self.sent_messages: list[Message] = []  # composed over HTTP (replies are not in it)
        self.wiki: dict[tuple[str, str], list[WikiRevision]] = {}  # (sr, page) -> oldest first
        self.conversations: dict[str, Conversation] = {}  # new modmail, by id
        self.calls: list[Call] = []
        self.add_account(username)

        # Knobs.
        self.down = False
        self.listing_lag = 0.0
        # Items a listing shows only from a given time on (fullname -> Reddit's clock):
        # Reddit's listings may show an item after a newer one.
        self.listed_from: dict[str, float] = {}
        self.ratelimit_headers: tuple[int, int, int] | Literal["auto"] | None = "auto"
        self.on_comment_created: Callable[[Comment], None] | None = None
        self.on_comment_edited: Callable[[Comment], None] | None = None
        self.on_message_read: Callable[[Message | Mention], None] | None = None
        self.on_message_sent: Callable[[Message], None] | None = None
        self.on_post_removed: Callable[[Submission], None] | None = None
        # Posts removed over HTTP: how many times each was asked, and the notes given.
        self.removals: Counter[str] = Counter()
        self.removal_notes: dict[str, str] = {}
        self.approved: dict[str, list[str]] = {}  # lower-case subreddit -> approved users
        # Reddit refuses the app (not approved, or suspended): every API call answers 403.
        self.app_suspended = False
        self.suspended_accounts: set[str] = set()  # see suspend_account
        self.shadowbanned_accounts: set[str] = set()  # see shadowban_account
        self.account_fullnames = True  # listings name each author's account id
        self.subreddit_states: dict[str, Literal["banned", "private"]] = {}  # lower-case name
        # The app's registered redirect URI; None accepts any in authorize().
        self.redirect_uri: str | None = None

        self._tokens: dict[str, Grant] = {}  # access token -> what it stands for
        self.issued_tokens: list[str] = []  # every access token handed out, for leak checks
        self.refresh_tokens: dict[str, Grant] = {}  # the valid ones
        self.issued_refresh_tokens: list[str] = []  # every one issued or added, for leak checks
        self._codes: dict[str, _AuthCode] = {}  # authorisation codes not yet used
        self._faults: list[_Fault] = []
        self._late: set[asyncio.Task[None]] = set()  # writes still to land
        self.late_landed: list[str] = []  # ids of comments (and messages) created by late writes
        self._window = (0.0, 0)  # (start, requests in window) for rate-limit headers
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.url = ""
        self._routes: list[_Route] = []
        sr = r"/r/(?P<sr>[^/]+)"
        wiki_page = r"/wiki/(?!(?:revisions|settings|discussions)/|pages$)(?P<page>.+)"
        for method, pattern, handler in [
            ("POST", r"/api/v1/access_token", self._h_access_token),
            ("GET", r"/api/v1/me", self._h_me),
            ("GET", sr + r"/about", self._h_subreddit_about),
            ("GET", sr + r"/about/sticky", self._h_sticky),
            ("GET", sr + r"/about/moderators", self._h_moderators),
            ("GET", sr + r"/hot", self._h_hot),
            ("GET", sr + r"/new", self._h_new),
            ("GET", sr + r"/comments", self._h_subreddit_comments),
            ("GET", r"(?:/r/[^/]+)?/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?", self._h_comments),
            ("POST", r"/api/comment", self._h_comment),
            ("POST", r"/api/editusertext", self._h_edit),
            ("POST", r"/api/del", self._h_delete),
            ("POST", r"/api/distinguish", self._h_distinguish),
            ("POST", r"/api/remove", self._h_remove),
            ("POST", r"/api/v1/modactions/removal_reasons", self._h_removal_reason),
            ("GET", sr + r"/about/contributors", self._h_contributors),
            ("GET", r"/api/info", self._h_info),
            ("GET", r"/user/(?P<name>[^/]+)/about", self._h_user_about),
            ("GET", r"/api/user_data_by_account_ids", self._h_user_data),
            ("GET", r"/user/(?P<name>[^/]+)/comments", self._h_user_comments),
            ("GET", r"/message/(?P<box>unread|inbox)", self._h_inbox),
            ("GET", r"/message/sent", self._h_sent),
            ("POST", r"/api/(?P<action>read|unread)_message", self._h_read_message),
            ("POST", r"/api/compose", self._h_compose),
            ("GET", sr + r"/wiki/revisions/(?P<page>.+)", self._h_wiki_revisions),
            ("GET", sr + wiki_page, self._h_wiki_page),
            *self._modmail_routes(),
        ]:
            name = handler.__name__.removeprefix("_h_")
            self._routes.append(_Route(method, re.compile(pattern), name, handler))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Start serving; return the base URL ("http://127.0.0.1:PORT")."""
        self._stopping.clear()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving; pending delays wake up and answer 503."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeReddit:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def asyncpraw_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``asyncpraw.Reddit(**kwargs)`` aimed at this server.

        By default the bot logs in with its password. Passing ``refresh_token=`` or
        ``redirect_uri=`` drops username and password (unless passed too), since
        asyncpraw prefers the password grant whenever both are set: ``refresh_token``
        logs in with that token, ``redirect_uri`` alone gives a client that is logged
        in by ``await reddit.auth.authorize(code)``.
        """
        kwargs: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "password": self.password,
            "user_agent": f"python:modbot-tests:v0 (by u/{self.username})",
            "oauth_url": self.url,
            "reddit_url": self.url,
            "short_url": self.url,
            "check_for_updates": False,
            "ratelimit_seconds": 0,
        }
        if {"refresh_token", "redirect_uri"} & overrides.keys():
            del kwargs["username"], kwargs["password"]
        return kwargs | overrides

    # ------------------------------------------------------------------ state helpers

    def _new_id(self) -> str:
        return _base36(next(self._ids))

    def _now(self) -> float:
        """The clock, nudged so that successive calls strictly increase."""
        self._last_created = max(self.clock(), self._last_created + 0.001)
        return self._last_created

    def add_account(self, name: str, *, created_utc: float | None = None) -> Account:
        """The account ``name`` (made now, or at ``created_utc``, if it is new)."""
        if name not in self.accounts:
            made = self._now() if created_utc is None else created_utc
            self.accounts[name] = Account(name=name, id=self._new_id(), created_utc=made)
        return self.accounts[name]

    def _account(self, name: str) -> Account | None:
        """The account called ``name`` in any case, as Reddit matches usernames."""
        name = name.removeprefix("/").removeprefix("u/")
        return next((a for a in self.accounts.values() if a.name.lower() == name.lower()), None)

    def suspend_account(self, name: str, suspended: bool = True) -> None:
        """Suspend ``name`` permanently: ``/user/{name}/about`` answers only ``name`` and
        ``is_suspended: true``; if ``name`` is the bot, every API call answers 403."""
        name = self.add_account(name).name
        if suspended:
            self.suspended_accounts.add(name)
        else:
            self.suspended_accounts.discard(name)

    def shadowban_account(self, name: str, shadowbanned: bool = True) -> None:
        """Shadow-ban ``name``: its profile (``about``, ``comments``) answers 404 to
        everyone but itself."""
        name = self.add_account(name).name
        if shadowbanned:
            self.shadowbanned_accounts.add(name)
        else:
            self.shadowbanned_accounts.discard(name)

    def add_subreddit(self, name: str) -> str:
        """Another subreddit the bot may post in (the main one is ``subreddit``)."""
        self.other_subreddits.setdefault(name, {})
        return name

    def add_moderator(
        self, name: str, perms: Iterable[str] = ("all",), *, subreddit: str | None = None
    ) -> None:
        self.add_account(name)
        self._moderators_of(subreddit)[name] = list(perms)

    def _canonical(self, subreddit: str) -> str:
        """The subreddit's own spelling, as Reddit answers whatever case was asked."""
        names = [self.subreddit, *self.other_subreddits]
        return next((n for n in names if n.lower() == subreddit.lower()), subreddit)

    def _moderators_of(self, subreddit: str | None) -> dict[str, list[str]]:
        if subreddit is None or subreddit.lower() == self.subreddit.lower():
            return self.moderators
        return next(m for s, m in self.other_subreddits.items() if s.lower() == subreddit.lower())

    def _subreddit_of(self, post: Submission) -> str:
        return post.subreddit or self.subreddit

    def add_approved(self, name: str, *, subreddit: str | None = None) -> None:
        """Make ``name`` an approved user of ``subreddit`` (the main one by default)."""
        self.add_account(name)
        self.approved.setdefault((subreddit or self.subreddit).lower(), []).append(name)

    def remove_moderator(self, name: str) -> None:
        self.moderators.pop(name, None)

    def ban_subreddit(self, subreddit: str | None = None, banned: bool = True) -> None:
        """Reddit bans the subreddit: its pages and threads answer 404 ``reason: banned``."""
        self._set_subreddit_state(subreddit, "banned" if banned else None)

    def make_private(self, subreddit: str | None = None, private: bool = True) -> None:
        """The subreddit goes private: 403 ``reason: private`` unless the bot moderates it."""
        self._set_subreddit_state(subreddit, "private" if private else None)

    def _set_subreddit_state(
        self, subreddit: str | None, state: Literal["banned", "private"] | None
    ) -> None:
        key = (subreddit or self.subreddit).lower()
        if state is None:
            self.subreddit_states.pop(key, None)
        else:
            self.subreddit_states[key] = state

    @property
    def bot_is_moderator(self) -> bool:
        return self.username in self.moderators

    def add_submission(
        self,
        title: str,
        *,
        author: str = "AutoModerator",
        selftext: str = "",
        sticky: int | None = None,
        locked: bool = False,
        archived: bool = False,
        subreddit: str = "",
        created_utc: float | None = None,
    ) -> Submission:
        """A post by ``author`` (made now, or at ``created_utc``)."""
        self.add_account(author)
        post = Submission(
            self._new_id(),
            title,
            author,
            selftext,
            self._now() if created_utc is None else created_utc,
            locked=locked,
            archived=archived,
            subreddit=subreddit,
        )
        self.submissions[post.id] = post
        if sticky is not None:
            self.set_sticky(post.id, sticky)
        return post

    def set_sticky(self, sub_id: str, slot: int) -> None:
        """Pin ``sub_id`` to ``slot`` (1 or 2), unpinning whatever held that slot."""
        where = self._subreddit_of(self.submissions[sub_id]).lower()
        for post in self.submissions.values():
            if post.sticky == slot and self._subreddit_of(post).lower() == where:
                post.sticky = None
        self.submissions[sub_id].sticky = slot

    def unsticky(self, sub_id: str) -> None:
        self.submissions[sub_id].sticky = None

    def lock(self, sub_id: str, locked: bool = True) -> None:
        self.submissions[sub_id].locked = locked

    def archive(self, sub_id: str) -> None:
        self.submissions[sub_id].archived = True

    def remove_submission(self, sub_id: str) -> None:
        """A moderator removes the post (``removed_by_category="moderator"``)."""
        self.submissions[sub_id].removed_by_category = "moderator"
        self.submissions[sub_id].sticky = None

    def delete_submission(self, sub_id: str) -> None:
        """Its author deletes the post (``removed_by_category="deleted"``)."""
        self.submissions[sub_id].removed_by_category = "deleted"
        self.submissions[sub_id].sticky = None

    def add_comment(
        self,
        sub_id: str,
        body: str,
        *,
        author: str,
        parent_id: str | None = None,
        created_utc: float | None = None,
    ) -> Comment:
        """Store a comment by ``author`` (no hooks fire: hooks are for HTTP writes), made
        now or at ``created_utc``."""
        self.add_account(author)
        post = self.submissions[sub_id]
        comment = Comment(
            self._new_id(),
            author,
            body,
            post.fullname,
            parent_id or post.fullname,
            self._now() if created_utc is None else created_utc,
            history=[body],
        )
        self.comments[comment.id] = comment
        post.comments.append(comment)
        return comment

    def remove_comment(self, comment_id: str, *, by: str = "a_moderator") -> None:
        """A moderator removes the comment."""
        comment = self.comments[comment_id]
        comment.removed, comment.removed_by, comment.stickied = True, by, False

    def filter_comment(self, comment_id: str, *, by: Literal["automod", "spam"] = "spam") -> None:
        """AutoModerator or the spam filter takes the comment (no moderator acted):
        moderators see ``banned_by`` AutoModerator or true, and ``removed_by_category``."""
        comment = self.comments[comment_id]
        comment.removed, comment.stickied = True, False
        comment.removed_by = "AutoModerator" if by == "automod" else None
        comment.filtered = "automod_filtered" if by == "automod" else "reddit"

    def approve_comment(self, comment_id: str) -> None:
        """A moderator approves a removed or filtered comment."""
        comment = self.comments[comment_id]
        comment.removed, comment.removed_by, comment.filtered = False, None, None

    def modmail(self, subreddit: str | None = None) -> list[Conversation]:
        """The subreddit's new-modmail conversations, oldest first."""
        sr = self._canonical(subreddit or self.subreddit).lower()
        return [c for c in self.conversations.values() if c.subreddit.lower() == sr]

    def comments_in(self, sub_id: str) -> list[Comment]:
        """Live (not deleted, not removed) comments of a thread, oldest first."""
        return [c for c in self.submissions[sub_id].comments if not (c.deleted or c.removed)]

    def comments_by(self, author: str) -> list[Comment]:
        """Every comment ``author`` wrote and did not delete, oldest first."""
        return [c for c in self.comments.values() if c.author == author and not c.deleted]

    def send_message(self, author: str, body: str, subject: str = "command") -> str:
        """``author`` sends the bot a private message; return its id."""
        self.add_account(author)
        message = Message(self._new_id(), author, self.username, subject, body, self._now())
        self.messages[message.id] = message
        return message.id

    def mention(self, author: str, sub_id: str, body: str) -> str:
        """``author`` comments ``body`` in ``sub_id`` mentioning the bot; return the comment id."""
        comment = self.add_comment(sub_id, body, author=author)
        self.mentions[comment.id] = Mention(comment)
        return comment.id

    def replies_to(self, message_id: str) -> list[str]:
        """Bodies of the bot's replies to message ``message_id``, oldest first."""
        return [m.body for m in self.messages.values() if m.parent_id == f"t4_{message_id}"]

    def set_wiki_page(
        self,
        name: str,
        content: str,
        author: str | None,
        subreddit: str | None = None,
        *,
        reason: str | None = None,
    ) -> str:
        """``author`` saves a new revision of wiki page ``name`` (e.g. "modbot/incident")
        of ``subreddit`` (default: the main one, else added); return the revision id."""
        sr = self._canonical(subreddit or self.subreddit)
        if sr.lower() != self.subreddit.lower():
            self.add_subreddit(sr)
        if author is not None:
            self.add_account(author)
        revision = WikiRevision(
            str(uuid.uuid4()), sr, _wiki_name(name), content, author, self._now(), reason
        )
        self.wiki.setdefault((sr.lower(), revision.page), []).append(revision)
        return revision.id

    def wiki_revisions(self, name: str, subreddit: str | None = None) -> list[WikiRevision]:
        """Revisions of a wiki page, newest first (empty if the page does not exist)."""
        key = ((subreddit or self.subreddit).lower(), _wiki_name(name))
        return list(reversed(self.wiki.get(key, [])))

    # --- new modmail: what moderators and users send the subreddit (commands by modmail)

    def send_modmail(
        self,
        author: str,
        body: str,
        *,
        subject: str = "command",
        conversation: str | None = None,
        subreddit: str | None = None,
        internal: bool = False,
    ) -> str:
        """``author`` writes to the subreddit's modmail: a new conversation, or a message in
        ``conversation``; it becomes unread for the bot. Return the message id."""
        self.add_account(author)
        message = ModmailMessage(self._new_id(), author, body, self._now())
        if conversation is None:
            sr = self._canonical(subreddit or self.subreddit)
            participant = None if internal else author
            found = Conversation(self._new_id(), sr, subject, author, participant)
            self.conversations[found.id] = found
        else:
            found = self.conversations[conversation]
        found.messages.append(message)
        found.unread = True
        return message.id

    def modmail_conversation_of(self, message_id: str) -> Conversation:
        """The conversation holding modmail message ``message_id``."""
        return next(
            c for c in self.conversations.values() if any(m.id == message_id for m in c.messages)
        )

    def modmail_replies(self, message_id: str) -> list[str]:
        """Bodies of the bot's messages in the conversation of ``message_id`` after it."""
        conversation = self.modmail_conversation_of(message_id)
        ids = [m.id for m in conversation.messages]
        later = conversation.messages[ids.index(message_id) + 1 :]
        return [m.body for m in later if m.author == self.username]

    def expire_tokens(self) -> None:
        """Invalidate every access token: the next call gets 401 invalid_token."""
        self._tokens.clear()

    # ------------------------------------------------------------------ OAuth grants

    def add_refresh_token(self, token: str, username: str, scopes: Iterable[str]) -> None:
        """Make ``token`` a valid refresh token of ``username`` for ``scopes``."""
        self.add_account(username)
        self.refresh_tokens[token] = Grant(username, _scopes(scopes))
        self.issued_refresh_tokens.append(token)

    def revoke_refresh_token(self, token: str) -> None:
        """The user revokes the app's access: the refresh token and every access token
        obtained through it stop working (the next refresh gets ``invalid_grant``)."""
        self.refresh_tokens.pop(token, None)
        for access, grant in list(self._tokens.items()):
            if grant.refresh_token == token:
                del self._tokens[access]

    def authorize(
        self,
        username: str,
        scopes: Iterable[str],
        redirect_uri: str,
        *,
        duration: Literal["permanent", "temporary"] = "permanent",
    ) -> str:
        """``username`` clicks "Allow" on Reddit's authorisation page; return the code
        Reddit passes to ``redirect_uri``. The code works once, with that redirect URI;
        a ``permanent`` one also yields a refresh token."""
        if self.redirect_uri is not None and redirect_uri != self.redirect_uri:
            raise ValueError(f"invalid redirect_uri parameter: {redirect_uri}")
        self.add_account(username)
        code = secrets.token_urlsafe(20)
        self._codes[code] = _AuthCode(Grant(username, _scopes(scopes)), redirect_uri, duration)
        return code

    def approve_authorization(self, url: str, username: str) -> str:
        """``username`` opens ``url`` (from ``reddit.auth.url(...)``) and clicks "Allow";
        return where Reddit sends the browser: ``redirect_uri?state=...&code=...#_``
        (the ``#_`` is Reddit's)."""
        query = dict(parse_qsl(urlsplit(url).query))
        if query.get("client_id") != self.client_id:
            raise ValueError("invalid client id")
        if query.get("response_type") != "code":
            raise ValueError("only the code flow is implemented")
        if query.get("duration") not in ("permanent", "temporary"):
            raise ValueError(f"invalid duration: {query.get('duration')}")
        duration: Literal["permanent", "temporary"] = (
            "permanent" if query["duration"] == "permanent" else "temporary"
        )
        redirect_uri = query.get("redirect_uri", "")
        code = self.authorize(
            username, query.get("scope", "").split(), redirect_uri, duration=duration
        )
        answer = urlencode({"state": query.get("state", ""), "code": code})
        return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{answer}#_"

    # ------------------------------------------------------------------ fault knobs

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 503,
        *,
        when: When = "before",
        count: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer ``status`` to the next ``count`` matching requests.

        ``when="before"`` leaves state untouched; ``when="after"`` performs the request
        (e.g. stores the comment) and then answers the error. ``body`` is JSON-encoded
        unless it is str/bytes; a 401 carries ``www-authenticate: invalid_token``.
        """
        if status == 401:
            headers = {"www-authenticate": INVALID_TOKEN} | (headers or {})
        self._add_fault(
            _Fault("fail", method, re.compile(path_regex), when, count, status, headers, body)
        )

    def ratelimit_next(
        self,
        path_regex: str = "/api/comment",
        *,
        minutes: int | None = None,
        seconds: int | None = None,
        count: int = 1,
    ) -> None:
        """Answer 200 + Reddit's RATELIMIT error to the next ``count`` matching requests."""
        wait = (
            f"{seconds} second{'s' * (seconds != 1)}"
            if seconds is not None
            else f"{minutes or 5} minutes"
        )
        message = (
            f"Looks like you've been doing that a lot. Take a break for {wait} before trying again."
        )
        self._add_fault(
            _Fault("ratelimit", "*", re.compile(path_regex), "before", count, message=message)
        )

    def delay_next(
        self, method: str, path_regex: str, seconds: float, *, count: int = 1, when: When = "before"
    ) -> None:
        """Sleep ``seconds`` before handling (``"before"``) or before answering (``"after"``).

        With ``"before"``, a request whose client hung up during the delay is dropped
        without touching state; with ``"after"`` the write has already happened.
        """
        self._add_fault(
            _Fault("delay", method, re.compile(path_regex), when, count, seconds=seconds)
        )

    def land_late_next(
        self,
        method: str,
        path_regex: str,
        after: float,
        *,
        hold: float | None = None,
        status: int = 503,
        stamp: Literal["landing", "request"] = "landing",
        count: int = 1,
        form: dict[str, str] | None = None,
    ) -> None:
        """The next ``count`` matching writes land late: the answer is lost, and the
        write (a comment, an edit) is performed ``after`` seconds (real time) after the
        request arrived.

        The request is held until the client hangs up (its timeout), or ``hold``
        seconds, then answered ``status``. A late comment is created as of its landing
        (``stamp="landing"``: the newest copy) or of its request (``"request"``: older
        than a copy posted meanwhile). ``form`` narrows the match: field name -> regex
        searched in the request's form, e.g. ``{"thing_id": "^t3_"}`` for comments on
        posts only, not replies to messages. ``late_pending`` counts the writes still to
        land; ``late_landed`` lists the comments they created.
        """
        patterns = {name: re.compile(regex) for name, regex in (form or {}).items()}
        self._add_fault(
            _Fault(
                "late",
                method,
                re.compile(path_regex),
                "before",
                count,
                status,
                seconds=after,
                form=patterns,
                hold=hold,
                stamp=stamp,
            )
        )

    @property
    def late_pending(self) -> int:
        """Late writes accepted and not landed yet."""
        return sum(not task.done() for task in self._late)

    def clear_faults(self) -> None:
        self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        fault.method = fault.method.upper()
        self._faults.append(fault)

    def _take(
        self, kind: str, method: str, path: str, when: When, form: dict[str, str] | None = None
    ) -> _Fault | None:
        for fault in self._faults:
            if (
                fault.kind == kind
                and fault.when == when
                and fault.method in ("*", method)
                and fault.pattern.search(path)
                and all(p.search((form or {}).get(n, "")) for n, p in fault.form.items())
            ):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ observability

    def count(
        self, method: str | None = None, path_regex: str | None = None, since: float | None = None
    ) -> int:
        """Number of recorded calls matching ``method``, ``path_regex`` (searched) and
        arrival ``since`` (a ``time.monotonic()`` value)."""
        pattern = re.compile(path_regex) if path_regex else None
        return sum(
            1
            for call in self.calls
            if (method is None or call.method == method.upper())
            and (pattern is None or pattern.search(call.path))
            and (since is None or call.time >= since)
        )

    @property
    def unexpected_calls(self) -> list[Call]:
        """Calls to endpoints this fake does not implement (answered 404)."""
        return [call for call in self.calls if call.route is None]

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removesuffix(".json").rstrip("/") or "/"
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        found = self._find_route(request.method, path)
        query = dict(request.query)
        call = Call(request.method, request.path, _redact(query), _redact(form), time.monotonic())
        call.route = found[0].name if found else None
        call.peer = str(request.transport.get_extra_info("peername") if request.transport else "")
        self.calls.append(call)

        response = await self._answer(request, found, _Ctx(request, query, form))

        call.status = response.status
        if call.route != "access_token":  # logins live outside the API budget
            response.headers.update(self._ratelimit_headers())
        return response

    def _find_route(self, method: str, path: str) -> tuple[_Route, re.Match[str]] | None:
        for route in self._routes:
            if route.method == method and (match := route.pattern.fullmatch(path)):
                return route, match
        return None

    async def _answer(
        self,
        request: web.Request,
        found: tuple[_Route, re.Match[str]] | None,
        ctx: _Ctx,
    ) -> web.Response:
        method, path = request.method, request.path  # faults match the path as sent
        if self.down:
            return _http_error(503)
        if delay := self._take("delay", method, path, "before"):
            await self._sleep(delay.seconds)
            transport = request.transport
            if transport is None or transport.is_closing() or self._stopping.is_set():
                return _http_error(503)  # nobody is listening: drop it, state untouched
        if fault := self._take("fail", method, path, "before"):
            return _http_error(fault.status, fault.headers, fault.body)
        if fault := self._take("ratelimit", method, path, "before"):
            return _api_error("RATELIMIT", fault.message, "ratelimit").response
        if fault := self._take("late", method, path, "before", ctx.form):
            landing = self._land_late(found, ctx, fault, self._now())
            task = asyncio.get_running_loop().create_task(landing)
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            await self._hold(request, fault.hold)
            return _http_error(fault.status)

        response = self._handle(found, ctx)

        if fault := self._take("fail", method, path, "after"):
            response = _http_error(fault.status, fault.headers, fault.body)
        if delay := self._take("delay", method, path, "after"):
            await self._sleep(delay.seconds)
        return response

    def _handle(self, found: tuple[_Route, re.Match[str]] | None, ctx: _Ctx) -> web.Response:
        if found is None:
            return _http_error(404)
        route, ctx.match = found
        try:
            if route.name != "access_token":
                self._check_access(route.name, ctx)
            sr = ctx.match.groupdict().get("sr")
            known = {self.subreddit.lower()} | {s.lower() for s in self.other_subreddits}
            if sr is not None and not (self.subreddit_exists and sr.lower() in known):
                search = f"{self.url}/subreddits/search.json?q={sr}"
                return web.Response(status=302, headers={"location": search})
            if sr is not None:
                self._check_visible(sr)
            return route.handler(ctx)
        except _HandlerError as error:
            return error.response

    def _check_access(self, route: str, ctx: _Ctx) -> None:
        """Token, suspension and scope checks of an API call, in Reddit's order."""
        scheme, _, token = ctx.request.headers.get("Authorization", "").partition(" ")
        grant = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None:
            raise _HandlerError(_http_error(401, {"www-authenticate": INVALID_TOKEN}))
        ctx.user, ctx.scopes = grant.username, grant.scopes
        if self.app_suspended or grant.username in self.suspended_accounts:
            raise _HandlerError(_http_error(403))
        scope = ROUTE_SCOPES.get(route)
        if route == "comment" and ctx.form.get("thing_id", "").startswith("t4_"):
            scope = "privatemessages"
        if scope is not None and "*" not in grant.scopes and scope not in grant.scopes:
            raise _HandlerError(_http_error(403, {"www-authenticate": INSUFFICIENT_SCOPE}))

    def _check_visible(self, subreddit: str) -> None:
        """Raise Reddit's answer for a banned subreddit, or a private one the bot does
        not moderate."""
        state = self.subreddit_states.get(subreddit.lower())
        if state == "banned":
            body = {"reason": "banned", "message": "Not Found", "error": 404}
            raise _HandlerError(_http_error(404, body=body))
        main = subreddit.lower() == self.subreddit.lower()
        mods = self.moderators if main else self.other_subreddits.get(self._canonical(subreddit))
        if state == "private" and self.username not in (mods or {}):
            body = {"reason": "private", "message": "Forbidden", "error": 403}
            raise _HandlerError(_http_error(403, body=body))

    def _ratelimit_headers(self) -> dict[str, str]:
        """Reddit's budget headers. By default they never make asyncprawcore sleep: its
        delay is min(reset, reset - (600 - 600 * used / (remaining + used)), 10), which
        stays <= 0 while used < 900 of 1000 with a 60 s window."""
        if self.ratelimit_headers is None:
            return {}
        if self.ratelimit_headers == "auto":
            now = time.monotonic()
            start, used = self._window
            if now - start >= RATELIMIT_WINDOW:
                start, used = now, 0
            used += 1
            self._window = (start, used)
            remaining, reset = max(0, 1000 - used), max(1, round(RATELIMIT_WINDOW - (now - start)))
        else:
            remaining, used, reset = self.ratelimit_headers
        return {
            "x-ratelimit-remaining": f"{remaining:.1f}",
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(reset),
        }

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _hold(self, request: web.Request, seconds: float | None) -> None:
        """Keep a request waiting until its client hangs up, or ``seconds`` pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (seconds if seconds is not None else 300.0)
        while loop.time() < deadline and not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(0.02)

    async def _land_late(
        self,
        found: tuple[_Route, re.Match[str]] | None,
        ctx: _Ctx,
        fault: _Fault,
        arrived: float,
    ) -> None:
        """Perform a held write ``fault.seconds`` after its request arrived."""
        await self._sleep(fault.seconds)
        if self._stopping.is_set():
            return
        before, messages_before = set(self.comments), set(self.messages)
        self._handle(found, ctx)
        for comment_id in [c for c in self.comments if c not in before]:
            if fault.stamp == "request":
                self.comments[comment_id].created_utc = arrived
            self.late_landed.append(comment_id)
        for message_id in [m for m in self.messages if m not in messages_before]:
            if fault.stamp == "request":
                self.messages[message_id].created_utc = arrived
            self.late_landed.append(message_id)

    # ------------------------------------------------------------------ rendering

    def _submission_data(self, post: Submission) -> JSON:
        sr, removed = self._subreddit_of(post), post.removed_by_category
        author = None if removed == "deleted" else post.author
        permalink = f"/r/{sr}/comments/{post.id}/{_slug(post.title)}/"
        selftext = post.selftext
        if removed == "deleted" or (removed and not self.bot_is_moderator):
            selftext = f"[{'deleted' if removed == 'deleted' else 'removed'}]"
        return {
            "id": post.id, "name": post.fullname, "title": post.title, "selftext": selftext,
            "author": "[deleted]" if removed == "deleted" else post.author,
            "author_fullname": self._account_fullname(author),
            "created_utc": post.created_utc, "created": post.created_utc,
            "stickied": post.sticky is not None, "locked": post.locked, "archived": post.archived,
            "removed_by_category": removed, "subreddit": sr, "subreddit_name_prefixed": f"r/{sr}",
            "subreddit_id": self.subreddit_fullname, "permalink": permalink,
            "url": self.url + permalink, "num_comments": sum(not c.deleted for c in post.comments),
            "score": 1, "ups": 1, "upvote_ratio": 1.0, "is_self": True, "over_18": False,
            "spoiler": False, "distinguished": None, "edited": False, "link_flair_text": None,
        }  # fmt: skip

    def _comment_data(self, comment: Comment, *, replies: JSON | str = "", depth: int = 0) -> JSON:
        post = self.submissions[comment.submission_id]
        sr, mod = self._subreddit_of(post), self.bot_is_moderator
        author, body = comment.author, comment.body
        if comment.deleted:
            author = body = "[deleted]"
        elif comment.removed and not mod:
            author, body = "[deleted]", "[removed]"
        data: JSON = {
            "id": comment.id, "name": comment.fullname, "author": author, "body": body,
            "author_fullname": self._account_fullname(author),
            "link_id": comment.link_id, "parent_id": comment.parent_id,
            "created_utc": comment.created_utc, "created": comment.created_utc,
            "edited": comment.edited, "distinguished": comment.distinguished,
            "stickied": comment.stickied, "subreddit": sr, "subreddit_id": self.subreddit_fullname,
            "subreddit_name_prefixed": f"r/{sr}",
            "permalink": f"/r/{sr}/comments/{post.id}/{_slug(post.title)}/{comment.id}/",
            "score": 1, "ups": 1, "downs": 0, "likes": None, "replies": replies, "depth": depth,
            "is_submitter": comment.author == post.author, "locked": False,
            "archived": post.archived, "collapsed": False, "send_replies": True, "saved": False,
        }  # fmt: skip
        if mod:  # moderators see why a comment is gone
            banned_by: str | bool | None = comment.removed_by
            if comment.filtered == "reddit":
                banned_by = True  # the spam filter has no name
            data |= {"removed": comment.removed, "banned_by": banned_by}
            data |= {"removed_by_category": comment.filtered, "spam": comment.filtered == "reddit"}
        return data

    def _user_comment_data(self, comment: Comment) -> JSON:
        post = self.submissions[comment.submission_id]
        data = self._comment_data(comment)
        link_permalink = self.url + data["permalink"].rsplit("/", 2)[0] + "/"
        return data | {"link_title": post.title, "link_author": post.author,
                       "link_permalink": link_permalink}  # fmt: skip

    def _message_data(self, message: Message) -> JSON:
        return {
            "id": message.id, "name": message.fullname, "author": message.author,
            "dest": message.dest, "subject": message.subject, "body": message.body,
            "created_utc": message.created_utc, "created": message.created_utc,
            "new": message.new, "was_comment": False, "replies": "", "subreddit": None,
            "parent_id": message.parent_id, "first_message_name": message.parent_id,
            "first_message": None, "context": "", "distinguished": None,
        }  # fmt: skip

    def _account_fullname(self, name: str | None) -> str | None:
        """A listed author's account id, as listings give it (none for a deleted one)."""
        account = self.accounts.get(name or "")
        if account is None or not self.account_fullnames:
            return None
        return f"t2_{account.id}"

    def _user_data(self, account: Account) -> JSON:
        name = account.name
        return {
            "name": name, "id": account.id, "created_utc": account.created_utc,
            "created": account.created_utc, "link_karma": 0, "comment_karma": 0,
            "total_karma": 0, "awardee_karma": 0, "awarder_karma": 0, "is_gold": False,
            "is_mod": self._is_mod_anywhere(name), "is_employee": False, "verified": True,
            "has_verified_email": True, "hide_from_robots": False, "is_friend": False,
            "is_blocked": False, "accept_followers": True, "pref_show_snoovatar": False,
            "icon_img": "", "snoovatar_img": "",
            "subreddit": {
                "display_name": f"u_{name}", "display_name_prefixed": f"u/{name}",
                "name": f"t5_{account.id}", "subreddit_type": "user", "title": "",
                "public_description": "", "over_18": False, "url": f"/user/{name}/",
            },
        }  # fmt: skip

    def _mention_data(self, mention: Mention) -> JSON:
        comment = mention.comment
        post = self.submissions[comment.submission_id]
        data = self._comment_data(comment)
        return data | {
            "subject": "username mention", "type": "username_mention", "was_comment": True,
            "new": mention.new, "context": f"{data['permalink']}?context=3",
            "link_title": post.title, "dest": self.username,
        }  # fmt: skip

    def _comment_tree(
        self, parent: str, by_parent: dict[str, list[Comment]], sort: str, depth: int = 0
    ) -> list[JSON]:
        children = sorted(
            by_parent.get(parent, []), key=lambda c: c.created_utc, reverse=sort == "new"
        )
        children.sort(key=lambda c: not c.stickied)  # stable: the pinned comment first
        out = []
        for comment in children:
            replies = self._comment_tree(comment.fullname, by_parent, sort, depth + 1)
            if comment.deleted and not replies:
                continue  # like Reddit: a deleted leaf vanishes from the thread
            listing = _listing(replies) if replies else ""
            out.append(_thing("t1", self._comment_data(comment, replies=listing, depth=depth)))
        return out

    def _is_lagging(self, comment: Comment) -> bool:
        return self.listing_lag > 0 and self.clock() - comment.created_utc < self.listing_lag

    # ------------------------------------------------------------------ handlers: auth, subreddit

    def _h_access_token(self, ctx: _Ctx) -> web.Response:
        client = encode_basic_auth(self.client_id, self.client_secret)
        if ctx.request.headers.get("Authorization") != client:
            return _http_error(401)
        grant, refresh_token = self._grant(ctx.form)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = replace(grant, refresh_token=refresh_token)
        self.issued_tokens.append(token)
        payload = {"access_token": token, "token_type": "bearer",
                   "expires_in": self.token_lifetime, "scope": " ".join(grant.scopes)}  # fmt: skip
        if refresh_token is not None:  # a refresh answers the same refresh token again
            payload["refresh_token"] = refresh_token
        return _json(payload)

    def _grant(self, form: dict[str, str]) -> tuple[Grant, str | None]:
        """What the token request is granted, and its refresh token if any; errors are
        200s with an ``error`` key, as Reddit sends them."""
        match form.get("grant_type"):
            case "password":
                if (form.get("username"), form.get("password")) != (self.username, self.password):
                    raise _HandlerError(_json({"error": "invalid_grant"}))
                try:
                    return Grant(self.username, _scopes(form.get("scope", "*"))), None
                except ValueError:
                    raise _HandlerError(_json({"error": "invalid_scope"})) from None
            case "refresh_token":
                refresh_token = form.get("refresh_token", "")
                if (grant := self.refresh_tokens.get(refresh_token)) is None:
                    raise _HandlerError(_json({"error": "invalid_grant"}))
                return grant, refresh_token
            case "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if code is None or code.redirect_uri != form.get("redirect_uri"):
                    raise _HandlerError(_json({"error": "invalid_grant"}))
                del self._codes[form["code"]]  # single use
                if code.duration == "temporary":
                    return code.grant, None
                refresh_token = secrets.token_urlsafe(30)
                self.refresh_tokens[refresh_token] = code.grant
                self.issued_refresh_tokens.append(refresh_token)
                return code.grant, refresh_token
            case "client_credentials":  # an app-only token: no user, sees what anyone sees
                return Grant("", _scopes("*")), None
            case _:
                raise _HandlerError(_json({"error": "unsupported_grant_type"}))

    def _h_me(self, ctx: _Ctx) -> web.Response:
        account = self.accounts[ctx.user]
        return _json({
            "name": account.name, "id": account.id, "created_utc": account.created_utc,
            "comment_karma": 0, "link_karma": 0, "is_mod": self._is_mod_anywhere(account.name),
        })  # fmt: skip

    def _is_mod_anywhere(self, name: str) -> bool:
        return any(name in mods for mods in [self.moderators, *self.other_subreddits.values()])

    def _h_subreddit_about(self, ctx: _Ctx) -> web.Response:
        sr = self._canonical(ctx.arg("sr"))
        private = self.subreddit_states.get(sr.lower()) == "private"
        return _json(_thing("t5", {
            "display_name": sr, "display_name_prefixed": f"r/{sr}", "title": sr,
            "name": self.subreddit_fullname, "id": self.subreddit_fullname.removeprefix("t5_"),
            "subscribers": 1000, "user_is_moderator": self.bot_is_moderator, "url": f"/r/{sr}/",
            "subreddit_type": "private" if private else "public", "over18": False,
            "quarantine": False,
            "created_utc": 1_600_000_000.0, "public_description": "",
        }))  # fmt: skip

    def _h_sticky(self, ctx: _Ctx) -> web.Response:
        slot = int(ctx.query.get("num", "1"))
        for post in self._posts_in(ctx.arg("sr")):
            if post.sticky == slot:
                location = f"{self.url}/r/{ctx.arg('sr')}/comments/{post.id}/{_slug(post.title)}/"
                return web.Response(status=302, headers={"location": location})
        return _http_error(404)

    def _h_moderators(self, ctx: _Ctx) -> web.Response:
        children = [
            {"name": name, "id": f"t2_{self.add_account(name).id}", "mod_permissions": perms,
             "date": 1_600_000_000.0}
            for name, perms in self._moderators_of(ctx.arg("sr")).items()
        ]  # fmt: skip
        return _json({"kind": "UserList", "data": {"children": children}})

    def _posts_in(self, subreddit: str) -> list[Submission]:
        return [
            p
            for p in self.submissions.values()
            if self._subreddit_of(p).lower() == subreddit.lower()
        ]

    def _h_hot(self, ctx: _Ctx) -> web.Response:
        live = [p for p in self._posts_in(ctx.arg("sr")) if p.removed_by_category is None]
        pinned = sorted((p for p in live if p.sticky is not None), key=lambda p: p.sticky or 0)
        others = sorted(
            (p for p in live if p.sticky is None), key=lambda p: p.created_utc, reverse=True
        )
        children = [_thing("t3", self._submission_data(p)) for p in pinned + others]
        return _json(_listing(children, limit=_limit(ctx.query), after=ctx.query.get("after")))

    def _h_new(self, ctx: _Ctx) -> web.Response:
        """The subreddit's posts, newest first (with ``before``/``after`` cursors);
        removed posts only to moderators."""
        posts = [
            p
            for p in self._posts_in(ctx.arg("sr"))
            if self._listed(p.fullname, p.created_utc)
            and p.removed_by_category != "deleted"
            and (p.removed_by_category is None or self.bot_is_moderator)
        ]
        posts.sort(key=lambda p: (p.created_utc, p.id), reverse=True)
        page, cursors = _cursor_page([p.fullname for p in posts], ctx.query)
        children = [_thing("t3", self._submission_data(posts[n])) for n in page]
        return _json(_page_listing(children, cursors))

    def _h_subreddit_comments(self, ctx: _Ctx) -> web.Response:
        """Every thread's comments in the subreddit, newest first (``before``/``after``);
        removed comments only to moderators, deleted ones never."""
        posts = {p.id for p in self._posts_in(ctx.arg("sr"))}
        comments = [
            c
            for c in self.comments.values()
            if c.submission_id in posts
            and not c.deleted
            and (not c.removed or self.bot_is_moderator)
            and self._listed(c.fullname, c.created_utc)
        ]
        comments.sort(key=lambda c: (c.created_utc, c.id), reverse=True)
        page, cursors = _cursor_page([c.fullname for c in comments], ctx.query)
        children = [_thing("t1", self._user_comment_data(comments[n])) for n in page]
        return _json(_page_listing(children, cursors))

    def _listed(self, fullname: str, created_utc: float) -> bool:
        """True when a listing shows the item by now (``listing_lag``, ``listed_from``)."""
        now = self.clock()
        if self.listing_lag > 0 and now - created_utc < self.listing_lag:
            return False
        return self.listed_from.get(fullname, 0.0) <= now

    # ------------------------------------------------------------------ handlers: comments

    def _h_comments(self, ctx: _Ctx) -> web.Response:
        post = self.submissions.get(ctx.arg("id"))
        if post is None:
            return _http_error(404)
        self._check_visible(self._subreddit_of(post))
        by_parent: dict[str, list[Comment]] = {}
        for comment in post.comments:
            if not self._is_lagging(comment):
                by_parent.setdefault(comment.parent_id, []).append(comment)
        tree = self._comment_tree(post.fullname, by_parent, ctx.query.get("sort", "confidence"))
        limit = int(ctx.query["limit"]) if ctx.query.get("limit", "").isdigit() else None
        return _json(
            [_listing([_thing("t3", self._submission_data(post))]), _listing(tree[:limit])]
        )

    def _h_comment(self, ctx: _Ctx) -> web.Response:
        text, thing_id = ctx.form.get("text", ""), ctx.form.get("thing_id", "")
        self._check_text(text)
        if thing_id.startswith("t4_"):
            return self._reply_to_message(thing_id, text)
        parent = self.comments.get(thing_id[3:]) if thing_id.startswith("t1_") else None
        post = self._writable_post(parent.submission_id if parent else thing_id.removeprefix("t3_"))
        if parent is not None and parent.deleted:
            raise _api_error("DELETED_COMMENT")
        comment = self.add_comment(post.id, text, author=self.username, parent_id=thing_id)
        if self.on_comment_created is not None:
            self.on_comment_created(comment)
        return _things([_thing("t1", self._comment_data(comment))])

    def _reply_to_message(self, thing_id: str, text: str) -> web.Response:
        parent = self.messages.get(thing_id.removeprefix("t4_"))
        if parent is None:
            return _http_error(403)
        subject = f"re: {parent.subject}"
        reply = Message(self._new_id(), self.username, parent.author, subject, text, self._now())
        reply.new, reply.parent_id = False, parent.fullname
        self.messages[reply.id] = reply
        if self.on_message_sent is not None:
            self.on_message_sent(reply)
        return _things([_thing("t4", self._message_data(reply))])

    def _h_edit(self, ctx: _Ctx) -> web.Response:
        comment = self._own_comment(ctx.form.get("thing_id", ""))
        text = ctx.form.get("text", "")
        self._check_text(text)
        if comment.deleted:
            raise _api_error("DELETED_COMMENT")
        self._writable_post(comment.submission_id, deleted_ok=True)
        comment.body, comment.edited = text, self._now()
        comment.history.append(text)  # a removed comment stays removed, but is editable
        if self.on_comment_edited is not None:
            self.on_comment_edited(comment)
        return _things([_thing("t1", self._comment_data(comment))])

    def _h_delete(self, ctx: _Ctx) -> web.Response:
        comment = self._own_comment(ctx.form.get("id", ""))
        comment.deleted, comment.stickied = True, False
        return _json({})

    def _h_distinguish(self, ctx: _Ctx) -> web.Response:
        comment = self.comments.get(ctx.form.get("id", "").removeprefix("t1_"))
        if comment is None:
            return _http_error(404)
        if not self.bot_is_moderator:
            return _http_error(403)
        how, sticky = ctx.form.get("how", "yes"), ctx.form.get("sticky") == "true"
        comment.distinguished = None if how == "no" else "moderator" if how == "yes" else how
        if sticky and comment.is_root and how != "no":
            for other in self.submissions[comment.submission_id].comments:
                other.stickied = False
            comment.stickied = True
        elif how == "no":
            comment.stickied = False
        return _things([_thing("t1", self._comment_data(comment))])

    def _h_remove(self, ctx: _Ctx) -> web.Response:
        """A moderator (the bot) removes a post or comment."""
        fullname = ctx.form.get("id", "")
        kind, _, thing_id = fullname.partition("_")
        if not self.bot_is_moderator:
            return _http_error(403)
        if kind == "t3" and thing_id in self.submissions:
            post = self.submissions[thing_id]
            self.removals[thing_id] += 1
            if post.removed_by_category is None:
                post.removed_by_category = "moderator"
            if self.on_post_removed is not None:
                self.on_post_removed(post)
        elif kind == "t1" and thing_id in self.comments:
            self.remove_comment(thing_id, by=self.username)
        else:
            return _http_error(404)
        return _json({})

    def _h_removal_reason(self, ctx: _Ctx) -> web.Response:
        """A removed item's removal reason (asyncpraw sends it as form field ``json``)."""
        try:
            data = json.loads(ctx.form.get("json", "{}"))
        except ValueError:
            return _http_error(400)
        for fullname in data.get("item_ids", [])[:1]:
            self.removal_notes[str(fullname).removeprefix("t3_")] = str(data.get("mod_note", ""))
        return _json({})

    def _h_contributors(self, ctx: _Ctx) -> web.Response:
        """The subreddit's approved users: moderators only."""
        sr = ctx.arg("sr")
        if not self.bot_is_moderator:
            return _http_error(403)
        children = [
            {"name": name, "id": f"t2_{self.add_account(name).id}", "date": 1_600_000_000.0}
            for name in self.approved.get(sr.lower(), [])
        ]
        return _json(_listing(children, limit=_limit(ctx.query, cap=1000)))

    def _h_info(self, ctx: _Ctx) -> web.Response:
        children = []
        for fullname in filter(None, ctx.query.get("id", "").split(",")[:100]):
            kind, _, thing_id = fullname.partition("_")
            if kind == "t1" and thing_id in self.comments:
                children.append(_thing("t1", self._comment_data(self.comments[thing_id])))
            elif kind == "t3" and thing_id in self.submissions:
                children.append(_thing("t3", self._submission_data(self.submissions[thing_id])))
        return _json(_listing(children))

    def _visible_account(self, ctx: _Ctx) -> Account:
        """The account of ``/user/{name}/...``; 404 if unknown or shadow-banned (but a
        shadow-banned user sees its own profile)."""
        account = self._account(ctx.arg("name"))
        if account is None or (
            account.name in self.shadowbanned_accounts and account.name != ctx.user
        ):
            raise _HandlerError(_http_error(404))
        return account

    def _h_user_about(self, ctx: _Ctx) -> web.Response:
        account = self._visible_account(ctx)
        if account.name in self.suspended_accounts:  # all Reddit still says about it
            return _json(_thing("t2", {
                "name": account.name, "is_suspended": True, "awardee_karma": 0,
                "awarder_karma": 0, "is_blocked": False, "total_karma": 0,
            }))  # fmt: skip
        return _json(_thing("t2", self._user_data(account)))

    def _h_user_data(self, ctx: _Ctx) -> web.Response:
        """``/api/user_data_by_account_ids``: a summary of each account named (at most a
        hundred); ids of no account, and suspended or shadow-banned ones, are left out;
        404 when none is left."""
        ids = [i for i in ctx.query.get("ids", "").split(",") if i]
        if len(ids) > 100:
            raise _HandlerError(_http_error(400))
        by_id = {f"t2_{a.id}": a for a in self.accounts.values()}
        hidden = self.suspended_accounts | self.shadowbanned_accounts
        found = {
            i: {
                "name": a.name, "created_utc": a.created_utc, "link_karma": 0,
                "comment_karma": 0, "profile_img": "", "profile_color": "",
                "profile_over_18": False,
            }
            for i in ids
            if (a := by_id.get(i)) is not None and a.name not in hidden
        }  # fmt: skip
        if not found:
            raise _HandlerError(_http_error(404))
        return _json(found)

    def _h_user_comments(self, ctx: _Ctx) -> web.Response:
        name = self._visible_account(ctx).name
        mine = [c for c in self.comments_by(name) if not self._is_lagging(c)]
        mine.sort(key=lambda c: c.created_utc, reverse=True)
        children = [_thing("t1", self._user_comment_data(c)) for c in mine]
        return _json(_listing(children, limit=_limit(ctx.query), after=ctx.query.get("after")))

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise _api_error("NO_TEXT")
        if len(text) > MAX_COMMENT_LENGTH:
            raise _api_error("TOO_LONG")

    def _writable_post(self, sub_id: str, *, deleted_ok: bool = False) -> Submission:
        """The thread ``sub_id`` if the bot may write in it, else raise Reddit's error."""
        post = self.submissions.get(sub_id)
        if post is None:
            raise _HandlerError(_http_error(404))
        self._check_visible(self._subreddit_of(post))
        if post.removed_by_category and not deleted_ok:
            raise _api_error("DELETED_LINK")
        if post.archived:
            raise _api_error("TOO_OLD")
        if post.locked and not self.bot_is_moderator:
            raise _api_error("THREAD_LOCKED")
        return post

    def _own_comment(self, fullname: str) -> Comment:
        comment = self.comments.get(fullname.removeprefix("t1_"))
        if comment is None:
            raise _HandlerError(_http_error(404))
        if comment.author != self.username:
            raise _HandlerError(_http_error(403))
        return comment

    # ------------------------------------------------------------------ handlers: inbox

    def _inbox(self) -> list[Message | Mention]:
        """Everything in the bot's inbox, oldest first (its own replies are not in it)."""
        received = [m for m in self.messages.values() if m.dest == self.username]
        return sorted([*received, *self.mentions.values()], key=lambda item: item.created_utc)

    def _h_inbox(self, ctx: _Ctx) -> web.Response:
        items = [i for i in reversed(self._inbox()) if i.new or ctx.arg("box") == "inbox"]
        children = [
            _thing("t4", self._message_data(i))
            if isinstance(i, Message)
            else _thing("t1", self._mention_data(i))
            for i in items
        ]
        return _json(_listing(children, limit=_limit(ctx.query), after=ctx.query.get("after")))

    def _h_sent(self, ctx: _Ctx) -> web.Response:
        """Messages the token's user sent (composed or replies), newest first."""
        sent = [m for m in self.messages.values() if m.author == ctx.user]
        sent.sort(key=lambda m: m.created_utc, reverse=True)
        children = [_thing("t4", self._message_data(m) | {"new": False}) for m in sent]
        return _json(_listing(children, limit=_limit(ctx.query), after=ctx.query.get("after")))

    # ------------------------------------------------------------------ new modmail

    def _modmail_author(self, name: str, subreddit: str) -> JSON:
        account = self._account(name)
        return {
            "name": name, "id": int(account.id, 36) if account else 0, "isAdmin": False,
            "isDeleted": False, "isHidden": False, "isOp": False, "isParticipant": False,
            "isMod": name in self._moderators_of(subreddit),
        }  # fmt: skip

    def _modmail_message(self, message: ModmailMessage, subreddit: str) -> JSON:
        return {
            "id": message.id, "body": _md_to_html(message.body), "bodyMarkdown": message.body,
            "author": self._modmail_author(message.author, subreddit),
            "date": _iso(message.created_utc), "isInternal": message.internal,
            "participatingAs": "moderator",
        }  # fmt: skip

    def _conversation_data(self, conv: Conversation) -> JSON:
        sr = conv.subreddit
        authors = list(dict.fromkeys(m.author for m in conv.messages))
        participant = conv.participant or conv.author
        return {
            "id": conv.id, "subject": conv.subject, "isInternal": conv.participant is None,
            "isAuto": False, "isHighlighted": False, "isRepliable": True,
            "legacyFirstMessageId": None,
            "state": 2 if conv.archived else 1, "numMessages": len(conv.messages),
            "lastUpdated": _iso(conv.updated), "lastModUpdate": _iso(conv.updated),
            "lastUserUpdate": None,
            "lastUnread": _iso(conv.updated) if conv.unread else None,
            "owner": {"displayName": sr, "type": "subreddit", "id": self.subreddit_fullname},
            "participant": self._modmail_author(participant, sr),
            "authors": [self._modmail_author(a, sr) for a in authors],
            "objIds": [{"id": m.id, "key": "messages"} for m in conv.messages],
        }  # fmt: skip

    def _conversation_answer(self, conv: Conversation) -> web.Response:
        messages = {m.id: self._modmail_message(m, conv.subreddit) for m in conv.messages}
        return _json({
            "conversation": self._conversation_data(conv), "messages": messages, "modActions": {},
        })  # fmt: skip

    def _modmail_moderator(self, user: str, subreddit: str) -> None:
        """New modmail is for moderators with the ``mail`` permission: others get 403."""
        if subreddit.lower() not in {s.lower() for s in (self.subreddit, *self.other_subreddits)}:
            raise _HandlerError(_http_error(404))
        perms = self._moderators_of(self._canonical(subreddit)).get(user)
        if perms is None or not ({"all", "mail"} & set(perms)):
            raise _HandlerError(_http_error(403))

    def _conversation(self, ctx: _Ctx) -> Conversation:
        conv = self.conversations.get(ctx.arg("id"))
        if conv is None:
            raise _HandlerError(_http_error(404))
        self._modmail_moderator(ctx.user, conv.subreddit)
        return conv

    def _h_modmail_list(self, ctx: _Ctx) -> web.Response:
        """Conversations of the ``entity`` subreddits, newest first. ``state=mod``: the
        moderators' own discussions; ``all``: the others, archived excepted (as Reddit)."""
        wanted = {s.lower() for s in ctx.query.get("entity", self.subreddit).split(",") if s}
        for sr in wanted:
            self._modmail_moderator(ctx.user, sr)
        state = ctx.query.get("state", "all")
        convs = [c for c in self.conversations.values() if c.subreddit.lower() in wanted]
        if state == "mod":
            convs = [c for c in convs if c.participant is None and not c.archived]
        elif state == "archived":
            convs = [c for c in convs if c.archived]
        else:
            convs = [c for c in convs if c.participant is not None and not c.archived]
        convs.sort(key=lambda c: c.updated, reverse=True)
        after = ctx.query.get("after")
        if after:
            ids = [c.id for c in convs]
            convs = convs[ids.index(after) + 1 :] if after in ids else []
        convs = convs[: _limit(ctx.query)]
        messages = {m.id: self._modmail_message(m, c.subreddit) for c in convs for m in c.messages}
        return _json({
            "conversations": {c.id: self._conversation_data(c) for c in convs},
            "conversationIds": [c.id for c in convs], "messages": messages,
            "viewerId": f"t2_{ctx.user}",
        })  # fmt: skip

    def _h_modmail_create(self, ctx: _Ctx) -> web.Response:
        sr, subject = ctx.form.get("srName", ""), ctx.form.get("subject", "")
        body, to = ctx.form.get("body", ""), ctx.form.get("to", "").strip() or None
        self._modmail_moderator(ctx.user, sr)
        if not subject or not body or len(subject) > MAX_SUBJECT_LENGTH:
            code = "NO_SUBJECT" if not subject or len(subject) > MAX_SUBJECT_LENGTH else "NO_TEXT"
            return _api_error(code).response
        if len(body) > MAX_COMMENT_LENGTH:
            return _api_error("TOO_LONG").response
        now = self._now()
        conv = Conversation(self._new_id(), self._canonical(sr), subject, ctx.user, to)
        conv.messages.append(ModmailMessage(self._new_id(), ctx.user, body, now))
        self.conversations[conv.id] = conv
        return self._conversation_answer(conv)

    def _h_modmail_get(self, ctx: _Ctx) -> web.Response:
        return self._conversation_answer(self._conversation(ctx))

    def _h_modmail_reply(self, ctx: _Ctx) -> web.Response:
        conv = self._conversation(ctx)
        body = ctx.form.get("body", "")
        if not body:
            return _api_error("NO_TEXT").response
        if len(body) > MAX_COMMENT_LENGTH:
            return _api_error("TOO_LONG").response
        internal = ctx.form.get("isInternal", "False").lower() == "true"
        conv.messages.append(ModmailMessage(self._new_id(), ctx.user, body, self._now(), internal))
        conv.archived = False  # a new message brings an archived conversation back
        return self._conversation_answer(conv)

    def _h_compose(self, ctx: _Ctx) -> web.Response:
        to, subject = ctx.form.get("to", "").strip(), ctx.form.get("subject", "")
        text = ctx.form.get("text", "")
        errors: list[list[str]] = []

        def error(code: str, message: str | None = None, field_name: str | None = None) -> None:
            default_message, default_field = API_ERRORS[code]
            errors.append([code, message or default_message, field_name or default_field])

        dest = ""
        if to.startswith("#") or to.startswith("/r/"):  # asyncpraw sends "#sub"
            sr = to.removeprefix("#").removeprefix("/r/")
            names = [self.subreddit, *self.other_subreddits]
            if self.subreddit_exists and sr.lower() in {n.lower() for n in names}:
                dest = f"#{self._canonical(sr)}"
            else:
                error("SUBREDDIT_NOEXIST")
        elif (account := self._account(to)) is not None:
            dest = account.name
        else:
            error("USER_DOESNT_EXIST")
        if not subject.strip():
            error("NO_SUBJECT")
        elif len(subject) > MAX_SUBJECT_LENGTH:
            error("TOO_LONG", f"this is too long (max: {MAX_SUBJECT_LENGTH})", "subject")
        if not text.strip():
            error("NO_TEXT")
        elif len(text) > MAX_COMMENT_LENGTH:
            error("TOO_LONG")
        if errors:
            return _json({"json": {"errors": errors}})
        message = Message(self._new_id(), ctx.user, dest, subject, text, self._now())
        message.from_subreddit = ctx.form.get("from_sr") or None
        self.messages[message.id] = message
        self.sent_messages.append(message)
        if self.on_message_sent is not None:
            self.on_message_sent(message)
        return _json({"json": {"errors": []}})

    def _h_read_message(self, ctx: _Ctx) -> web.Response:
        wanted = set(ctx.form.get("id", "").split(","))
        unread = ctx.arg("action") == "unread"
        for item in self._inbox():
            if item.fullname in wanted and item.new != unread:
                item.new = unread
                if not unread and self.on_message_read is not None:
                    self.on_message_read(item)
        return _json({})

    # ------------------------------------------------------------------ handlers: new modmail
    def _modmail_routes(self) -> list[tuple[str, str, Any]]:
        mod = r"/api/mod/conversations"
        return [  # "read" would pass for a conversation id: it comes first
            ("GET", mod + r"/unread/count", self._h_modmail_unread_count),
            ("POST", mod + r"/read", self._h_modmail_read),
            ("GET", mod, self._h_modmail_list),
            ("POST", mod, self._h_modmail_create),
            ("GET", mod + r"/(?P<id>[a-z0-9]+)", self._h_modmail_get),
            ("POST", mod + r"/(?P<id>[a-z0-9]+)", self._h_modmail_reply),
        ]

    def _mail_moderator_of(self, user: str, conversation: Conversation) -> bool:
        perms = self._moderators_of(conversation.subreddit).get(user)
        return perms is not None and bool({"all", "mail"} & set(perms))

    def _h_modmail_unread_count(self, ctx: _Ctx) -> web.Response:
        counts = dict.fromkeys(
            ("new", "inprogress", "mod", "notifications", "archived", "highlighted",
             "appeals", "join_requests", "filtered"), 0
        )  # fmt: skip
        for conversation in self.conversations.values():
            if conversation.unread and self._mail_moderator_of(ctx.user, conversation):
                counts["mod" if conversation.internal else "new"] += 1
        return _json(counts)

    def _h_modmail_read(self, ctx: _Ctx) -> web.Response:
        for conversation_id in ctx.form.get("conversationIds", "").split(","):
            found = self.conversations.get(conversation_id)
            if found is not None and self._mail_moderator_of(ctx.user, found):
                found.unread = False
        return _json({})

    # ------------------------------------------------------------------ handlers: wiki

    def _wiki_page_revisions(self, ctx: _Ctx) -> list[WikiRevision]:
        """Revisions of the page in the path, oldest first; 404 if it was never created."""
        revisions = self.wiki.get((ctx.arg("sr").lower(), _wiki_name(ctx.arg("page"))))
        if not revisions:
            body = {"reason": "PAGE_NOT_CREATED", "message": "Not Found", "error": 404}
            raise _HandlerError(_http_error(404, body=body))
        return revisions

    def _h_wiki_page(self, ctx: _Ctx) -> web.Response:
        revisions = self._wiki_page_revisions(ctx)
        wanted = ctx.query.get("v")
        revision = next((r for r in revisions if r.id == wanted), None) if wanted else revisions[-1]
        if revision is None:
            return _http_error(404)
        author = self._account(revision.author) if revision.author else None
        mods = self._moderators_of(revision.subreddit)
        return _json({"kind": "wikipage", "data": {
            "content_md": revision.content, "content_html": _md_to_html(revision.content),
            "revision_date": int(revision.timestamp), "revision_id": revision.id,
            "revision_by": _thing("t2", self._user_data(author)) if author else None,
            "may_revise": self.username in mods, "reason": revision.reason,
        }})  # fmt: skip

    def _h_wiki_revisions(self, ctx: _Ctx) -> web.Response:
        children = []
        for revision in reversed(self._wiki_page_revisions(ctx)):
            author = self._account(revision.author) if revision.author else None
            children.append({
                "id": revision.id, "page": revision.page, "reason": revision.reason,
                "timestamp": int(revision.timestamp), "revision_hidden": False,
                "author": _thing("t2", self._user_data(author)) if author else None,
            })  # fmt: skip
        return _json(_listing(
            children, limit=_limit(ctx.query), after=ctx.query.get("after"),
            key=lambda child: f"WikiRevision_{child['id']}",
        ))  # fmt: skip
