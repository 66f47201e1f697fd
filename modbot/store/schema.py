"""The tables, their indexes and their migrations: written once, for every dialect.

DDL and queries carry ``{word}`` fields for what a dialect spells its own way (see
``SPELLINGS``); ``words`` adds the shared phrases. Versions 1-5 of a SQLite file and
1-3 of a PostgreSQL database were migrated separately (``sqlite_legacy``, ``postgres``);
from version 6 on there is one schema and one list of migrations.

To add a column: declare it in its ``CREATE TABLE`` below and add a migration
``N: lambda _: add_columns("table", "column")`` (bump ``SCHEMA_VERSION``); the migration
reads the column's declaration from the table's DDL, so it is written once. To drop
one, take it out of the DDL and have the migration call the dialect's
``drop_columns`` (SQLite before 3.35 cannot drop a column, and builds the table again).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from modbot.core import outbox
from modbot.core.machine import MessageState
from modbot.core.records import Channel
from modbot.store.base import Dialect, Q, Tx

SCHEMA_VERSION = 12
ONE_SCHEMA = 6  # the first version shared by every dialect (below it, each had its own)
# The spellings a dialect fills in (SQLite's are in ``sqlite``, PostgreSQL's in ``postgres``).
SPELLINGS = (
    "time",  # seconds since the epoch, a float
    "bool",  # a boolean column (written TRUE/FALSE, read back as 0/1 or a bool)
    "id",  # an integer primary key numbered by the database
    "seq",  # the order rows were first written, to break ties in listings
    "seq_column",  # the column behind ``seq`` where it is one (with its comma)
    "seq_key",  # ``seq`` as an index's last key where it is a column (with its comma)
    "is_distinct_from",  # NULL-safe inequality
)
ANNOUNCED = "(announce OR forced)"
# Rows the deliverer must look at (``machine.is_active``): the same expression as the
# partial index, so SQLite uses it (it matches an index's WHERE only as written).
# A posted row in doubt (``heal_at``: a post whose answer was lost was followed by
# another) stays active until the look for a late copy is done.
ACTIVE = (
    "(state IN ('pending', 'posting') OR (state = 'posted' "
    "AND (delivered_hash {is_distinct_from} wanted_hash OR heal_at IS NOT NULL)))"
)
# Messages the outbox must look at (``machine.is_active`` for a message): unsettled, or
# sent again where a late copy may still land.
MESSAGE_ACTIVE = "(state IN ('pending', 'sending') OR (state = 'sent' AND heal_at IS NOT NULL))"

TABLES: dict[str, str] = {
    "feeds": """CREATE TABLE feeds (
    watch TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    baseline_at TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    digest TEXT,
    page_name TEXT,
    page_url TEXT,
    platform TEXT
)""",
    "incidents": """CREATE TABLE incidents (
    watch TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    view TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    announce {bool} NOT NULL,
    forced {bool} NOT NULL DEFAULT FALSE,
    is_open {bool} NOT NULL,
    rendered TEXT,
    rendered_hash TEXT,
    render_error TEXT,
    first_seen {time} NOT NULL,
    changed_at {time} NOT NULL,
    closed_at {time},
    pruned_at {time},{seq_column}
    PRIMARY KEY (watch, incident_id)
)""",
    "notes": """CREATE TABLE notes (
    watch TEXT NOT NULL,
    note_id TEXT NOT NULL,
    text TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at {time} NOT NULL,
    cut_chars INTEGER NOT NULL DEFAULT 0,{seq_column}
    PRIMARY KEY (watch, note_id)
)""",
    "deliveries": """CREATE TABLE deliveries (
    id {id},
    watch TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    thread_id TEXT,
    comment_id TEXT,
    permalink TEXT,
    wanted_hash TEXT,
    delivered_hash TEXT,
    delivered_at {time},
    intent_at {time},
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before {time} NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at {time} NOT NULL DEFAULT 0,
    epoch BIGINT NOT NULL DEFAULT 0,
    heal_at {time}
)""",
    "commands": """CREATE TABLE commands (
    message_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    command TEXT NOT NULL,
    argument TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    marked_read {bool} NOT NULL DEFAULT FALSE,
    received_at {time} NOT NULL,
    done_at {time}
)""",
    "health": """CREATE TABLE health (
    watch TEXT PRIMARY KEY,
    last_poll_at {time},
    last_poll_ok {bool} NOT NULL DEFAULT FALSE,
    last_poll_message TEXT NOT NULL DEFAULT '',
    last_good_poll_at {time},
    last_reddit_ok_at {time},
    last_error_at {time},
    last_error_kind TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    paused {bool} NOT NULL DEFAULT FALSE,
    paused_by TEXT NOT NULL DEFAULT '',
    paused_at {time},
    megathread_id TEXT,
    megathread_title TEXT,
    megathread_permalink TEXT,
    megathread_at {time},
    templates TEXT NOT NULL DEFAULT '',
    templates_at {time},
    source_kind TEXT NOT NULL DEFAULT '',
    failing_since {time},
    started_at {time}
)""",
    "wiki_revisions": """CREATE TABLE wiki_revisions (
    watch TEXT NOT NULL,
    page TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    author TEXT,
    revised_at {time} NOT NULL,
    content TEXT NOT NULL,
    outcome TEXT NOT NULL,
    decided_at {time} NOT NULL,
    PRIMARY KEY (watch, page, revision_id)
)""",
    # After a page moved to another platform: the new id of an incident the bot knows
    # by its old one (which its rows and its comment's marker keep), and the incident as
    # it was then (the updates the new platform may not list).
    "aliases": """CREATE TABLE aliases (
    watch TEXT NOT NULL,
    alias_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    carried TEXT NOT NULL,
    created_at {time} NOT NULL,
    PRIMARY KEY (watch, alias_id)
)""",
    # Each move of a watch's page to another platform, for the moderators to be told.
    "platform_moves": """CREATE TABLE platform_moves (
    watch TEXT NOT NULL,
    moved_at {time} NOT NULL,
    before_platform TEXT NOT NULL,
    after_platform TEXT NOT NULL,
    page_url TEXT NOT NULL,
    adopted INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    alerted_at {time},
    PRIMARY KEY (watch, moved_at)
)""",
    # What the wiki pages of a subreddit show, as the inbox last read them (a NULL
    # revision: the page does not exist); the poller judges what it has not judged yet.
    "wiki_pages": """CREATE TABLE wiki_pages (
    subreddit TEXT NOT NULL,
    page TEXT NOT NULL,
    revision_id TEXT,
    author TEXT,
    revised_at {time},
    content TEXT,
    read_at {time} NOT NULL,
    author_may_edit {bool},
    PRIMARY KEY (subreddit, page)
)""",
    # The outbox: every message the bot sends that is not a megathread comment (replies
    # to commands, messages to wiki editors), with the states of ``machine``'s message
    # table and the same version-checked steps as deliveries.
    "messages": """CREATE TABLE messages (
    id {id},
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    intent_at {time},
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before {time} NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_id TEXT,
    sent_at {time},
    created_at {time} NOT NULL,
    heal_at {time}
)""",
    # Readers' outage reports: what the signal needs and nothing more (never a name, never
    # a word a reader wrote): the item, when, a keyed hash of its author, the labels.
    "reports": """CREATE TABLE reports (
    watch TEXT NOT NULL,
    item_id TEXT NOT NULL,
    at {time} NOT NULL,
    author TEXT NOT NULL,
    author_since {time},
    rule TEXT NOT NULL,
    errors TEXT NOT NULL DEFAULT '[]',
    products TEXT NOT NULL DEFAULT '[]',
    seen_at {time} NOT NULL,
    PRIMARY KEY (watch, item_id)
)""",
    # Per watch: when reading began, the baseline (``surge.Baseline.as_numbers``), the open
    # surge and its notice, the quiet hours, the last look (for ``modbot status``).
    "report_signals": """CREATE TABLE report_signals (
    watch TEXT PRIMARY KEY,
    started_at {time} NOT NULL,
    baseline TEXT NOT NULL DEFAULT '',
    surge TEXT,
    notice_id TEXT,
    held TEXT NOT NULL DEFAULT '',
    quiet_until {time} NOT NULL DEFAULT 0,
    quiet_by TEXT NOT NULL DEFAULT '',
    assessed_at {time},
    authors INTEGER NOT NULL DEFAULT 0,
    expected {time},
    threshold {time} NOT NULL DEFAULT 0
)""",
    "early_notices": """CREATE TABLE early_notices (
    watch TEXT NOT NULL,
    notice_id TEXT NOT NULL,
    began {time} NOT NULL,
    detected {time} NOT NULL,
    authors INTEGER NOT NULL,
    errors TEXT NOT NULL DEFAULT '[]',
    products TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    created_at {time} NOT NULL,
    incident_id TEXT,
    ended {time},{seq_column}
    PRIMARY KEY (watch, notice_id)
)""",
    # Readers' stray posts that report an outage: the one reply each gets (a delivery of
    # kind ``route`` keyed by the post, in the post's own thread) and, with ``remove``, its
    # removal. One row per post whatever the watch: no post is answered twice.
    "routes": """CREATE TABLE routes (
    post_id TEXT PRIMARY KEY,
    watch TEXT NOT NULL,
    subreddit TEXT NOT NULL,
    action TEXT NOT NULL,
    about TEXT NOT NULL,
    about_key TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at {time} NOT NULL,
    removal TEXT NOT NULL DEFAULT 'none'
)""",
    # Values the bot makes once and keeps: the key of the readers' author hashes.
    "kept": """CREATE TABLE kept (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    # Several processes on one PostgreSQL database: the leader and its epoch, and the
    # followers. A state file has one process; its tables stay empty.
    "leadership": """CREATE TABLE leadership (
    deployment TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    host TEXT,
    pid INTEGER,
    since {time},
    seen_at {time}
)""",
    "members": """CREATE TABLE members (
    deployment TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since {time} NOT NULL,
    seen_at {time} NOT NULL,
    PRIMARY KEY (deployment, host, pid)
)""",
}

# Work follows open incidents, not history: the partial indexes hold the open incidents
# and the active delivery rows, and nothing that runs every poll reads anything else.
INDEXES: dict[str, str] = {
    "incidents_open": "CREATE INDEX incidents_open ON incidents (watch) "
    "WHERE is_open AND {announced}",
    "incidents_closed": "CREATE INDEX incidents_closed ON incidents (watch, closed_at{seq_key}) "
    "WHERE closed_at IS NOT NULL AND {announced}",
    "incidents_unrendered": "CREATE INDEX incidents_unrendered ON incidents (watch) "
    "WHERE rendered_hash IS NULL AND render_error IS NULL AND {announced}",
    "notes_created": "CREATE INDEX notes_created ON notes (watch, created_at{seq_key})",
    "deliveries_placed": "CREATE UNIQUE INDEX deliveries_placed "
    "ON deliveries (watch, kind, key, thread_id) WHERE thread_id IS NOT NULL",
    "deliveries_unplaced": "CREATE UNIQUE INDEX deliveries_unplaced "
    "ON deliveries (watch, kind, key) WHERE thread_id IS NULL",
    "deliveries_subject": "CREATE INDEX deliveries_subject ON deliveries (watch, kind, key)",
    "deliveries_thread": "CREATE INDEX deliveries_thread ON deliveries (watch, thread_id)",
    "deliveries_comment": "CREATE INDEX deliveries_comment ON deliveries (comment_id) "
    "WHERE comment_id IS NOT NULL",
    "deliveries_active": "CREATE INDEX deliveries_active ON deliveries (watch) WHERE {active}",
    "messages_key": "CREATE UNIQUE INDEX messages_key ON messages (key)",
    "messages_active": "CREATE INDEX messages_active ON messages (id) WHERE {message_active}",
    "reports_at": "CREATE INDEX reports_at ON reports (watch, at)",
    "early_notices_incident": "CREATE INDEX early_notices_incident ON early_notices "
    "(watch, incident_id) WHERE incident_id IS NOT NULL",
    "routes_removing": "CREATE INDEX routes_removing ON routes (watch) "
    "WHERE action = 'remove' AND removal <> 'removed'",
}
PARTIAL = ("incidents_open", "incidents_closed", "incidents_unrendered", "deliveries_active")

# The tables ``migrate-store`` copies (the others describe the processes, not the bot),
# each in an order that keeps its rows in the order they were written.
COPIED_TABLES: dict[str, str] = {
    "feeds": "watch",
    "incidents": "{seq}",
    "notes": "{seq}",
    "deliveries": "id",
    "commands": "received_at, message_id",
    "health": "watch",
    "wiki_revisions": "decided_at, watch, page, revision_id",
    "aliases": "created_at, watch, alias_id",
    "platform_moves": "moved_at, watch",
    "wiki_pages": "subreddit, page",
    "messages": "id",
    "reports": "watch, at, item_id",
    "report_signals": "watch",
    "early_notices": "{seq}",
    "routes": "created_at, post_id",
    "kept": "name",
}
# Columns of a dialect's own bookkeeping, and the epochs of the processes that wrote:
# neither is copied to another store.
INTERNAL_COLUMNS = frozenset({"seq", "epoch"})


def words(spelling: Mapping[str, str]) -> dict[str, str]:
    """Every ``{word}`` of the SQL here and in ``sql``, for a dialect's ``spelling``."""
    missing = set(SPELLINGS) - spelling.keys()
    if missing:
        raise ValueError(f"a dialect must spell {', '.join(sorted(missing))}")
    return {
        **spelling,
        "announced": ANNOUNCED,
        "active": ACTIVE.format_map(spelling),
        "message_active": MESSAGE_ACTIVE,
    }


def _booleans() -> dict[str, frozenset[str]]:
    found = {
        table: frozenset(re.findall(r"^\s*(\w+) \{bool\}", ddl, re.MULTILINE))
        for table, ddl in TABLES.items()
    }
    return {table: names for table, names in found.items() if names}


BOOLEAN_COLUMNS = _booleans()  # what ``migrate-store`` turns into booleans on the way in


def create() -> Tx[None]:
    """The current schema, in an empty store."""
    for ddl in TABLES.values():
        yield Q(ddl)
    for ddl in INDEXES.values():
        yield Q(ddl)


def column_ddl(table: str, column: str) -> str:
    """The declaration of ``column`` in ``table``'s DDL, for ``ALTER TABLE ... ADD``."""
    found = re.search(rf"^\s*({column} [^,\n]+),?(\{{seq_column\}})?$", TABLES[table], re.MULTILINE)
    if found is None:
        raise KeyError(f"{table}.{column} is not declared")
    return found.group(1)


def add_columns(table: str, *columns: str) -> Tx[None]:
    """Add ``columns`` to ``table`` as its DDL declares them, unless they are there."""
    present = (yield Q(f"SELECT * FROM {table} WHERE FALSE")).columns  # noqa: S608 - names are ours
    for column in columns:
        if column not in present:
            yield Q(f"ALTER TABLE {table} ADD COLUMN {column_ddl(table, column)}")


def declared(table: str) -> list[str]:
    """The names of the columns ``table``'s DDL declares, in order."""
    return re.findall(r"^\s*([a-z][a-z0-9_]*) ", TABLES[table], re.MULTILINE)


def _one_schema(_: Dialect) -> Tx[None]:
    """SQLite files (version 5) and PostgreSQL databases (version 3) become one schema:
    the leadership tables and the deliveries' epoch everywhere (unused in a file), and
    the partial indexes spelled as the queries now are (bare booleans)."""
    for table in ("leadership", "members"):
        yield Q(TABLES[table].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
    # ``heal_at`` (version 7) too: the partial indexes are rebuilt from today's
    # definitions, and ``deliveries_active`` names it.
    yield from add_columns("deliveries", "epoch", "heal_at")
    for name in PARTIAL:
        yield Q(f"DROP INDEX IF EXISTS {name}")
        yield Q(INDEXES[name])


# The step that brings a store from version N-1 to N, on every dialect.
def _doubt(_: Dialect) -> Tx[None]:
    """Rows in doubt remember when to look for a late copy next, and stay active until
    then (``ACTIVE``)."""
    yield from add_columns("deliveries", "heal_at")
    yield Q("DROP INDEX IF EXISTS deliveries_active")
    yield Q(INDEXES["deliveries_active"])


# What the replies and wiki messages of an older version became: an unsent reply is sent
# (with a marker now); one begun before is final, as it was, since it carries no marker
# to look for; the texts of wiki messages were never kept.
UNMARKED = (
    "begun before the outbox, without a marker to look for: it may have gone out, so it "
    "is not sent again"
)
WIKI_TEXT_LOST = "(sent before the outbox: its text was not kept)"


def _outbox(dialect: Dialect) -> Tx[None]:
    """Every outbound message becomes a row of the outbox (``messages``): the replies to
    commands (``commands.reply_state``) and the messages to wiki editors
    (``wiki_revisions.notice``) keep what they were; the wiki pages read are kept for
    the poller to judge (``wiki_pages``). What is there already is left as it is."""
    for table in ("messages", "wiki_pages"):
        yield Q(TABLES[table].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
    for name in ("messages_key", "messages_active"):
        yield Q(INDEXES[name].replace(" INDEX ", " INDEX IF NOT EXISTS ", 1))
    if "reply_state" in (yield Q("SELECT * FROM commands WHERE FALSE")).columns:
        yield from _old_replies()
        yield from dialect.drop_columns("commands", "reply_state")
    if "notice" in (yield Q("SELECT * FROM wiki_revisions WHERE FALSE")).columns:
        yield from _old_wiki_messages()
        yield from dialect.drop_columns("wiki_revisions", "notice")


def _old_replies() -> Tx[None]:
    replies = yield Q(
        "SELECT message_id, result, reply_state, received_at, done_at FROM commands "
        "WHERE result IS NOT NULL ORDER BY received_at, message_id"
    )
    for r in replies.rows:
        key = outbox.reply_key(r["message_id"])
        by_message = r["message_id"].startswith("t4_")  # else a mention: a comment
        channel = Channel.MESSAGE_REPLY if by_message else Channel.COMMENT_REPLY
        body = outbox.with_marker(r["result"], key)
        at = r["done_at"] or r["received_at"]
        yield from _old_message(key, channel, r["message_id"], "", body, r["reply_state"], at)


def _old_wiki_messages() -> Tx[None]:
    notices = yield Q(
        "SELECT watch, page, revision_id, author, notice, decided_at FROM wiki_revisions "
        "WHERE notice <> 'none' AND author IS NOT NULL ORDER BY decided_at, watch, page"
    )
    for r in notices.rows:
        key = outbox.wiki_key(r["watch"], r["page"], r["revision_id"])
        body = outbox.with_marker(WIKI_TEXT_LOST, key)
        subject = "modbot: your template edit"
        at = r["decided_at"]
        yield from _old_message(key, Channel.MESSAGE, r["author"], subject, body, r["notice"], at)


def _old_message(  # noqa: PLR0917 - one row's columns
    key: str, channel: Channel, recipient: str, subject: str, body: str, old: str, at: float
) -> Tx[None]:
    state, error = {
        "sent": (MessageState.SENT, None),
        "sending": (MessageState.FAILED, UNMARKED),
    }.get(old, (MessageState.PENDING, None))
    yield Q(
        "INSERT INTO messages (key, channel, recipient, subject, body, state, last_error, "
        "sent_at, created_at) VALUES (:key, :channel, :recipient, :subject, :body, :state, "
        ":error, :sent_at, :at) ON CONFLICT DO NOTHING",
        key=key,
        channel=channel.value,
        recipient=recipient,
        subject=subject,
        body=body,
        state=state.value,
        error=error,
        sent_at=at if state is MessageState.SENT else None,
        at=at,
    )


def _moves(_: Dialect) -> Tx[None]:
    """Pages that move to another platform: which platform served each watch, the new
    ids of the incidents it took over, and the moves themselves."""
    yield from add_columns("feeds", "platform")
    for table in ("aliases", "platform_moves"):
        yield Q(TABLES[table].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))


def _pruned(_: Dialect) -> Tx[None]:
    """Settled incidents older than ``MODBOT_KEEP_DAYS`` are kept as a line each (see
    ``sql.prune``), marked with when."""
    yield from add_columns("incidents", "pruned_at")


def _authors_and_causes(_: Dialect) -> Tx[None]:
    """Whether a wiki revision's author may edit the templates, as the inbox read it
    (NULL for pages read before: the inbox reads every page again at its first pass);
    and, for the health checks to say the real cause, since when the page fails and
    when the running process started polling."""
    yield from add_columns("wiki_pages", "author_may_edit")
    yield from add_columns("health", "failing_since", "started_at")


def _readers(_: Dialect) -> Tx[None]:
    """Readers' reports, each watch's signal, early notices, replies to stray posts."""
    for table in ("reports", "report_signals", "early_notices", "routes", "kept"):
        yield Q(TABLES[table].replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
    for name in ("reports_at", "early_notices_incident", "routes_removing"):
        yield Q(INDEXES[name].replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))


MIGRATIONS: dict[int, Callable[[Dialect], Tx[None]]] = {
    6: _one_schema,
    7: _doubt,
    8: _moves,
    9: _outbox,
    10: _pruned,
    11: _authors_and_causes,
    12: _readers,
}


def upgrade(since: int) -> Iterator[Callable[[Dialect], Tx[None]]]:
    """The migrations after version ``since``, in order (a dialect's own migrations have
    brought a store of an older version to its last one, just before ``ONE_SCHEMA``)."""
    for number in range(max(since, ONE_SCHEMA - 1) + 1, SCHEMA_VERSION + 1):
        if number in MIGRATIONS:  # a number taken by a branch not merged yet is skipped
            yield MIGRATIONS[number]
