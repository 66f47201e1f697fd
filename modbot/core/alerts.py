"""Alerts to the moderators: which conditions are worth a modmail, when one is due, and
what it says.

Pure and synchronous. The shell observes a condition (a page failing, a write Reddit
refused, a comment the spam filter took ...) and asks ``decide`` whether a message is
due, given the last alert recorded for that condition (``Told``). Each alert is one
``MessageRow`` of the outbox on the modmail channel: the conversation is found by its
subject, which is the same for every alert of one condition of one watch, so a
condition is one conversation that is updated (a reply) rather than repeated.

The rule: a condition that holds is told once (never again while it holds), a new
episode at most once an hour after the last message of that condition, and its end
("recovered") once, as a reply closing the alert it ends. An event (a wiki revision
rejected, a page moved) is told at most once an hour per condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from modbot.core import markdown, moves, outbox
from modbot.core.records import Channel, MessageRow, PlatformMove

HOUR = 3600.0
DEFAULT_AFTER = 600.0  # MODBOT_ALERT_AFTER's default: ten minutes of a failing page


class Condition(StrEnum):
    """What an alert is about; its value names the conversation's subject and key."""

    PAGE_FAILING = "page-failing"
    WRITES_REFUSED = "writes-refused"
    COMMENT_FILTERED = "comment-filtered"
    MEGATHREAD_MISSING = "megathread-missing"
    WIKI_REJECTED = "wiki-rejected"
    PAUSED = "paused"
    MOVED = "moved"
    FILTERS_UNMATCHED = "filters-unmatched"


# Conditions that are events: told when they happen, never "recovered".
EVENTS = frozenset({Condition.WIKI_REJECTED, Condition.MOVED})

Decision = Literal["raise", "clear"]


@dataclass(frozen=True)
class Where:
    """The watch an alert is about: its store scope, its name, its subreddit."""

    scope: str
    watch: str
    subreddit: str


@dataclass(frozen=True)
class Told:
    """The last alert message recorded for one condition of one watch."""

    raised: bool  # False: it said the condition ended
    at: float


def decide(condition: Condition, told: Told | None, holds: bool, now: float) -> Decision | None:
    """Whether a message is due now about ``condition``, which ``holds`` (or not)."""
    if not holds:
        if condition in EVENTS or told is None or not told.raised:
            return None
        return "clear"
    if told is None:
        return "raise"
    if told.raised and condition not in EVENTS:
        return None  # said already; the conversation stands until it ends
    return "raise" if now - told.at >= HOUR else None


def failing_long(failing_since: float | None, now: float, after: float) -> bool:
    """True when a page has failed for longer than ``after`` seconds."""
    return failing_since is not None and now - failing_since > after


# --- keys and the outbox -----------------------------------------------------------------------


def prefix(where: Where, condition: Condition) -> str:
    """The start of every alert key of one condition of one watch."""
    return outbox.message_key("alert", where.scope, condition.value) + "-"


def key(where: Where, condition: Condition, decision: Decision, now: float) -> str:
    """One alert's key: its condition, whether it raises or clears, and the second (of
    the observation; of the move, for a move, so that its alert is found again)."""
    word = "raised" if decision == "raise" else "cleared"
    return f"{prefix(where, condition)}{word}-{int(now)}"


def told(row: MessageRow | None, where: Where, condition: Condition) -> Told | None:
    """What an alert row recorded (None: no alert about this condition yet)."""
    if row is None:
        return None
    rest = row.key[len(prefix(where, condition)) :]
    return Told(raised=rest.startswith("raised"), at=row.created_at)


def subject(where: Where, condition: Condition) -> str:
    """The conversation's subject: one per condition of one watch, never changing."""
    return f"modbot alert: {where.watch}: {_TITLES[condition]}"[: outbox.SUBJECT_LIMIT]


def message(
    where: Where,
    condition: Condition,
    decision: Decision,
    detail: str,
    now: float,
    *,
    stamp: float | None = None,
) -> MessageRow:
    """The alert's outbox row: to the subreddit's modmail, in its condition's conversation
    (``stamp``: the second its key names, when not ``now``)."""
    row_key = key(where, condition, decision, now if stamp is None else stamp)
    text = alert_text(where, condition, decision, detail)
    return MessageRow(
        0,
        row_key,
        Channel.MODMAIL,
        where.subreddit,
        subject(where, condition),
        outbox.with_marker(text, row_key),
        created_at=now,
    )


# --- what an alert says ------------------------------------------------------------------------

_TITLES: dict[Condition, str] = {
    Condition.PAGE_FAILING: "status page failing",
    Condition.WRITES_REFUSED: "Reddit refuses the bot's writes",
    Condition.COMMENT_FILTERED: "the bot's comment was filtered",
    Condition.MEGATHREAD_MISSING: "no pinned megathread",
    Condition.WIKI_REJECTED: "wiki template revision rejected",
    Condition.PAUSED: "paused",
    Condition.MOVED: "status page moved",
    Condition.FILTERS_UNMATCHED: "component filters match nothing",
}

# condition -> (what happened, what to do)
_RAISED: dict[Condition, tuple[str, str]] = {
    Condition.PAGE_FAILING: (
        "The status page of **{watch}** has been failing for a while, so the megathread "
        "is not being updated.",
        "Check that the page opens in a browser. If it moved, update the watch's `url`; "
        "if it is down, nothing to do: the bot keeps trying and says here when it answers.",
    ),
    Condition.WRITES_REFUSED: (
        "Reddit refuses the bot's comments or edits for **{watch}** in r/{subreddit}.",
        "Check that the megathread is not locked or archived, that the bot's account is a "
        "moderator with the `posts` permission (or at least may comment), and that its "
        "comments were not removed. The bot tries again by itself.",
    ),
    Condition.COMMENT_FILTERED: (
        "A comment of the bot for **{watch}** was filtered by AutoModerator or Reddit's "
        "spam filter, so readers cannot see it. This is not a moderator's removal: the "
        "bot keeps the comment and keeps editing it.",
        "Approve the comment (mod queue) and exempt the bot's account: add it as an "
        "approved user, or to AutoModerator's exceptions (`author: name: [...]`, "
        "`~moderators_exempt`).",
    ),
    Condition.MEGATHREAD_MISSING: (
        "No pinned post in r/{subreddit} matches the megathread title of **{watch}** "
        "(none pinned, or it is locked or archived). Updates are kept until one is.",
        "Pin the megathread (or fix `MODBOT_MEGATHREAD_TITLE`); the bot posts what it "
        "kept as soon as it finds it.",
    ),
    Condition.WIKI_REJECTED: (
        "A revision of the wiki templates of **{watch}** was rejected; the last good "
        "templates stay in use.",
        "Read the reason below, fix the wiki page, and save it again.",
    ),
    Condition.PAUSED: (
        "Posting for **{watch}** is paused: no comments are posted or edited.",
        "Send `!resume` to the bot when it should post again.",
    ),
    Condition.MOVED: (
        "The status page of **{watch}** moved to another platform; the bot follows it.",
        "Check that the new page is the provider's own; if not, fix the watch's `url`.",
    ),
    Condition.FILTERS_UNMATCHED: (
        "Component filters of **{watch}** match no component on the live status page, "
        "so no incident can ever pass them.",
        "Fix the watch's `components` (names as the page spells them; "
        "`modbot check --connect` lists what the page has).",
    ),
}

_CLEARED: dict[Condition, str] = {
    Condition.PAGE_FAILING: "Recovered: the status page of **{watch}** answers again.",
    Condition.WRITES_REFUSED: "Recovered: Reddit accepts the bot's writes for **{watch}** again.",
    Condition.COMMENT_FILTERED: "Recovered: the filtered comment of **{watch}** is visible again.",
    Condition.MEGATHREAD_MISSING: "Recovered: the megathread of **{watch}** is pinned again.",
    Condition.PAUSED: "Resumed: posting for **{watch}** goes on.",
    Condition.FILTERS_UNMATCHED: "Recovered: the component filters of **{watch}** match again.",
}


def alert_text(where: Where, condition: Condition, decision: Decision, detail: str) -> str:
    """An alert's text: what happened, the detail, and what to do."""
    names = {"watch": where.watch, "subreddit": where.subreddit}
    detail = markdown.escape_text(detail)  # error texts and names from outside
    if decision == "clear":
        text = _CLEARED.get(condition, "Recovered.").format(**names)
        return f"{text}\n\n{detail}".rstrip() if detail else text
    happened, todo = _RAISED[condition]
    parts = [happened.format(**names)]
    if detail:
        parts.append(f"Detail: {detail}")
    parts.append(f"**What to do:** {todo}")
    parts.append("(At most one alert per hour about this; `MODBOT_ALERTS=off` stops them.)")
    return "\n\n".join(parts)


def move_key(where: Where, move: PlatformMove) -> str:
    """The key of the alert about one move."""
    return key(where, Condition.MOVED, "raise", move.moved_at)


def move_detail(move: PlatformMove) -> str:
    """What a move alert names: both platforms and the page."""
    before, after = moves.platform_name(move.before), moves.platform_name(move.after)
    return f"from {before} to {after} ({move.page_url})"


# --- a watch's page: failing, and back -----------------------------------------------------------


@dataclass(frozen=True)
class PageHealth:
    """Whether a watch's page fails, since when, and whether this process said so."""

    failing_since: float | None = None
    said: bool = False  # the failure was logged (once, until it recovers)


Change = Literal["failing", "recovered"]


def page_polled(state: PageHealth, ok: bool, now: float) -> tuple[PageHealth, Change | None]:
    """The page's state after one poll, and the change worth one log line (a page that
    keeps failing is said once, when it starts, and once when it answers again)."""
    if ok:
        return PageHealth(), ("recovered" if state.said else None)
    since = state.failing_since if state.failing_since is not None else now
    return PageHealth(since, said=True), (None if state.said else "failing")


def page_at_start(
    last_poll_ok: bool, last_poll_at: float | None, last_good: float | None
) -> PageHealth:
    """What a start knows of the page from the store: failing since its last good poll
    (a restart does not reset how long the moderators have been without updates)."""
    if last_poll_at is None or last_poll_ok:
        return PageHealth()
    return PageHealth(failing_since=last_good)
