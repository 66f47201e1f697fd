"""Reading readers' posts and comments from Reddit's listings: cheaply, and each once.

A subreddit is read through two listings, its new posts (``/r/{sr}/new``) and its new
comments (``/r/{sr}/comments``, every thread in one call; only the megathread's are
kept). Each is read with a cursor, ``before=`` an item already seen, so a read with
nothing new costs one call and carries no items. Listings lag: an item may appear
tens of seconds after a newer one. So the cursor is never the newest item seen but the
newest that is at least ``SETTLE`` old; items newer than it come back on every read
until they settle, and ``seen`` keeps them from counting twice. A full page means more
are waiting: the next page continues from its newest item, at most ``MAX_PAGES`` a
read (a flood is read over several intervals, never beyond the call budget). A cursor
that has not moved for ``REANCHOR`` seconds is dropped for one plain read (the item it
names may have been deleted, and Reddit answers nothing after a deleted item).

What a watch counts is decided here too: not the bot's own items, not AutoModerator's
or a moderator's distinguished ones, not removed or deleted ones, nothing older than
the watch's start, and comments only in its megathread. Authors are kept as a keyed
hash, never by name.

Pure: no I/O, no clock (time comes in).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from modbot.core.records import ReaderItem
from modbot.core.reports import Classification
from modbot.core.surge import Report

SETTLE = 60.0  # seconds a listing may still show an item older than its newest
REANCHOR = 900.0  # a cursor older than this is dropped for one plain read
PAGE = 100  # items per listing call (Reddit's maximum)
MAX_PAGES = 3  # listing calls per listing and read, at most
NOT_READERS = frozenset({"automoderator"})  # accounts whose items are never reports
CALLS_PER_READ = 2  # what a read costs on average: one call per listing
MAX_OWED = 8  # calls a flood may leave owed; more are forgiven, so reading catches up


@dataclass(frozen=True)
class Listing:
    """Where one listing is read from next, and what it showed lately."""

    cursor: str | None = None  # the newest item seen that is at least SETTLE old
    cursor_at: float = 0.0  # its time
    seen: Mapping[str, float] = field(default_factory=dict)  # fullname -> created
    watermark: float = 0.0  # older items are old news, whatever the listing says

    def before(self, now: float) -> str | None:
        """The cursor for the next read (None: a plain read of the newest items)."""
        if self.cursor is None or now - self.cursor_at > REANCHOR:
            return None
        return self.cursor


def absorb(
    listing: Listing, items: Iterable[ReaderItem], now: float
) -> tuple[Listing, list[ReaderItem]]:
    """The listing after a read that showed ``items``, and those not seen before (oldest
    first)."""
    seen = dict(listing.seen)
    fresh = []
    for item in sorted(items, key=lambda i: (i.created_utc, i.fullname)):
        if item.fullname in seen or item.created_utc < listing.watermark:
            continue
        seen[item.fullname] = item.created_utc
        fresh.append(item)
    settled = [(at, name) for name, at in seen.items() if at <= now - SETTLE]
    cursor, cursor_at = listing.cursor, listing.cursor_at
    if settled:
        newest_at, newest = max(settled)
        if newest_at >= cursor_at:
            cursor, cursor_at = newest, newest_at
    watermark = max(listing.watermark, cursor_at - SETTLE)
    kept = {name: at for name, at in seen.items() if at >= watermark}
    return Listing(cursor, cursor_at, kept, watermark), fresh


@dataclass(frozen=True)
class Pace:
    """How long until the next read, as a multiple of the reports interval, and the
    calls still owed."""

    intervals: float
    owed: int


def pace(owed: int, calls: int, *, flooded: bool) -> Pace:
    """The next read after one that made ``calls`` Reddit calls (attempts, pages, ages,
    looks at posts), with ``owed`` calls a flood left unpaid.

    Reading costs ``CALLS_PER_READ`` calls an interval on average: a read that spent
    more pays for it in full by the next read coming later. A flood (a listing that
    needed a second page) is read at full speed, so the reader keeps up with it; its
    extra calls are owed, up to ``MAX_OWED`` (the rest are forgiven), and paid after
    it, at most one interval more per read.
    """
    extra = max(0, calls - CALLS_PER_READ)
    if flooded:
        return Pace(1.0, min(owed + extra, MAX_OWED))
    paid = min(owed, CALLS_PER_READ)
    return Pace(1.0 + (extra + paid) / CALLS_PER_READ, owed - paid)


def full(page: Collection[ReaderItem]) -> bool:
    """True when a page was full: more items may follow it."""
    return len(page) >= PAGE


def newest(page: Iterable[ReaderItem]) -> str | None:
    """The fullname to read the next page ``before`` (the newest item of this one)."""
    found = max(page, key=lambda i: (i.created_utc, i.fullname), default=None)
    return found.fullname if found is not None else None


def considered(item: ReaderItem, *, bot: str, since: float, threads: Collection[str]) -> bool:
    """True when ``item`` is a reader's, live, new enough, and (a comment) in one of
    ``threads``: only such items are classified."""
    if item.removed or item.distinguished or not item.author:
        return False
    author = item.author.casefold()
    if author == bot.casefold() or author in NOT_READERS:
        return False
    if item.created_utc < since:
        return False
    return item.is_post or item.thread_id in threads


def author_hash(key: bytes, name: str) -> str:
    """A reader's name as kept: keyed, so the hashes of a list of names cannot be
    computed without the store's key; case-insensitive like Reddit's names."""
    return hmac.new(key, name.casefold().encode(), hashlib.sha256).hexdigest()[:20]


def as_report(
    item: ReaderItem, verdict: Classification, author: str, author_since: float | None
) -> Report:
    """What is kept of a report: its time, its author's hash, labels, the account's age."""
    return Report(
        at=item.created_utc,
        author=author,
        rule=verdict.rule or "",
        errors=verdict.errors,
        products=verdict.products,
        author_since=author_since,
    )
