"""The project's one exception tree.

Edge modules translate library errors (httpx, asyncpraw, sqlite3, jinja2) into these
with ``raise ... from exc``, so the rest of the bot branches on meaning, not on which
library failed. Every message is one line a moderator can act on.
"""

from __future__ import annotations


class ModbotError(Exception):
    """Base class: an error modbot reports as one clear line."""


class ConfigError(ModbotError):
    """A setting is missing or invalid; start-up stops."""


class FeedError(ModbotError):
    """The status page could not be read this time; the next poll tries again."""


class FeedUnavailable(FeedError):
    """Connection failed, timed out, or the server answered 5xx after retries."""


class FeedGone(FeedUnavailable):
    """404 or 410: what was read there is not there any more (a page that moved?)."""


class FeedNotJSON(FeedError):
    """The page answered HTML (an error or bot-challenge page) instead of JSON (or of
    the feed asked for)."""


class FeedMalformed(FeedError):
    """The page answered JSON that is not a Statuspage incidents document."""


class FeedUnrecognised(FeedError):
    """The page answers, but as no platform modbot reads (a challenge page, a new
    vendor): ``auto`` cannot tell how to read it."""


class FeedRateLimited(FeedError):
    """The page answered 429; ``retry_after`` says how long to wait, if it said."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemplateError(ModbotError):
    """A template failed to load or render; names the file and line."""


class StoreError(ModbotError):
    """The state (a SQLite file or a PostgreSQL database) cannot be opened, migrated or
    written."""


class StateLost(StoreError):
    """The state file was deleted, emptied or replaced while the bot ran: stop writing."""


class Deposed(StoreError):
    """Another process took the lead (a newer epoch): this one's writes are refused,
    and it stops polling, delivering and reading the inbox at once."""


class RedditError(ModbotError):
    """Reddit could not do what was asked; subclasses say whether it had an effect."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RedditUnavailable(RedditError):
    """5xx, timeout or dropped connection: for a write, the outcome is unknown."""


class RedditRejected(RedditError):
    """Reddit refused and changed nothing (400, 403, 429, RATELIMIT): safe to retry later."""


class RedditRateLimited(RedditRejected):
    """429 or the RATELIMIT API error; ``retry_after`` says how long to wait."""


class RedditForbidden(RedditRejected):
    """403: banned, not allowed, or missing a moderator permission."""


class RedditAuthError(RedditError):
    """Login failed: wrong credentials or the app is not a script app.

    ``reason`` tells the failures apart for ``modbot check``: ``app`` (the app's id or
    secret, a 401 from the token endpoint), ``grant`` (the password or refresh token was
    refused: ``invalid_grant``), or "" when Reddit did not say.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class ThreadUnavailable(RedditError):
    """The thread is locked, archived or deleted and takes no comments or edits."""


class CommentGone(RedditError):
    """The comment was deleted or removed by a moderator."""


class NoMegathread(ModbotError):
    """No usable pinned megathread right now, so a notice cannot be posted."""


class CommandError(ModbotError):
    """A moderator command that cannot be understood or carried out."""
