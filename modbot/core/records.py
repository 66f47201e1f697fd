"""The frozen data every layer shares. It imports nothing of modbot's.

Feed views (what a comment shows about an incident), rendered bodies, Reddit things
(threads, the bot's comments, inbox items), and the rows the store keeps: deliveries
(one per thing the bot posts in one thread), messages (everything else it sends:
replies, private messages), notices, commands, wiki pages and the health record of each
watch. Layers above pass these around; none of them carries behaviour beyond small
derived properties.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# "moved": the page moved to a platform that does not list the incident (``core.moves``):
# closed, and never called resolved.
CLOSED_STATUSES = frozenset({"resolved", "postmortem", "completed", "moved"})

# --- what the feed says -------------------------------------------------------------------


class EventKind(StrEnum):
    """What changed in an incident, as a reader of its comment would notice."""

    OPENED = "opened"
    UPDATE_ADDED = "update added"
    UPDATE_EDITED = "update edited"
    UPDATE_REMOVED = "update removed"
    STATUS_CHANGED = "status changed"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    POSTMORTEM_PUBLISHED = "postmortem published"
    POSTMORTEM_EDITED = "postmortem edited"
    IMPACT_CHANGED = "impact changed"
    RENAMED = "renamed"
    COMPONENTS_CHANGED = "components changed"
    DETAILS_CHANGED = "details changed"
    ADOPTED = "adopted under a new id"  # its page moved; its comment stays
    PAGE_MOVED = "closed: its page moved"  # the new platform does not list it


@dataclass(frozen=True)
class Event:
    """One change to one incident."""

    kind: EventKind
    incident_id: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.incident_id}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class UpdateView:
    """An incident update as the comment shows it."""

    id: str
    status: str
    body: str
    shown_at: datetime | None


@dataclass(frozen=True)
class ComponentView:
    """A component attached to an incident, with its current status."""

    name: str
    status: str


@dataclass(frozen=True)
class IncidentView:
    """Everything a comment about one incident shows, and nothing else."""

    id: str
    name: str
    status: str
    impact: str
    shortlink: str | None
    created_at: datetime | None
    resolved_at: datetime | None
    components: tuple[ComponentView, ...]
    updates: tuple[UpdateView, ...]  # oldest first
    postmortem_body: str | None = None
    maintenance: bool = False  # a scheduled maintenance, shown with its own template
    scheduled_for: datetime | None = None  # a maintenance's announced window
    scheduled_until: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True until the incident is resolved (unknown statuses count as open)."""
        return self.status not in CLOSED_STATUSES


@dataclass(frozen=True)
class Tracked:
    """What the bot remembers about one incident."""

    view: IncidentView
    announce: bool


MOVED = "moved"  # the status of an incident whose page moved to a platform not listing it


@dataclass(frozen=True)
class Alias:
    """A new id for an incident the bot already knows (after its page moved)."""

    alias_id: str  # the id the page gives the incident now
    incident_id: str  # the id the bot keeps: its rows and its comment's marker
    before: IncidentView  # the incident as the bot knew it when it was adopted


@dataclass(frozen=True)
class PageInfo:
    """The status page a comment talks about."""

    name: str
    url: str


@dataclass(frozen=True)
class Validators:
    """What makes the next fetch of a page cheap when nothing changed.

    ``etag`` and ``last_modified`` go back to the server; ``digest`` is the hash of the
    last body, for servers that send neither. They are saved with the state they
    describe, never before it.
    """

    etag: str | None = None
    last_modified: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A finished comment body and its hash."""

    body: str
    digest: str
    omitted_updates: int = 0  # an incident's oldest updates left out to fit
    cut_chars: int = 0  # characters cut from the end of a notice's words to fit


# --- what a poll and a delivery round did --------------------------------------------------


@dataclass(frozen=True)
class PollReport:
    """What one poll found."""

    ok: bool
    changed: bool
    events: tuple[Event, ...] = ()
    message: str = ""
    retry_after: float | None = None
    moved: bool = False  # the page was found on another platform (the moderators are told)


@dataclass
class Report:
    """What one or more rounds did, row by row."""

    posted: list[DeliveryRow] = field(default_factory=list)
    edited: list[DeliveryRow] = field(default_factory=list)
    failed: list[DeliveryRow] = field(default_factory=list)
    duplicates_deleted: int = 0
    removed: int = 0  # readers' stray posts removed
    wake_at: float | None = None

    def touched(self, keys: Collection[tuple[Kind, str]]) -> int:
        """How many comments of these subjects were posted or edited."""
        return sum((r.kind, r.key) in keys for r in self.posted + self.edited)


# --- Reddit things ------------------------------------------------------------------------


@dataclass(frozen=True)
class Thread:
    """A megathread the bot can comment in."""

    id: str
    title: str
    permalink: str


@dataclass(frozen=True)
class PostedComment:
    """A comment of the bot's, as Reddit reports it."""

    id: str
    permalink: str
    created_utc: float
    body: str = ""
    marker: str = ""  # the marker id on the body's last line, e.g. "inc-abc123"


@dataclass(frozen=True)
class InboxItem:
    """An unread private message or username mention, or a message sent to a
    subreddit's new modmail (``conversation``: its conversation's id)."""

    fullname: str
    author: str | None
    body: str
    is_mention: bool
    handle: Any = field(default=None, compare=False)  # the Reddit library's object
    conversation: str | None = None


@dataclass(frozen=True)
class ReaderItem:
    """A reader's post or comment as a listing shows it. Its text is read once, by the
    report rules, and never stored or shown."""

    fullname: str  # t3_... (a post) or t1_... (a comment)
    created_utc: float
    author: str | None  # None: deleted
    text: str  # a post's title and text, or a comment's body
    thread_id: str  # the post itself, or the post a comment is in (without t3_)
    removed: bool = False  # removed by a moderator or the spam filter, or deleted
    distinguished: bool = False  # a moderator speaking as one
    locked: bool = False  # a post that takes no replies
    author_id: str | None = None  # the author's account (t2_...), when the listing says

    @property
    def is_post(self) -> bool:
        return self.fullname.startswith("t3_")


@dataclass(frozen=True)
class Moderator:
    """A moderator of the subreddit and their permissions."""

    name: str
    permissions: tuple[str, ...]


# --- what the store keeps -----------------------------------------------------------------


class Kind(StrEnum):
    """What a delivery carries: an incident's comment, a moderator's notice, an early
    notice (readers report an outage the status page does not show yet), or the reply to
    a reader's stray report post (pointing to the megathread)."""

    INCIDENT = "inc"
    NOTE = "note"
    EARLY = "early"
    ROUTE = "route"  # the reply to a reader's stray post that reports the outage


@dataclass(frozen=True)
class DeliveryRow:
    """The bot's comment (or its intent to comment) for one subject in one thread.

    ``thread_id`` is ``None`` while the row waits for a megathread to be placed in.
    ``version`` grows with every change, so a write can insist that nobody else
    changed the row since it was read (see ``machine``).
    """

    id: int
    watch: str
    kind: Kind
    key: str
    state: str
    version: int = 0
    thread_id: str | None = None
    comment_id: str | None = None
    permalink: str | None = None
    wanted_hash: str | None = None
    delivered_hash: str | None = None
    delivered_at: float | None = None
    intent_at: float | None = None
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None
    created_at: float = 0.0
    # Set once a post whose answer was lost has been followed by another post: a copy
    # may still land late. When to look for copies next (None: no such doubt).
    heal_at: float | None = None


class Channel(StrEnum):
    """How a message the bot sends (not a megathread comment) goes out, and so where it
    can be looked for by its hidden marker when Reddit's answer was lost."""

    MESSAGE = "message"  # a new private message to a user: in the bot's sent box
    MESSAGE_REPLY = "message-reply"  # a reply to a private message: in the sent box
    COMMENT_REPLY = "comment-reply"  # a reply to a comment (a mention): a comment of the
    # bot's, in its comment history (and the one kind a late copy of can be deleted)
    MODMAIL = "modmail"  # an alert to a subreddit's moderators: a new modmail conversation,
    # or a reply in the one whose subject it carries (found there by its marker)
    MODMAIL_REPLY = "modmail-reply"  # a reply in a new-modmail conversation (the
    # recipient is the conversation's id): a message of the bot's in that conversation


class Removal(StrEnum):
    """Why a comment of the bot's is not shown: a moderator removed it (or it was
    deleted), or AutoModerator or the spam filter took it, with no moderator acting."""

    REMOVED = "removed"
    FILTERED = "filtered"


@dataclass(frozen=True)
class MessageRow:
    """One message the bot sends that is not a megathread comment: a reply to a
    moderator's command, a private message about a wiki edit. Its states and steps are
    ``machine``'s message table; ``version`` grows with every step, as a delivery's.

    ``key`` names what the message is about, once (``reply-t4_abc``): a second message
    about the same thing is never created, and the body's hidden marker carries it.
    """

    id: int
    key: str
    channel: Channel
    recipient: str  # a user's name (message), or the fullname of what is replied to
    subject: str  # a private message's subject ("" for replies)
    body: str  # ends with the hidden marker line
    state: str = "pending"
    version: int = 0
    intent_at: float | None = None
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None
    sent_id: str | None = None  # Reddit's id of what was sent, once known
    sent_at: float | None = None
    created_at: float = 0.0
    # Set once a reply whose answer was lost was sent again, where a late copy can be
    # deleted (a comment): when to look for copies next (None: no such doubt).
    heal_at: float | None = None


@dataclass(frozen=True)
class Subject:
    """What a delivery is about, as the planner needs it: open or not, and which body."""

    kind: Kind
    key: str
    is_open: bool
    wanted_hash: str | None
    home: str | None = None  # the one thread it belongs in (a reply: the post), if fixed


@dataclass(frozen=True)
class IncidentRow:
    """An announced incident, as listings and the status screen show it."""

    incident_id: str
    name: str
    status: str
    is_open: bool
    rendered_hash: str | None
    render_error: str | None
    first_seen: float
    closed_at: float | None = None


@dataclass(frozen=True)
class NoteRow:
    """A moderator's notice: its words, the body rendered from them, who asked."""

    watch: str
    note_id: str
    text: str
    body: str
    body_hash: str
    source: str
    created_at: float
    cut_chars: int = 0  # how much of the moderator's text did not fit


@dataclass(frozen=True)
class EarlyRow:
    """An early notice: readers' reports surged while the status page showed nothing.
    Counts and rule labels only, never readers' words."""

    watch: str
    notice_id: str
    began: float  # the first report counted in the surge
    detected: float  # when the surge was detected (and the notice decided)
    authors: int  # distinct readers counted
    errors: tuple[tuple[str, int], ...]  # error labels and how many readers named each
    products: tuple[tuple[str, int], ...]
    state: str  # open | confirmed | subsided
    body: str
    body_hash: str
    created_at: float
    incident_id: str | None = None  # the incident that confirmed it
    ended: float | None = None  # when the reports subsided


@dataclass(frozen=True)
class RouteRow:
    """A reader's stray post that reports an outage, and what the bot does about it: one
    reply (the delivery of kind ``route`` keyed by the post), and with ``remove`` the
    post's removal (``removal``: none, removing, removed)."""

    watch: str
    post_id: str  # without t3_
    subreddit: str
    action: str  # reply | remove
    about: str  # what the reply points to: "inc" or "early", and its key
    about_key: str
    body: str
    body_hash: str
    created_at: float
    reason: str = ""  # the removal reason, with ``remove``
    removal: str = "none"


@dataclass(frozen=True)
class CommandRow:
    """A command received in the inbox and what became of it."""

    message_id: str
    author: str
    command: str
    argument: str
    state: str  # running | done | refused
    received_at: float
    result: str | None = None  # what the reply says (the reply is a message of its own)
    marked_read: bool = False
    done_at: float | None = None


@dataclass(frozen=True)
class Health:
    """How one watch is doing, for ``modbot status`` and health checks."""

    watch: str
    last_poll_at: float | None = None
    last_poll_ok: bool = False
    last_poll_message: str = ""
    last_good_poll_at: float | None = None
    last_reddit_ok_at: float | None = None
    last_error_at: float | None = None
    last_error_kind: str = ""
    last_error: str = ""
    paused: bool = False
    paused_by: str = ""
    paused_at: float | None = None
    megathread: Thread | None = None
    megathread_at: float | None = None
    page: PageInfo | None = None
    templates: str = ""  # where the templates in use come from, and since when
    templates_at: float | None = None
    source_kind: str = ""  # the vendor found by ``auto`` (or the configured kind)
    failing_since: float | None = None  # the first failed poll since the last good one
    started_at: float | None = None  # when the process polling now started (None: stopped)


@dataclass(frozen=True)
class PlatformMove:
    """A watch's page found served by another platform (``core.moves``). Kept for the
    moderators to be told, with both platforms named: ``alerted_at`` stays None until
    they are."""

    watch: str
    moved_at: float
    before: str  # the platforms, as kinds: statuspage, incidentio, atom, ...
    after: str
    page_url: str
    adopted: int = 0  # incidents that kept their comment under the new platform's id
    closed: int = 0  # open incidents the new platform does not list, closed as moved
    alerted_at: float | None = None


@dataclass(frozen=True)
class WikiRevision:
    """One revision of a template page on a subreddit's wiki (``modbot/incident``)."""

    page: str  # the template it replaces: incident, manual or maintenance
    revision_id: str
    content: str
    author: str | None  # who saved it (None when Reddit does not say)
    revised_at: float
    # Whether the author moderates the subreddit with the ``wiki`` or ``all`` permission,
    # as the inbox found when it read the page (None: not looked at yet).
    author_may_edit: bool | None = None


@dataclass(frozen=True)
class WikiRow:
    """What the bot decided about one wiki revision: ``good`` (in use, or was),
    ``broken`` (its author's message is a message of its own) or ``not a moderator``
    (its author may not change the bot's templates: never used, never rendered)."""

    watch: str
    page: str
    revision_id: str
    author: str | None
    revised_at: float
    content: str
    outcome: str
    decided_at: float = 0.0


@dataclass(frozen=True)
class Member:
    """One ``modbot run`` process of a deployment that shares a PostgreSQL store."""

    host: str
    pid: int
    since: float  # leading (or waiting) since
    seen_at: float  # its last sign of life


@dataclass(frozen=True)
class Leadership:
    """Who leads a deployment (polls, delivers, reads the inbox), and who waits."""

    deployment: str
    epoch: int  # grows with every new leadership: the fencing token
    leader: Member | None
    followers: tuple[Member, ...] = ()
    now: float = 0.0  # the database server's clock when this was read
