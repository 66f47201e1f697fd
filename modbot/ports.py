"""The interfaces of the three outside systems: status sources, Reddit, the state store.

Each is small and typed, and each has one production implementation at the edge
(``statuspage``, ``reddit`` or ``dryrun``, ``store``) and one fake used across the
tests. The core and the app talk only to these.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from modbot.core.records import (
    Alias,
    CommandRow,
    DeliveryRow,
    EarlyRow,
    Health,
    InboxItem,
    IncidentRow,
    Kind,
    Leadership,
    Member,
    MessageRow,
    Moderator,
    NoteRow,
    PageInfo,
    PlatformMove,
    PostedComment,
    ReaderItem,
    Removal,
    Rendered,
    RouteRow,
    Subject,
    Thread,
    Tracked,
    Validators,
    WikiRevision,
    WikiRow,
)

if TYPE_CHECKING:
    from modbot.core.early import Signal
    from modbot.core.feed import IncidentsFeed
    from modbot.core.surge import Report

# What ``Store.step`` writes: a delivery or a message, both of ``machine``'s tables.
Stepped = TypeVar("Stepped", DeliveryRow, MessageRow)

# --- status sources ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """One poll: ``feed`` is ``None`` when the page has not changed since ``validators``."""

    feed: IncidentsFeed | None
    validators: Validators
    status: int = 200
    received_bytes: int = 0
    # The platform that served ``feed`` (a kind: ``statuspage``, ``incidentio``, ...), as
    # its answer shows it; None when it cannot tell (an empty list) or nothing was read.
    # A change between two good polls is a move, even where the URL kept answering.
    platform: str | None = None


class Source(Protocol):
    """A status page, read one snapshot at a time."""

    url: str  # what is fetched
    home: str  # the page readers visit, shown when the feed does not name one
    kind: str  # the vendor: statuspage, incidentio, gcloud, atom ("auto" until found)

    async def fetch(self, since: Validators) -> Fetched:
        """The current snapshot, or "unchanged" (``feed`` None) when ``since`` still holds.

        Raises a ``FeedError`` when the page cannot be read or understood this time.
        """
        ...


@runtime_checkable
class Movable(Protocol):
    """A source that follows its page to another platform (``sources.choose``)."""

    def resume(self, platform: str) -> None:
        """Read the page the way of ``platform``, which served it last."""
        ...


# --- Reddit -----------------------------------------------------------------------------------


class Target(Protocol):
    """Where comments go. Implementations raise the ``RedditError`` family."""

    async def current_thread(self, max_age: float | None = None) -> Thread | None:
        """The megathread to post in now, or ``None`` when there is none; looked up again
        when the last look is older than ``max_age`` seconds (or the usual interval).

        Raises a ``RedditError`` when that cannot be known right now.
        """
        ...

    def thread_suspect(self) -> None:
        """Something failed in the thread: look it up again before the next post."""
        ...

    async def post(self, thread: Thread, body: str) -> PostedComment:
        """Create a top-level comment."""
        ...

    async def edit(self, comment_id: str, body: str) -> None:
        """Replace a comment's body."""
        ...

    async def find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        """The bot's own comments in a thread with this marker (None: any marker), oldest
        first. Raises when the listing cannot be read: unknown is not absent."""
        ...

    async def delete(self, comment_id: str) -> None:
        """Delete one of the bot's comments."""
        ...

    async def removed(self, comment_ids: list[str]) -> dict[str, Removal]:
        """Which of these comments are not shown, and why: deleted or removed by a
        moderator, or filtered (AutoModerator, the spam filter)."""
        ...


class Mailbox(Protocol):
    """The bot account's mail: its inbox, where moderators send commands, and what it
    sends that is not a megathread comment (``MessageRow``, one channel each)."""

    username: str

    async def unread(self) -> list[InboxItem]:
        """Unread messages and mentions, oldest first (not marked read)."""
        ...

    async def mark_read(self, item: InboxItem) -> None:
        """Mark one item read (a modmail message: its whole conversation, for the bot's
        account only)."""
        ...

    async def modmail_unread(self, subreddits: Sequence[str]) -> list[InboxItem]:
        """The messages of the subreddits' new-modmail conversations unread by the bot
        that it has not answered (recent ones only), oldest first; not marked read."""
        ...

    async def moderators(self, subreddit: str) -> dict[str, Moderator]:
        """A subreddit's moderators, by lower-case name."""
        ...

    async def send(self, message: MessageRow) -> str | None:
        """Send one message the way its channel says (never retried: it may have gone
        out); Reddit's id of it, where Reddit says."""
        ...

    async def find_sent(self, message: MessageRow) -> list[PostedComment]:
        """The copies of ``message`` that went out (found by its marker where its channel
        puts them), oldest first. Raises when that cannot be told: unknown is not absent."""
        ...

    async def sent_recently(self) -> list[PostedComment]:
        """The bot's newest messages and comments that carry a message's marker (what
        went out, whatever the state says)."""
        ...

    async def delete_sent(self, message: MessageRow, copy_id: str) -> None:
        """Delete one copy of a message whose channel allows it (a comment)."""
        ...


class Wiki(Protocol):
    """A subreddit's wiki pages, read."""

    async def wiki_page(self, subreddit: str, page: str) -> WikiRevision | None:
        """The page's current revision, or ``None`` when it does not exist."""
        ...


class Listings(Protocol):
    """A subreddit's new posts and new comments, as readers write them (read-only), and
    what Reddit says about their authors."""

    async def account(self) -> str:
        """The bot account's name (its own items are not readers')."""
        ...

    async def new_items(
        self, subreddit: str, listing: str, *, before: str | None, limit: int
    ) -> list[ReaderItem]:
        """One page of ``/r/{subreddit}/new`` (``listing`` "posts") or ``/comments``
        ("comments"), newest first: the ``limit`` items just newer than ``before``, or
        the newest ones without it."""
        ...

    async def account_created(self, name: str) -> float | None:
        """When a reader's account was made, if Reddit says (None: suspended, deleted,
        or not shown)."""
        ...

    def calls_made(self, caller: str) -> int:
        """Reddit calls made so far for ``caller`` (each attempt counts)."""
        ...

    async def accounts_created(self, author_ids: Sequence[str]) -> dict[str, float | None]:
        """When each account (t2_...) was made, if Reddit says (None: suspended, deleted,
        or not shown); a hundred accounts a call."""
        ...

    async def posts(self, post_ids: Sequence[str]) -> list[ReaderItem]:
        """These posts as they are now (ids without t3_; a hundred a call)."""
        ...

    async def moderators(self, subreddit: str) -> dict[str, Moderator]:
        """A subreddit's moderators, by lower-case name."""
        ...

    async def approved_users(self, subreddit: str) -> set[str] | None:
        """A subreddit's approved users (lower-case names); None when the bot may not
        see them (it is no moderator there)."""
        ...


class Moderation(Protocol):
    """What the bot does about readers' stray posts, as a moderator of their subreddit."""

    async def reply_to_post(self, post_id: str, body: str) -> PostedComment:
        """Reply to a post (distinguished when the bot moderates); never retried here."""
        ...

    async def remove_post(self, post_id: str, reason: str) -> None:
        """Remove a post, with ``reason`` as its removal reason (a moderator's note)."""
        ...

    async def post_removed(self, post_id: str) -> bool:
        """True when the post is removed (or deleted) already."""
        ...


# --- the state store --------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedState:
    """What the bot keeps about one watch's page between polls."""

    url: str | None = None
    baseline_at: datetime | None = None
    validators: Validators = field(default_factory=Validators)
    platform: str | None = None  # the platform that served the last good read, if known


@dataclass(frozen=True)
class Work:
    """What one delivery round looks at: subjects that may need work and their rows."""

    subjects: Mapping[tuple[Kind, str], Subject]
    rows: Sequence[DeliveryRow]


class Store(Protocol):
    """The bot's durable state. Every method is one short transaction."""

    location: str

    async def close(self) -> None:
        """Write the health held in memory and release the store (every other write is
        already durable)."""
        ...

    def version(self) -> int | None:
        """A number that changes whenever anything is committed to the store, by this
        process or another; None when the store cannot tell (then assume it changed).
        Cheap: an idle loop asks it instead of reading what cannot have changed."""
        ...

    # --- feeds and incidents --------------------------------------------------------------
    async def feed_state(self, watch: str) -> FeedState:
        """The page's baseline and validators (empty before the first good poll)."""
        ...

    async def tracked(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """The incidents the bot knows among ``ids``."""
        ...

    async def save_poll(
        self,
        watch: str,
        *,
        url: str,
        changed: Mapping[str, Tracked],
        rendered: Mapping[str, Rendered],
        render_errors: Mapping[str, str],
        validators: Validators,
        baseline_at: datetime,
        page: PageInfo | None,
        now: float,
        platform: str | None = None,
        aliases: Sequence[Alias] = (),
        move: PlatformMove | None = None,
    ) -> None:
        """One poll's outcome, atomically: views, bodies, delivery intents, validators;
        the platform that served it, the new ids of incidents it adopted, and the move
        that brought them, if any."""
        ...

    async def aliases(self, watch: str, ids: Collection[str]) -> dict[str, Alias]:
        """The aliases among ``ids`` (new ids of incidents the bot knows by another)."""
        ...

    async def adoptable(self, watch: str, *, closed_since: float) -> dict[str, Tracked]:
        """What an incident new to the page may be, under a new id: announced incidents
        still open, and those closed by a move since ``closed_since``."""
        ...

    async def moves(self, watch: str) -> list[PlatformMove]:
        """The moves of the watch's page to another platform, oldest first."""
        ...

    async def save_renders(
        self, watch: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
    ) -> None:
        """Re-rendered bodies (after a template change or a refresh)."""
        ...

    async def rerender_scope(
        self, watch: str, *, closed_since: float, thread_id: str | None
    ) -> dict[str, Tracked]:
        """What readers still see: open incidents, and those closed since ``closed_since``
        whose comment is in ``thread_id``."""
        ...

    async def in_thread(self, watch: str, thread_id: str) -> dict[str, Tracked]:
        """Every announced incident with a live comment in ``thread_id``."""
        ...

    async def announced(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """Announced (or forced) incidents among ``ids``."""
        ...

    async def force(self, watch: str, tracked: Tracked, *, now: float) -> None:
        """Post ``tracked`` whatever the rules say (a moderator asked for it)."""
        ...

    async def adopt_known(self, watch: str, ids: Collection[str]) -> int:
        """Deliver again the incidents among ``ids`` that have a comment of the bot's but
        were taken as a baseline (a fresh state file); returns how many."""
        ...

    async def prune(
        self, watch: str, *, closed_before: float, keep: Collection[str] = (), now: float
    ) -> list[str]:
        """Forget settled incidents closed before ``closed_before`` (not those in ``keep``,
        which the page still lists): one line each stays, their bodies and deliveries go,
        and their comments are never touched again; notices as old go too, and settled
        messages as old lose their text (their row stays: never sent twice). Returns the
        incidents pruned."""
        ...

    async def unrendered(self, watch: str) -> dict[str, Tracked]:
        """Incidents to post about that have no body yet (and no template error)."""
        ...

    async def open_incidents(self, watch: str) -> list[IncidentRow]:
        """Announced incidents still open, newest first."""
        ...

    async def recent_settled(self, watch: str, limit: int) -> list[IncidentRow]:
        """The ``limit`` most recently closed announced incidents."""
        ...

    # --- deliveries -----------------------------------------------------------------------
    async def work(self, watch: str, keys: Collection[tuple[Kind, str]] | None = None) -> Work:
        """Open incidents and active deliveries, with their rows (only ``keys``, if given)."""
        ...

    async def body(self, watch: str, kind: Kind, key: str) -> Rendered | None:
        """The body a subject's comment should show now."""
        ...

    async def deliveries(self, watch: str, kind: Kind, keys: Collection[str]) -> list[DeliveryRow]:
        """Every delivery row of these subjects."""
        ...

    async def start_delivery(
        self, watch: str, kind: Kind, key: str, thread_id: str, *, now: float
    ) -> DeliveryRow | None:
        """A new ``pending`` row for a subject in ``thread_id`` (None if one exists)."""
        ...

    async def step(self, before: Stepped, after: Stepped) -> bool:
        """Write ``after`` (a delivery or a message) if the row is still ``before`` (same
        version); False if not."""
        ...

    # --- the outbox -----------------------------------------------------------------------
    async def add_message(self, message: MessageRow) -> tuple[MessageRow, bool]:
        """Record a message to send (once per key); the stored row and whether it is new."""
        ...

    async def message(self, key: str) -> MessageRow | None:
        """One message."""
        ...

    async def outbox(self) -> list[MessageRow]:
        """The messages that need a step: unsent, unsettled, or in doubt; oldest first."""
        ...

    async def last_message(self, prefix: str) -> MessageRow | None:
        """The newest message whose key starts with ``prefix`` (an alert's condition)."""
        ...

    async def move_alerted(self, move: PlatformMove, at: float) -> None:
        """Record that the moderators were told of ``move`` (its alert went out at ``at``)."""
        ...

    # --- notices --------------------------------------------------------------------------
    async def add_note(self, note: NoteRow) -> tuple[NoteRow, bool]:
        """Record a notice and its delivery intent; the stored row and whether it is new."""
        ...

    async def note(self, watch: str, note_id: str) -> NoteRow | None:
        """One notice."""
        ...

    async def note_by_comment(self, comment_id: str) -> NoteRow | None:
        """The notice posted as ``comment_id``."""
        ...

    async def edit_note(self, note: NoteRow) -> None:
        """New words (and body) for a notice; the deliverer edits its comment."""
        ...

    async def recent_notes(self, watch: str, limit: int) -> list[NoteRow]:
        """The newest notices."""
        ...

    # --- inbox commands -------------------------------------------------------------------
    async def claim_command(
        self, row: CommandRow, note: NoteRow | None = None, reply: MessageRow | None = None
    ) -> tuple[CommandRow, bool]:
        """Record a received command (with a notice's intent, and the reply of a refusal,
        atomically)."""
        ...

    async def command(self, message_id: str) -> CommandRow | None:
        """One received command."""
        ...

    async def finish_command(
        self,
        message_id: str,
        state: str,
        result: str,
        now: float,
        reply: MessageRow | None = None,
    ) -> None:
        """Record what a command did, and the reply that says so, atomically."""
        ...

    async def command_read(self, message_id: str) -> None:
        """Record that the message was marked read."""
        ...

    # --- health ---------------------------------------------------------------------------
    def hold_health(self, every: float) -> None:
        """Keep the routine heartbeat (a good poll after a good one, a good Reddit call)
        in memory, written at most every ``every`` seconds and at ``close``; a change a
        reader must see at once (a failure, a recovery) is written as it happens."""
        ...

    async def flush_health(self, now: float | None = None) -> None:
        """Write the health held in memory now."""
        ...

    async def health(self, watch: str) -> Health:
        """The watch's health record (with what this process holds in memory)."""
        ...

    async def record_poll(
        self, watch: str, *, ok: bool, message: str, now: float, kind: str = ""
    ) -> None:
        """The outcome of one poll."""
        ...

    async def record_reddit(self, watch: str, *, error: str | None, kind: str, now: float) -> None:
        """A good Reddit call (``error`` None) or a failed one."""
        ...

    async def record_megathread(self, watch: str, thread: Thread | None, now: float) -> None:
        """The megathread in use."""
        ...

    async def set_paused(self, watch: str, paused: bool, *, by: str, now: float) -> None:
        """Pause or resume posting."""
        ...

    async def record_started(self, watch: str, now: float) -> None:
        """This process starts polling the watch."""
        ...

    async def record_stopped(self, watch: str, started_at: float) -> None:
        """The process that started polling at ``started_at`` stopped."""
        ...

    async def record_templates(self, watch: str, templates: str, now: float) -> None:
        """Which templates the watch renders with (and why, when not the configured ones)."""
        ...

    # --- wiki templates -------------------------------------------------------------------
    async def wiki_rows(self, watch: str) -> list[WikiRow]:
        """Every wiki revision decided for the watch, oldest first."""
        ...

    async def record_wiki(self, row: WikiRow, message: MessageRow | None = None) -> None:
        """Record the decision about one revision (kept: a revision is judged once) and
        the message that tells its author, atomically."""
        ...

    async def wiki_pages(self, subreddit: str) -> dict[str, WikiRevision | None]:
        """The template pages of a subreddit's wiki as last read (None: no such page);
        pages never read are left out."""
        ...

    async def record_wiki_pages(
        self, subreddit: str, pages: Mapping[str, WikiRevision | None], now: float
    ) -> None:
        """What the wiki's template pages show now (None: the page does not exist)."""
        ...

    # --- readers' reports ----------------------------------------------------------------------
    async def reports_key(self, fresh: str) -> str:
        """The key of readers' author hashes (``fresh`` is kept the first time)."""
        ...

    async def signal(self, watch: str) -> Signal | None:
        """What the bot keeps about the watch's readers (None before the first read)."""
        ...

    async def start_signal(self, watch: str, *, now: float) -> Signal:
        """The watch's signal, begun at ``now`` if it has none yet."""
        ...

    async def save_signal(self, state: Signal, notice: EarlyRow | None = None) -> None:
        """The watch's signal after a read, and (atomically) a new early notice to post."""
        ...

    async def set_quiet(self, watch: str, until: float, *, by: str, now: float) -> None:
        """Hold early notices until ``until`` (0: no longer)."""
        ...

    async def add_reports(
        self, watch: str, items: Sequence[tuple[str, Report]], *, now: float
    ) -> int:
        """Keep reports (item id and what the signal needs); how many were new."""
        ...

    async def reports(self, watch: str, since: float, until: float) -> list[Report]:
        """The watch's reports posted in ``[since, until]``, oldest first."""
        ...

    async def known_reports(self, watch: str, ids: Collection[str]) -> set[str]:
        """Which of these items are kept as reports already."""
        ...

    async def forget_reports(self, watch: str, before: float) -> None:
        """Drop reports posted before ``before``."""
        ...

    async def early_notices(self, watch: str, ids: Collection[str]) -> list[EarlyRow]:
        """These early notices, oldest first."""
        ...

    async def live_early_notices(self, watch: str, since: float) -> list[EarlyRow]:
        """Early notices still open, or detected since ``since``, oldest first."""
        ...

    async def early_for_incident(self, watch: str, incident_id: str) -> EarlyRow | None:
        """The early notice an incident confirmed, if any."""
        ...

    async def save_early(self, row: EarlyRow) -> None:
        """An early notice's new state and body; the deliverer edits its comment."""
        ...

    async def add_route(self, row: RouteRow) -> bool:
        """Record a stray post's reply (and removal) to deliver; False when the post was
        answered already, under any watch."""
        ...

    async def routed(self, post_ids: Collection[str]) -> set[str]:
        """Which of these posts have been (or are being) answered, under any watch."""
        ...

    async def report_posts(self, watch: str, since: float) -> list[str]:
        """Posts (ids without t3_) kept as the watch's reports, posted since ``since``."""
        ...

    async def routes_to_remove(self, watch: str) -> list[RouteRow]:
        """Stray posts to remove whose reply is posted, not removed yet."""
        ...

    async def set_removal(self, post_id: str, state: str) -> None:
        """How far a stray post's removal got: removing (the intent), removed."""
        ...

    async def routes(self, watch: str, post_ids: Collection[str]) -> list[RouteRow]:
        """These stray posts' routes."""
        ...

    # --- several processes ---------------------------------------------------------------------
    async def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> Lease:
        """This process's lease on leading the deployment: contested when several
        processes share the store (PostgreSQL), always granted on a state file."""
        ...

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """Who leads the deployment and who waits (seen within a few lease ``interval``s,
        by the store's clock); None when the store has no leases."""
        ...

    async def confirm_lead(self) -> None:
        """Raise ``Deposed`` if this process led and another leads now (a no-op for a
        process that never led, and for a state file)."""
        ...

    async def shut_out(self) -> list[Member]:
        """Keep every ``modbot run`` off this store until ``let_in`` (for
        ``migrate-store``): an empty list when done, else the processes running on it
        now (and nothing is held)."""
        ...

    async def let_in(self) -> None:
        """Undo ``shut_out``."""
        ...

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, by table (``migrate-store``)."""
        ...

    async def import_rows(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Load ``export_rows``' output into an empty store, in one transaction."""
        ...


class Lease(Protocol):
    """One process's claim on leading a deployment (see ``store.postgres``)."""

    shared: bool  # True when other processes may contend for it (a database server)

    async def acquire(self, now: float) -> int | None:
        """Take the lead if it is free: the new epoch, or None while another leads."""
        ...

    async def holding(self, now: float) -> bool:
        """True while this process still leads (the lock's session lives and no newer
        epoch exists); False once it must stop."""
        ...

    async def release(self) -> None:
        """Give the lead up (or stop waiting for it)."""
        ...
