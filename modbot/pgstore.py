"""The bot's state in PostgreSQL: the store port on a database server.

The same tables, rows and rules as ``store.SqliteStore``, so the rest of the bot cannot
tell them apart: every public method is one transaction; read-then-write methods run
one at a time across every process that shares the database (a transaction-scoped
advisory lock plays SQLite's ``BEGIN IMMEDIATE``); every delivery step is written only
if the row still has the version it was read at. Reads run in a read-only snapshot.

One connection, guarded by an asyncio lock; a connection that broke is replaced on the
next call. Every network wait is bounded: ``connect_timeout`` for connecting,
``statement_timeout`` on the server for each statement, and a deadline around each
call for a server that stopped answering. Errors are one ``StoreError`` line naming
the server without its password.

The schema is created and migrated on open and versioned in the ``schema_version``
table (version 1 of the PostgreSQL schema held SQLite schema 4's tables and columns;
version 2, like SQLite's 5, adds the wiki revisions; version 3 the leadership).

Several processes may share one database (two machines, one deployment): ``PgLease``
lets one of them lead at a time, with a session-level advisory lock held on a
connection of its own. Each new leadership bumps the deployment's epoch in the same
transaction that records it, under the writers' lock; the leader's store is then
*fenced*: every write transaction first checks, under that same lock, that its epoch
is still the current one, and is refused with ``Deposed`` otherwise. A leader that was
paused or cut off while a Reddit call was in flight therefore cannot record its late
answer; the row it left in ``posting`` (stamped with its epoch) is settled by the next
leader by looking for the comment's marker, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import astuple, fields
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from modbot.config.database import redact_url, scrub
from modbot.core.codec import view_from_json, view_to_json
from modbot.core.records import (
    CommandRow,
    DeliveryRow,
    Health,
    IncidentRow,
    Kind,
    Leadership,
    Member,
    NoteRow,
    PageInfo,
    Rendered,
    Subject,
    Thread,
    Tracked,
    Validators,
    WikiRow,
)
from modbot.errors import Deposed, StoreError
from modbot.ports import FeedState, Work

T = TypeVar("T")
log = logging.getLogger(__name__)


def _nul_free(value: Any) -> Any:
    """``value`` with every NUL character of its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, Mapping):
        return {key: _nul_free(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_nul_free(item) for item in value)
    return value


class Cursor:
    """What a transaction's work runs its statements on: psycopg's cursor, except that a
    NUL character, which PostgreSQL's text cannot hold but SQLite's keeps (and a status
    page or a message may send), is stored as U+FFFD rather than failing the whole
    transaction on every poll."""

    def __init__(self, cursor: psycopg.AsyncCursor[DictRow]) -> None:
        self._cursor = cursor

    async def execute(self, query: str, params: Params | None = None) -> None:
        await self._cursor.execute(query, _nul_free(params))

    async def fetchone(self) -> DictRow | None:
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[DictRow]:
        return await self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def connection(self) -> Connection:
        return self._cursor.connection


Connection: TypeAlias = psycopg.AsyncConnection[DictRow]

SCHEMA_VERSION = 3
CONNECT_TIMEOUT = 10  # seconds (libpq's connect_timeout is whole seconds)
STATEMENT_TIMEOUT = 10.0  # seconds, as long as SQLite's busy timeout
IDLE_IN_TRANSACTION_TIMEOUT = 60.0  # the server ends a transaction a dead client left open
DEADLINE_MARGIN = 20.0  # the client gives up on a silent server after the timeouts + this
# pg_advisory_xact_lock key that makes writers take turns: "modbotwr" as a 64-bit integer.
WRITE_LOCK = int.from_bytes(b"modbotwr", "big")
# Held shared by every ``modbot run`` on the database (leader or follower), so that
# ``migrate-store`` can tell, by trying it exclusively, that none is running.
RUNNING_LOCK = int.from_bytes(b"modbotrn", "big")
LEASE_TIMEOUT = 5.0  # seconds for one lease query: longer means the session is lost
# Leases are stamped and judged by the server's clock, never by the machines' own.
SERVER_NOW = "extract(epoch from clock_timestamp())"
MEMBER_FORGOTTEN = 86_400.0  # a follower silent this long is forgotten
ANNOUNCED = "(announce OR forced)"
# Rows the deliverer must look at: the same expression as the partial index below (see
# machine.is_active).
ACTIVE = (
    "(state IN ('pending', 'posting') "
    "OR (state = 'posted' AND delivered_hash IS DISTINCT FROM wanted_hash))"
)
TIME = "DOUBLE PRECISION"  # seconds since the epoch, as SQLite's REAL (8 bytes)
# ``seq`` plays SQLite's implicit rowid (the order rows were first written): listings
# break ties as SQLite does, by rowid after a sort and backwards along a reversed index.

WIKI_TABLE = f"""
CREATE TABLE wiki_revisions (
    watch TEXT NOT NULL,
    page TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    author TEXT,
    revised_at {TIME} NOT NULL,
    content TEXT NOT NULL,
    outcome TEXT NOT NULL,
    notice TEXT NOT NULL DEFAULT 'none',
    decided_at {TIME} NOT NULL,
    PRIMARY KEY (watch, page, revision_id)
);
"""

LEADERSHIP_TABLES = f"""
CREATE TABLE leadership (
    deployment TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    host TEXT,
    pid INTEGER,
    since {TIME},
    seen_at {TIME}
);
CREATE TABLE members (
    deployment TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since {TIME} NOT NULL,
    seen_at {TIME} NOT NULL,
    PRIMARY KEY (deployment, host, pid)
);
"""

SCHEMA = f"""
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE feeds (
    watch TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    baseline_at TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    digest TEXT,
    page_name TEXT,
    page_url TEXT
);
CREATE TABLE incidents (
    watch TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    view TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    announce BOOLEAN NOT NULL,
    forced BOOLEAN NOT NULL DEFAULT FALSE,
    is_open BOOLEAN NOT NULL,
    rendered TEXT,
    rendered_hash TEXT,
    render_error TEXT,
    first_seen {TIME} NOT NULL,
    changed_at {TIME} NOT NULL,
    closed_at {TIME},
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (watch, incident_id)
);
CREATE INDEX incidents_open ON incidents (watch) WHERE is_open AND {ANNOUNCED};
CREATE INDEX incidents_closed ON incidents (watch, closed_at, seq)
    WHERE closed_at IS NOT NULL AND {ANNOUNCED};
CREATE INDEX incidents_unrendered ON incidents (watch)
    WHERE rendered_hash IS NULL AND render_error IS NULL AND {ANNOUNCED};
CREATE TABLE notes (
    watch TEXT NOT NULL,
    note_id TEXT NOT NULL,
    text TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at {TIME} NOT NULL,
    cut_chars INTEGER NOT NULL DEFAULT 0,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (watch, note_id)
);
CREATE INDEX notes_created ON notes (watch, created_at, seq);
CREATE TABLE deliveries (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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
    delivered_at {TIME},
    intent_at {TIME},
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before {TIME} NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at {TIME} NOT NULL DEFAULT 0,
    epoch BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX deliveries_placed ON deliveries (watch, kind, key, thread_id)
    WHERE thread_id IS NOT NULL;
CREATE UNIQUE INDEX deliveries_unplaced ON deliveries (watch, kind, key) WHERE thread_id IS NULL;
CREATE INDEX deliveries_subject ON deliveries (watch, kind, key);
CREATE INDEX deliveries_thread ON deliveries (watch, thread_id);
CREATE INDEX deliveries_comment ON deliveries (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX deliveries_active ON deliveries (watch) WHERE {ACTIVE};
CREATE TABLE commands (
    message_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    command TEXT NOT NULL,
    argument TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    reply_state TEXT NOT NULL DEFAULT 'none',
    marked_read BOOLEAN NOT NULL DEFAULT FALSE,
    received_at {TIME} NOT NULL,
    done_at {TIME}
);
CREATE TABLE health (
    watch TEXT PRIMARY KEY,
    last_poll_at {TIME},
    last_poll_ok BOOLEAN NOT NULL DEFAULT FALSE,
    last_poll_message TEXT NOT NULL DEFAULT '',
    last_good_poll_at {TIME},
    last_reddit_ok_at {TIME},
    last_error_at {TIME},
    last_error_kind TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    paused_by TEXT NOT NULL DEFAULT '',
    paused_at {TIME},
    megathread_id TEXT,
    megathread_title TEXT,
    megathread_permalink TEXT,
    megathread_at {TIME},
    templates TEXT NOT NULL DEFAULT '',
    templates_at {TIME},
    source_kind TEXT NOT NULL DEFAULT ''
);
{WIKI_TABLE}
{LEADERSHIP_TABLES}
"""
MODBOT_TABLES = (
    "schema_version",
    "feeds",
    "incidents",
    "notes",
    "deliveries",
    "commands",
    "health",
    "wiki_revisions",
    "leadership",
    "members",
)
# The tables ``migrate-store`` copies (the rest describe the server, not the bot), in an
# order that keeps each table's rows in the order they were written.
COPIED_TABLES = {
    "feeds": "watch",
    "incidents": "seq",
    "notes": "seq",
    "deliveries": "id",
    "commands": "received_at, message_id",
    "health": "watch",
    "wiki_revisions": "decided_at, watch, page, revision_id",
}
INTERNAL_COLUMNS = frozenset({"seq", "epoch"})  # PostgreSQL's own bookkeeping


async def _v2(cursor: Cursor) -> None:
    """Templates kept on the subreddit wiki: each revision's verdict and message."""
    await cursor.execute(WIKI_TABLE)


async def _v3(cursor: Cursor) -> None:
    """Several processes on one database: the leader, its epoch, the followers, and the
    epoch each delivery intent was written under."""
    for statement in LEADERSHIP_TABLES.split(";"):
        if statement.strip():
            await cursor.execute(statement)
    await cursor.execute("ALTER TABLE deliveries ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0")


# The step that brings the schema from version N-1 to N.
MIGRATIONS: dict[int, Callable[[Cursor], Awaitable[None]]] = {2: _v2, 3: _v3}

DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryRow))
COMMAND_FIELDS = tuple(f.name for f in fields(CommandRow))
NOTE_FIELDS = tuple(f.name for f in fields(NoteRow))
INCIDENT_FIELDS = tuple(f.name for f in fields(IncidentRow))
WIKI_FIELDS = tuple(f.name for f in fields(WikiRow))
HEALTH_FIELDS = (
    "last_poll_at",
    "last_poll_ok",
    "last_poll_message",
    "last_good_poll_at",
    "last_reddit_ok_at",
    "last_error_at",
    "last_error_kind",
    "last_error",
    "paused",
    "paused_by",
    "paused_at",
    "megathread_id",
    "megathread_title",
    "megathread_permalink",
    "megathread_at",
    "templates",
    "templates_at",
    "source_kind",
)
# Column names come from the dataclasses and tuples above, never from input.
_SELECT_DELIVERIES = f"SELECT {', '.join(DELIVERY_FIELDS)} FROM deliveries"  # noqa: S608
_SELECT_COMMANDS = f"SELECT {', '.join(COMMAND_FIELDS)} FROM commands"  # noqa: S608
_SELECT_NOTES = f"SELECT {', '.join(NOTE_FIELDS)} FROM notes"  # noqa: S608
_SELECT_INCIDENTS = f"SELECT {', '.join(INCIDENT_FIELDS)} FROM incidents"  # noqa: S608
_SELECT_HEALTH = f"SELECT {', '.join(HEALTH_FIELDS)} FROM health"  # noqa: S608
_SELECT_TRACKED = "SELECT incident_id, view, announce FROM incidents"
_STEP_FIELDS = tuple(
    name
    for name in DELIVERY_FIELDS
    if name not in ("id", "watch", "kind", "key", "wanted_hash", "created_at")
)


def _delivery(row: DictRow) -> DeliveryRow:
    return DeliveryRow(**{**row, "kind": Kind(row["kind"])})


def _tracked(rows: list[DictRow]) -> dict[str, Tracked]:
    return {r["incident_id"]: Tracked(view_from_json(r["view"]), bool(r["announce"])) for r in rows}


def _placeholders(names: Collection[str]) -> str:
    return ", ".join(f"%({name})s" for name in names)


class PostgresStore:
    """One PostgreSQL database. Open with ``await PostgresStore.open(url)``; close when
    done. ``url`` is a libpq URL (``postgresql://user:password@host:port/dbname``)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: int = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self._url = url
        self.location = redact_url(url)
        self.connect_timeout = max(2, int(connect_timeout))  # libpq's floor
        self.statement_timeout = statement_timeout
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._fence: tuple[str, int] | None = None  # (deployment, epoch) while leading
        self._shut_out: Connection | None = None  # migrate-store's hold on RUNNING_LOCK

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_timeout: int = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> PostgresStore:
        """Connect, and create or migrate the schema if needed."""
        store = cls(url, connect_timeout=connect_timeout, statement_timeout=statement_timeout)
        try:
            await store._tx(store._migrate, write=True)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (every commit is already durable)."""
        async with self._lock:
            self._closed = True
            await self._forget()

    # --- connection, transactions, errors -------------------------------------------------
    async def _connection(self) -> Connection:
        """The open connection, or a new one when there is none or it broke."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        await self._forget()
        self._conn = await self.connect("modbot")
        return self._conn

    async def connect(self, name: str, **options: Any) -> Connection:
        """A new connection of its own (autocommit, with the statement timeouts)."""
        try:
            given = conninfo_to_dict(self._url)
            extra: dict[str, Any] = dict(options)
            if "connect_timeout" not in given:
                extra["connect_timeout"] = self.connect_timeout
            if "application_name" not in given:
                extra["application_name"] = name
            conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=dict_row, **extra
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the database {self.location}: {self._text(exc)}"
            ) from None
        try:
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, false), "
                "set_config('idle_in_transaction_session_timeout', %s, false)",
                (
                    f"{round(self.statement_timeout * 1000)}ms",
                    f"{round(IDLE_IN_TRANSACTION_TIMEOUT * 1000)}ms",
                ),
            )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _forget(self) -> None:
        """Drop the connection (after a failure its state is unknown)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            # Closing a dead connection: there is nothing left to release.
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.close(), 5.0)

    async def _tx(self, work: Callable[[Cursor], Awaitable[T]], *, write: bool = False) -> T:
        """Run ``work`` in one transaction: a write takes the writers' lock first and
        then sees every earlier commit (read committed: a snapshot would predate the
        lock); a read runs in one read-only snapshot."""
        deadline = self.connect_timeout + self.statement_timeout + DEADLINE_MARGIN
        async with self._lock:
            if self._closed:
                raise StoreError(f"the database {self.location} is closed")
            try:
                async with asyncio.timeout(deadline):
                    conn = await self._connection()
                    await conn.set_read_only(not write)
                    await conn.set_isolation_level(
                        psycopg.IsolationLevel.READ_COMMITTED
                        if write
                        else psycopg.IsolationLevel.REPEATABLE_READ
                    )
                    async with conn.transaction(), conn.cursor() as raw:
                        cursor = Cursor(raw)
                        if write:
                            await cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                            await self._check_fence(cursor)
                        return await work(cursor)
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    await self._forget()
                raise self._explain(exc) from None
            except TimeoutError:
                await self._forget()
                raise StoreError(
                    f"the database {self.location} did not answer within {deadline:g} s: the "
                    "server or the network is down or overloaded; the bot tries again"
                ) from None

    def fence(self, deployment: str, epoch: int) -> None:
        """From now on every write must be made under ``epoch`` (see the module doc)."""
        self._fence = (deployment, epoch)

    @property
    def epoch(self) -> int:
        """The epoch this process writes under (0: not a leader; CLI commands)."""
        return self._fence[1] if self._fence else 0

    async def _check_fence(self, cursor: Cursor) -> None:
        """Refuse the write unless this process's epoch is still the current one. Run
        under the writers' lock, which a new leader's epoch bump also takes."""
        if self._fence is None:
            return
        deployment, mine = self._fence
        await cursor.execute("SELECT epoch FROM leadership WHERE deployment = %s", (deployment,))
        row = await cursor.fetchone()
        current = int(row["epoch"]) if row is not None else None
        if current != mine:
            raise Deposed(
                f"another process now leads {deployment} (epoch {current}, this one had "
                f"{mine}): this one stops writing and follows"
            )

    def _text(self, exc: BaseException) -> str:
        """The error's own words on one line, without the query it quotes or a password."""
        primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        return scrub(primary or str(exc), self._url) or type(exc).__name__

    def _explain(self, exc: psycopg.Error) -> StoreError:
        """One line that says what went wrong with the server and what to do about it."""
        text = self._text(exc)
        where = f"the database {self.location}"
        if isinstance(exc, pg_errors.QueryCanceled):
            return StoreError(
                f"{where} is busy: a statement took longer than {self.statement_timeout:g} s "
                f"({text}); another process may hold it, or the server is overloaded"
            )
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreError(
                f"{where} is read-only ({text}): point MODBOT_DATABASE at the primary server"
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(
                f"{where} cannot be written ({text}): modbot's database user needs to own, "
                "or be granted every right on, its tables"
            )
        if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
            return StoreError(
                f"{where}: the server is out of space ({text}); nothing is lost, the bot "
                "keeps what it saw and saves it once it can"
            )
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return StoreError(f"lost the connection to {where} ({text}); the bot tries again")
        return StoreError(f"{where}: {text}")

    # --- schema -----------------------------------------------------------------------------
    async def _migrate(self, cursor: Cursor) -> None:
        await cursor.execute(
            "SELECT c.relname FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
        )
        tables = {r["relname"] for r in await cursor.fetchall()}
        if "schema_version" not in tables:
            taken = sorted(tables & set(MODBOT_TABLES))
            if taken:
                raise StoreError(
                    f"the database {self.location} already has tables named "
                    f"{', '.join(taken)} that modbot did not create (there is no "
                    "schema_version table): give modbot a database, or a schema, of its own"
                )
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    await cursor.execute(statement)  # constants only
            await cursor.execute(
                "INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
            )
            return
        await cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
        )
        if [(c["column_name"], c["data_type"]) for c in await cursor.fetchall()] != [
            ("version", "integer")
        ]:  # another program's migrations (Flyway's was named so): never migrate its tables
            raise StoreError(
                f"the database {self.location} has a schema_version table that is not "
                "modbot's: it is another program's; give modbot a database, or a schema, "
                "of its own"
            )
        await cursor.execute("SELECT max(version) AS version FROM schema_version")
        row = await cursor.fetchone()
        version = int(row["version"]) if row is not None and row["version"] is not None else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database {self.location} was written by a newer modbot (schema "
                f"{version}); upgrade modbot"
            )
        if version < 1:
            raise StoreError(
                f"the database {self.location} has an empty schema_version table: it is not "
                "modbot's, or was damaged; give modbot a database of its own"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await MIGRATIONS[number](cursor)
        if version < SCHEMA_VERSION:
            await cursor.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    async def schema_version(self) -> int:
        """The schema version of the open database."""

        async def query(cursor: Cursor) -> int:
            await cursor.execute("SELECT max(version) AS version FROM schema_version")
            row = await cursor.fetchone()
            return 0 if row is None or row["version"] is None else int(row["version"])

        return await self._tx(query)

    async def integrity_problems(self) -> list[str]:
        """The server keeps its own data sound; what is checked here is that modbot's
        tables are all there (someone may have dropped one)."""

        async def query(cursor: Cursor) -> list[str]:
            await cursor.execute(
                "SELECT name FROM unnest(%s::text[]) AS name "
                "WHERE to_regclass(quote_ident(name)) IS NULL",
                (list(MODBOT_TABLES),),
            )
            return [f"table {r['name']} is missing" for r in await cursor.fetchall()]

        return await self._tx(query)

    async def writable(self) -> None:
        """Raise a ``StoreError`` unless a write transaction can start (rights, a
        read-only standby, the writers' lock)."""

        async def probe(cursor: Cursor) -> None:
            await cursor.execute("UPDATE feeds SET watch = watch WHERE false")

        await self._tx(probe, write=True)

    # --- feeds and incidents ----------------------------------------------------------------
    async def feed_state(self, watch: str) -> FeedState:
        """The page's baseline and validators (empty before the first good poll)."""

        async def query(cursor: Cursor) -> FeedState:
            await cursor.execute(
                "SELECT url, baseline_at, etag, last_modified, digest FROM feeds WHERE watch = %s",
                (watch,),
            )
            row = await cursor.fetchone()
            if row is None:
                return FeedState()
            return FeedState(
                url=row["url"],
                baseline_at=datetime.fromisoformat(row["baseline_at"]),
                validators=Validators(row["etag"], row["last_modified"], row["digest"]),
            )

        return await self._tx(query)

    async def tracked(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """The incidents the bot knows among ``ids``."""
        return await self._tx(self._tracked_among(watch, ids, ""))

    async def announced(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """Announced (or forced) incidents among ``ids``."""
        return await self._tx(self._tracked_among(watch, ids, f" AND {ANNOUNCED}"))

    @staticmethod
    def _tracked_among(
        watch: str, ids: Collection[str], extra: str
    ) -> Callable[[Cursor], Awaitable[dict[str, Tracked]]]:
        async def query(cursor: Cursor) -> dict[str, Tracked]:
            await cursor.execute(
                f"{_SELECT_TRACKED} WHERE watch = %s AND incident_id = ANY(%s){extra}",
                (watch, list(ids)),
            )
            return _tracked(await cursor.fetchall())

        return query

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
    ) -> None:
        """One poll's outcome, atomically: views, bodies, delivery intents, validators."""

        async def save(cursor: Cursor) -> None:
            await cursor.execute(
                """INSERT INTO feeds (watch, url, baseline_at, etag, last_modified, digest,
                                      page_name, page_url)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (watch) DO UPDATE SET
                     url = excluded.url, etag = excluded.etag,
                     last_modified = excluded.last_modified, digest = excluded.digest,
                     page_name = COALESCE(excluded.page_name, feeds.page_name),
                     page_url = COALESCE(excluded.page_url, feeds.page_url)""",
                (
                    watch,
                    url,
                    baseline_at.isoformat(),
                    validators.etag,
                    validators.last_modified,
                    validators.digest,
                    page.name if page else None,
                    page.url if page else None,
                ),
            )
            for tracked in changed.values():
                await self._save_incident(cursor, watch, tracked, now)
            await self._save_renders(cursor, watch, rendered, render_errors)
            for incident_id, tracked in changed.items():
                if tracked.announce:
                    await self._want(cursor, watch, Kind.INCIDENT, incident_id, now)

        await self._tx(save, write=True)

    @staticmethod
    async def _save_incident(cursor: Cursor, watch: str, tracked: Tracked, now: float) -> None:
        view = tracked.view
        await cursor.execute(
            """INSERT INTO incidents (watch, incident_id, view, name, status, announce, is_open,
                                      first_seen, changed_at, closed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (watch, incident_id) DO UPDATE SET
                 view = excluded.view, name = excluded.name, status = excluded.status,
                 announce = excluded.announce, is_open = excluded.is_open,
                 changed_at = excluded.changed_at,
                 closed_at = CASE WHEN excluded.is_open THEN NULL
                                  ELSE COALESCE(incidents.closed_at, excluded.closed_at) END""",
            (
                watch,
                view.id,
                view_to_json(view),
                view.name,
                view.status,
                tracked.announce,
                view.is_open,
                now,
                now,
                None if view.is_open else now,
            ),
        )

    @staticmethod
    async def _want(cursor: Cursor, watch: str, kind: Kind, key: str, now: float) -> None:
        """A pending, unplaced delivery for a subject that has no delivery row yet."""
        await cursor.execute(
            """INSERT INTO deliveries (watch, kind, key, state, wanted_hash, created_at)
               SELECT %(watch)s, %(kind)s, %(key)s, 'pending', NULL, %(now)s
               WHERE NOT EXISTS (SELECT 1 FROM deliveries
                                 WHERE watch = %(watch)s AND kind = %(kind)s AND key = %(key)s)""",
            {"watch": watch, "kind": kind.value, "key": key, "now": now},
        )
        await PostgresStore._sync_wanted(cursor, watch, kind, key)

    @staticmethod
    async def _sync_wanted(cursor: Cursor, watch: str, kind: Kind, key: str) -> None:
        """Copy the subject's current body hash onto its rows (the active index needs it)."""
        source = (
            "SELECT rendered_hash FROM incidents WHERE watch = %(watch)s AND incident_id = %(key)s"
            if kind is Kind.INCIDENT
            else "SELECT body_hash FROM notes WHERE watch = %(watch)s AND note_id = %(key)s"
        )
        await cursor.execute(
            f"UPDATE deliveries SET wanted_hash = ({source}) "  # noqa: S608 - literals only
            "WHERE watch = %(watch)s AND kind = %(kind)s AND key = %(key)s",
            {"watch": watch, "kind": kind.value, "key": key},
        )

    async def save_renders(
        self, watch: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
    ) -> None:
        """Re-rendered bodies (after a template change or a refresh)."""

        async def save(cursor: Cursor) -> None:
            await self._save_renders(cursor, watch, rendered, errors)

        await self._tx(save, write=True)

    @staticmethod
    async def _save_renders(
        cursor: Cursor,
        watch: str,
        rendered: Mapping[str, Rendered],
        errors: Mapping[str, str],
    ) -> None:
        for incident_id, body in rendered.items():
            await cursor.execute(
                "UPDATE incidents SET rendered = %s, rendered_hash = %s, render_error = NULL "
                "WHERE watch = %s AND incident_id = %s",
                (body.body, body.digest, watch, incident_id),
            )
            await PostgresStore._sync_wanted(cursor, watch, Kind.INCIDENT, incident_id)
        for incident_id, error in errors.items():
            await cursor.execute(
                "UPDATE incidents SET render_error = %s WHERE watch = %s AND incident_id = %s",
                (error, watch, incident_id),
            )

    async def rerender_scope(
        self, watch: str, *, closed_since: float, thread_id: str | None
    ) -> dict[str, Tracked]:
        """Open incidents, and those closed since ``closed_since`` with a comment in
        ``thread_id``: what readers still see."""

        async def query(cursor: Cursor) -> dict[str, Tracked]:
            await cursor.execute(
                f"{_SELECT_TRACKED} WHERE watch = %s AND is_open AND {ANNOUNCED}", (watch,)
            )
            rows = await cursor.fetchall()
            if thread_id is not None:
                await cursor.execute(
                    f"{_SELECT_TRACKED} i "  # noqa: S608 - literals only
                    f"WHERE watch = %s AND closed_at IS NOT NULL AND {ANNOUNCED} "
                    "AND closed_at >= %s AND EXISTS (SELECT 1 FROM deliveries d "
                    "WHERE d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id "
                    "AND d.thread_id = %s AND d.state IN ('posted', 'posting'))",
                    (watch, closed_since, thread_id),
                )
                rows += await cursor.fetchall()
            return _tracked(rows)

        return await self._tx(query)

    async def in_thread(self, watch: str, thread_id: str) -> dict[str, Tracked]:
        """Every announced incident with a live comment in ``thread_id``."""

        async def query(cursor: Cursor) -> dict[str, Tracked]:
            await cursor.execute(
                "SELECT i.incident_id, i.view, i.announce FROM deliveries d "
                "JOIN incidents i ON i.watch = d.watch AND i.incident_id = d.key "
                "WHERE d.watch = %s AND d.thread_id = %s AND d.kind = 'inc' "
                "AND d.state IN ('posted', 'posting') ORDER BY d.id",
                (watch, thread_id),
            )
            return _tracked(await cursor.fetchall())

        return await self._tx(query)

    async def force(self, watch: str, tracked: Tracked, *, now: float) -> None:
        """Post ``tracked`` whatever the rules say (a moderator asked for it)."""

        async def save(cursor: Cursor) -> None:
            view = tracked.view
            await cursor.execute(
                """INSERT INTO incidents (watch, incident_id, view, name, status, announce,
                                          forced, is_open, first_seen, changed_at, closed_at)
                   VALUES (%s, %s, %s, %s, %s, FALSE, TRUE, %s, %s, %s, %s)
                   ON CONFLICT (watch, incident_id) DO UPDATE SET forced = TRUE""",
                (
                    watch,
                    view.id,
                    view_to_json(view),
                    view.name,
                    view.status,
                    view.is_open,
                    now,
                    now,
                    None if view.is_open else now,
                ),
            )
            await self._want(cursor, watch, Kind.INCIDENT, view.id, now)

        await self._tx(save, write=True)

    async def adopt_known(self, watch: str, ids: Collection[str]) -> int:
        """Incidents among ``ids`` that the bot has a comment for (found by its marker) but
        took as a baseline (a fresh state): deliver them again, so that comment is kept
        current. Returns how many."""

        async def save(cursor: Cursor) -> int:
            await cursor.execute(
                "SELECT incident_id FROM incidents WHERE watch = %s "
                "AND incident_id = ANY(%s) AND NOT announce AND NOT forced",
                (watch, list(ids)),
            )
            found = [r["incident_id"] for r in await cursor.fetchall()]
            for incident_id in found:
                await cursor.execute(
                    "UPDATE incidents SET forced = TRUE, closed_at = CASE WHEN NOT is_open "
                    "THEN COALESCE(closed_at, changed_at) END "
                    "WHERE watch = %s AND incident_id = %s",
                    (watch, incident_id),
                )
                await self._want(cursor, watch, Kind.INCIDENT, incident_id, time.time())
            return len(found)

        return await self._tx(save, write=True)

    async def unrendered(self, watch: str) -> dict[str, Tracked]:
        """Incidents to post about that have no body yet (and no template error)."""

        async def query(cursor: Cursor) -> dict[str, Tracked]:
            await cursor.execute(
                f"{_SELECT_TRACKED} WHERE watch = %s AND rendered_hash IS NULL "
                f"AND render_error IS NULL AND {ANNOUNCED}",
                (watch,),
            )
            return _tracked(await cursor.fetchall())

        return await self._tx(query)

    async def open_incidents(self, watch: str) -> list[IncidentRow]:
        """Announced incidents still open, newest first."""
        return await self._incidents(
            f"WHERE watch = %s AND is_open AND {ANNOUNCED} ORDER BY first_seen DESC, seq", (watch,)
        )

    async def recent_settled(self, watch: str, limit: int) -> list[IncidentRow]:
        """The ``limit`` most recently closed announced incidents."""
        return await self._incidents(
            f"WHERE watch = %s AND closed_at IS NOT NULL AND {ANNOUNCED} "
            "ORDER BY closed_at DESC, seq DESC LIMIT %s",
            (watch, limit),
        )

    async def _incidents(self, where: str, values: tuple[Any, ...]) -> list[IncidentRow]:
        async def query(cursor: Cursor) -> list[IncidentRow]:
            await cursor.execute(f"{_SELECT_INCIDENTS} {where}", values)
            return [IncidentRow(**r) for r in await cursor.fetchall()]

        return await self._tx(query)

    # --- deliveries -------------------------------------------------------------------------
    async def work(self, watch: str, keys: Collection[tuple[Kind, str]] | None = None) -> Work:
        """Open incidents and active deliveries, with their rows (only ``keys``, if given)."""
        wanted = None if keys is None else frozenset(keys)

        async def query(cursor: Cursor) -> Work:
            await cursor.execute(f"{_SELECT_DELIVERIES} WHERE watch = %s AND {ACTIVE}", (watch,))
            rows = {r["id"]: _delivery(r) for r in await cursor.fetchall()}
            subjects: dict[tuple[Kind, str], Subject] = {}
            await cursor.execute(
                "SELECT incident_id, rendered_hash FROM incidents "  # noqa: S608 - literals only
                f"WHERE watch = %s AND is_open AND {ANNOUNCED}",
                (watch,),
            )
            for r in await cursor.fetchall():
                key = (Kind.INCIDENT, r["incident_id"])
                subjects[key] = Subject(Kind.INCIDENT, r["incident_id"], True, r["rendered_hash"])
            await cursor.execute(
                f"SELECT {', '.join('d.' + name for name in DELIVERY_FIELDS)} "  # noqa: S608
                "FROM incidents i JOIN deliveries d "
                "ON d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id "
                f"WHERE i.watch = %s AND i.is_open AND (i.announce OR i.forced)",
                (watch,),
            )
            for r in await cursor.fetchall():
                rows[r["id"]] = _delivery(r)
            missing = {(row.kind, row.key) for row in rows.values()} - subjects.keys()
            subjects.update(await self._subjects(cursor, watch, missing))
            if wanted is not None:
                subjects = {k: v for k, v in subjects.items() if k in wanted}
            chosen = [row for row in rows.values() if (row.kind, row.key) in subjects]
            return Work(subjects=subjects, rows=sorted(chosen, key=lambda row: row.id))

        return await self._tx(query)

    @staticmethod
    async def _subjects(
        cursor: Cursor, watch: str, keys: Collection[tuple[Kind, str]]
    ) -> dict[tuple[Kind, str], Subject]:
        found: dict[tuple[Kind, str], Subject] = {}
        incidents = [key for kind, key in keys if kind is Kind.INCIDENT]
        notes = [key for kind, key in keys if kind is Kind.NOTE]
        if incidents:
            await cursor.execute(
                "SELECT incident_id, is_open, rendered_hash FROM incidents "
                "WHERE watch = %s AND incident_id = ANY(%s)",
                (watch, incidents),
            )
            for r in await cursor.fetchall():
                key = r["incident_id"]
                found[(Kind.INCIDENT, key)] = Subject(
                    Kind.INCIDENT, key, bool(r["is_open"]), r["rendered_hash"]
                )
        if notes:
            await cursor.execute(
                "SELECT note_id, body_hash FROM notes WHERE watch = %s AND note_id = ANY(%s)",
                (watch, notes),
            )
            for r in await cursor.fetchall():
                found[(Kind.NOTE, r["note_id"])] = Subject(
                    Kind.NOTE, r["note_id"], False, r["body_hash"]
                )
        return found

    async def body(self, watch: str, kind: Kind, key: str) -> Rendered | None:
        """The body a subject's comment should show now."""

        async def query(cursor: Cursor) -> Rendered | None:
            sql = (
                "SELECT rendered AS body, rendered_hash AS digest FROM incidents "
                "WHERE watch = %s AND incident_id = %s"
                if kind is Kind.INCIDENT
                else "SELECT body, body_hash AS digest FROM notes WHERE watch = %s AND note_id = %s"
            )
            await cursor.execute(sql, (watch, key))
            r = await cursor.fetchone()
            if r is None or r["body"] is None or r["digest"] is None:
                return None
            return Rendered(r["body"], r["digest"])

        return await self._tx(query)

    async def deliveries(self, watch: str, kind: Kind, keys: Collection[str]) -> list[DeliveryRow]:
        """Every delivery row of these subjects, oldest first."""

        async def query(cursor: Cursor) -> list[DeliveryRow]:
            await cursor.execute(
                f"{_SELECT_DELIVERIES} WHERE watch = %s AND kind = %s AND key = ANY(%s) "
                "ORDER BY id",
                (watch, kind.value, list(keys)),
            )
            return [_delivery(r) for r in await cursor.fetchall()]

        return await self._tx(query)

    async def start_delivery(
        self, watch: str, kind: Kind, key: str, thread_id: str, *, now: float
    ) -> DeliveryRow | None:
        """A new ``pending`` row for a subject in ``thread_id`` (None if one exists)."""

        async def insert(cursor: Cursor) -> DeliveryRow | None:
            await cursor.execute(
                "INSERT INTO deliveries (watch, kind, key, state, thread_id, created_at, epoch) "
                "VALUES (%s, %s, %s, 'pending', %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (watch, kind.value, key, thread_id, now, self.epoch),
            )
            inserted = await cursor.fetchone()
            if inserted is None:
                return None
            await self._sync_wanted(cursor, watch, kind, key)
            await cursor.execute(f"{_SELECT_DELIVERIES} WHERE id = %s", (inserted["id"],))
            row = await cursor.fetchone()
            assert row is not None
            return _delivery(row)

        return await self._tx(insert, write=True)

    async def step(self, before: DeliveryRow, after: DeliveryRow) -> bool:
        """Write ``after`` if the row is still ``before`` (same version); False if not."""
        values = {name: getattr(after, name) for name in _STEP_FIELDS}
        assignments = ", ".join(f"{name} = %({name})s" for name in _STEP_FIELDS)

        async def write(cursor: Cursor) -> bool:
            try:
                async with cursor.connection.transaction():  # a savepoint
                    await cursor.execute(
                        f"UPDATE deliveries SET {assignments}, epoch = %(epoch)s "  # noqa: S608
                        "WHERE id = %(id)s AND version = %(expected)s",
                        {
                            **values,
                            "id": before.id,
                            "expected": before.version,
                            "epoch": self.epoch,
                        },
                    )
            except pg_errors.UniqueViolation:
                return False  # another row already holds that thread for this subject
            return cursor.rowcount == 1

        return await self._tx(write, write=True)

    # --- notices ----------------------------------------------------------------------------
    async def add_note(self, note: NoteRow) -> tuple[NoteRow, bool]:
        """Record a notice and its delivery intent; the stored row and whether it is new."""

        async def save(cursor: Cursor) -> tuple[NoteRow, bool]:
            new = await self._insert_note(cursor, note)
            stored = await self._note(cursor, note.watch, note.note_id)
            assert stored is not None
            return stored, new

        return await self._tx(save, write=True)

    @staticmethod
    async def _insert_note(cursor: Cursor, note: NoteRow) -> bool:
        await cursor.execute(
            f"INSERT INTO notes ({', '.join(NOTE_FIELDS)}) "  # noqa: S608 - literals only
            f"VALUES ({_placeholders(NOTE_FIELDS)}) ON CONFLICT DO NOTHING",
            dict(zip(NOTE_FIELDS, astuple(note), strict=True)),
        )
        new = cursor.rowcount == 1
        if new:
            await PostgresStore._want(cursor, note.watch, Kind.NOTE, note.note_id, note.created_at)
        return new

    @staticmethod
    async def _note(cursor: Cursor, watch: str, note_id: str) -> NoteRow | None:
        await cursor.execute(f"{_SELECT_NOTES} WHERE watch = %s AND note_id = %s", (watch, note_id))
        r = await cursor.fetchone()
        return None if r is None else NoteRow(**r)

    async def note(self, watch: str, note_id: str) -> NoteRow | None:
        """One notice."""

        async def query(cursor: Cursor) -> NoteRow | None:
            return await self._note(cursor, watch, note_id)

        return await self._tx(query)

    async def note_by_comment(self, comment_id: str) -> NoteRow | None:
        """The notice posted as ``comment_id``."""

        async def query(cursor: Cursor) -> NoteRow | None:
            await cursor.execute(
                "SELECT watch, key FROM deliveries WHERE comment_id = %s AND kind = 'note' "
                "ORDER BY id LIMIT 1",
                (comment_id,),
            )
            r = await cursor.fetchone()
            return None if r is None else await self._note(cursor, r["watch"], r["key"])

        return await self._tx(query)

    async def edit_note(self, note: NoteRow) -> None:
        """New words (and body) for a notice; the deliverer edits its comment."""

        async def save(cursor: Cursor) -> None:
            await cursor.execute(
                "UPDATE notes SET text = %s, body = %s, body_hash = %s, cut_chars = %s "
                "WHERE watch = %s AND note_id = %s",
                (note.text, note.body, note.body_hash, note.cut_chars, note.watch, note.note_id),
            )
            await self._sync_wanted(cursor, note.watch, Kind.NOTE, note.note_id)

        await self._tx(save, write=True)

    async def recent_notes(self, watch: str, limit: int) -> list[NoteRow]:
        """The newest notices."""

        async def query(cursor: Cursor) -> list[NoteRow]:
            await cursor.execute(
                f"{_SELECT_NOTES} WHERE watch = %s ORDER BY created_at DESC, seq DESC LIMIT %s",
                (watch, limit),
            )
            return [NoteRow(**r) for r in await cursor.fetchall()]

        return await self._tx(query)

    # --- inbox commands ---------------------------------------------------------------------
    async def claim_command(
        self, row: CommandRow, note: NoteRow | None = None
    ) -> tuple[CommandRow, bool]:
        """Record a received command (with a notice's intent, atomically)."""

        async def save(cursor: Cursor) -> tuple[CommandRow, bool]:
            await cursor.execute(
                f"INSERT INTO commands ({', '.join(COMMAND_FIELDS)}) "  # noqa: S608
                f"VALUES ({_placeholders(COMMAND_FIELDS)}) ON CONFLICT DO NOTHING",
                dict(zip(COMMAND_FIELDS, astuple(row), strict=True)),
            )
            new = cursor.rowcount == 1
            if new and note is not None:
                await self._insert_note(cursor, note)
            stored = await self._command(cursor, row.message_id)
            assert stored is not None
            return stored, new

        return await self._tx(save, write=True)

    async def command(self, message_id: str) -> CommandRow | None:
        """One received command."""

        async def query(cursor: Cursor) -> CommandRow | None:
            return await self._command(cursor, message_id)

        return await self._tx(query)

    @staticmethod
    async def _command(cursor: Cursor, message_id: str) -> CommandRow | None:
        await cursor.execute(f"{_SELECT_COMMANDS} WHERE message_id = %s", (message_id,))
        r = await cursor.fetchone()
        return None if r is None else CommandRow(**r)

    async def finish_command(self, message_id: str, state: str, result: str, now: float) -> None:
        """Record what a command did."""
        await self._write(
            "UPDATE commands SET state = %s, result = %s, done_at = %s WHERE message_id = %s",
            (state, result, now, message_id),
        )

    async def reply_state(self, message_id: str, state: str) -> None:
        """Record how far the reply got (``sending``, ``sent``, ``none``)."""
        await self._write(
            "UPDATE commands SET reply_state = %s WHERE message_id = %s", (state, message_id)
        )

    async def command_read(self, message_id: str) -> None:
        """Record that the message was marked read."""
        await self._write(
            "UPDATE commands SET marked_read = TRUE WHERE message_id = %s", (message_id,)
        )

    async def _write(self, sql: str, values: tuple[Any, ...]) -> None:
        async def write(cursor: Cursor) -> None:
            await cursor.execute(sql, values)

        await self._tx(write, write=True)

    # --- health -----------------------------------------------------------------------------
    async def health(self, watch: str) -> Health:
        """The watch's health record."""

        async def query(cursor: Cursor) -> Health:
            await cursor.execute(f"{_SELECT_HEALTH} WHERE watch = %s", (watch,))
            r = await cursor.fetchone()
            await cursor.execute("SELECT page_name, page_url FROM feeds WHERE watch = %s", (watch,))
            page = await cursor.fetchone()
            info = (
                PageInfo(page["page_name"], page["page_url"])
                if page is not None and page["page_url"]
                else None
            )
            return _health(watch, r, info)

        return await self._tx(query)

    async def record_poll(
        self, watch: str, *, ok: bool, message: str, now: float, kind: str = ""
    ) -> None:
        """The outcome of one poll (``kind``: the vendor the source reads, once known)."""
        good = ", last_good_poll_at = %(now)s" if ok else ""
        good += ", source_kind = %(kind)s" if kind else ""
        error = (
            ""
            if ok
            else ", last_error_at = %(now)s, last_error_kind = 'status page', "
            "last_error = %(message)s"
        )
        await self._health_write(
            watch,
            "last_poll_at = %(now)s, last_poll_ok = %(ok)s, "
            f"last_poll_message = %(message)s{good}{error}",
            {"now": now, "ok": ok, "message": message, "kind": kind},
        )

    async def record_reddit(self, watch: str, *, error: str | None, kind: str, now: float) -> None:
        """A good Reddit call (``error`` None) or a failed one."""
        if error is None:
            await self._health_write(watch, "last_reddit_ok_at = %(now)s", {"now": now})
        else:
            await self._health_write(
                watch,
                "last_error_at = %(now)s, last_error_kind = %(kind)s, last_error = %(error)s",
                {"now": now, "kind": kind, "error": error},
            )

    async def record_megathread(self, watch: str, thread: Thread | None, now: float) -> None:
        """The megathread in use."""
        await self._health_write(
            watch,
            "megathread_id = %(id)s, megathread_title = %(title)s, "
            "megathread_permalink = %(permalink)s, megathread_at = %(now)s",
            {
                "id": thread.id if thread else None,
                "title": thread.title if thread else None,
                "permalink": thread.permalink if thread else None,
                "now": now,
            },
        )

    async def set_paused(self, watch: str, paused: bool, *, by: str, now: float) -> None:
        """Pause or resume posting."""
        await self._health_write(
            watch,
            "paused = %(paused)s, paused_by = %(by)s, paused_at = %(now)s",
            {"paused": paused, "by": by, "now": now},
        )

    async def record_templates(self, watch: str, templates: str, now: float) -> None:
        """Which templates the watch renders with (and why, when not the configured ones)."""
        await self._health_write(
            watch,
            "templates = %(templates)s, templates_at = %(now)s",
            {"templates": templates, "now": now},
        )

    async def _health_write(self, watch: str, assignments: str, values: dict[str, Any]) -> None:
        async def write(cursor: Cursor) -> None:
            await cursor.execute(
                "INSERT INTO health (watch) VALUES (%s) ON CONFLICT DO NOTHING", (watch,)
            )
            await cursor.execute(
                f"UPDATE health SET {assignments} WHERE watch = %(watch)s",  # noqa: S608
                {**values, "watch": watch},
            )

        await self._tx(write, write=True)

    # --- wiki templates ---------------------------------------------------------------------
    async def wiki_rows(self, watch: str) -> list[WikiRow]:
        """Every wiki revision decided for the watch, oldest first."""

        async def query(cursor: Cursor) -> list[WikiRow]:
            await cursor.execute(
                f"SELECT {', '.join(WIKI_FIELDS)} FROM wiki_revisions "  # noqa: S608
                "WHERE watch = %s ORDER BY decided_at, revised_at, page, revision_id",
                (watch,),
            )
            return [WikiRow(**r) for r in await cursor.fetchall()]

        return await self._tx(query)

    async def record_wiki(self, row: WikiRow) -> None:
        """Record the decision about one revision (kept: a revision is judged once)."""

        async def write(cursor: Cursor) -> None:
            await cursor.execute(
                f"INSERT INTO wiki_revisions ({', '.join(WIKI_FIELDS)}) "  # noqa: S608
                f"VALUES ({_placeholders(WIKI_FIELDS)}) ON CONFLICT DO NOTHING",
                {name: getattr(row, name) for name in WIKI_FIELDS},
            )

        await self._tx(write, write=True)

    async def claim_wiki_notice(self, watch: str, page: str, revision_id: str) -> bool:
        """Mark the author's message as being sent; False when claimed before."""

        async def claim(cursor: Cursor) -> bool:
            await cursor.execute(
                "UPDATE wiki_revisions SET notice = 'sending' WHERE watch = %s AND page = %s "
                "AND revision_id = %s AND notice = 'none'",
                (watch, page, revision_id),
            )
            return cursor.rowcount == 1

        return await self._tx(claim, write=True)

    async def wiki_notice_sent(self, watch: str, page: str, revision_id: str) -> None:
        """The message went out."""
        await self._write(
            "UPDATE wiki_revisions SET notice = 'sent' WHERE watch = %s AND page = %s "
            "AND revision_id = %s",
            (watch, page, revision_id),
        )

    # --- several processes ------------------------------------------------------------------
    async def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> PgLease:
        """This process's lease on leading ``deployment`` (see ``PgLease``), proven every
        ``interval`` seconds and taken from a leader silent for three of them."""
        return PgLease(self, deployment, host, pid, expiry=lease_expiry(interval))

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """The deployment's leader and the followers seen within three intervals."""

        async def query(cursor: Cursor) -> Leadership | None:
            await cursor.execute(f"SELECT {SERVER_NOW} AS now")
            clock = await cursor.fetchone()
            now = float(clock["now"]) if clock is not None else time.time()
            await cursor.execute(
                "SELECT epoch, host, pid, since, seen_at FROM leadership WHERE deployment = %s",
                (deployment,),
            )
            row = await cursor.fetchone()
            await cursor.execute(
                "SELECT host, pid, since, seen_at FROM members WHERE deployment = %s "
                "AND seen_at >= %s ORDER BY since, host, pid",
                (deployment, now - lease_expiry(interval)),
            )
            followers = tuple(Member(**r) for r in await cursor.fetchall())
            if row is None:
                return Leadership(deployment, 0, None, followers, now) if followers else None
            leader = None
            if row["host"] is not None:
                leader = Member(row["host"], row["pid"], row["since"], row["seen_at"])
            return Leadership(deployment, int(row["epoch"]), leader, followers, now)

        return await self._tx(query)

    async def confirm_lead(self) -> None:
        """Raise ``Deposed`` if another process has led since this one took the lead."""
        if self._fence is not None:
            await self._tx(self._check_fence)

    async def shut_out(self) -> list[Member]:
        """Hold the running lock exclusively, on a session of its own until ``let_in``
        (every ``modbot run`` holds it shared while it runs, leader or follower)."""
        conn = await self.connect("modbot migrate-store")
        try:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS free", (RUNNING_LOCK,))
            row = await cursor.fetchone()
            if row is not None and row["free"]:
                self._shut_out = conn
                return []
            cursor = await conn.execute(
                "SELECT host, pid, since, seen_at FROM leadership WHERE host IS NOT NULL "
                "UNION ALL SELECT host, pid, since, seen_at FROM members ORDER BY seen_at DESC"
            )
            found = [Member(**r) for r in await cursor.fetchall()]
        except psycopg.Error as exc:
            await conn.close()
            raise self._explain(exc) from None
        await conn.close()
        return found[:1] or [Member("?", 0, 0.0, 0.0)]

    async def let_in(self) -> None:
        """End the session that holds the running lock."""
        conn, self._shut_out = self._shut_out, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.close(), LEASE_TIMEOUT)

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the bot's tables, in the order they were written."""

        async def query(cursor: Cursor) -> dict[str, list[dict[str, Any]]]:
            tables: dict[str, list[dict[str, Any]]] = {}
            for table, order in COPIED_TABLES.items():
                await cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608
                tables[table] = [
                    {k: v for k, v in r.items() if k not in INTERNAL_COLUMNS}
                    for r in await cursor.fetchall()
                ]
            return tables

        return await self._tx(query)

    async def import_rows(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Load rows into this empty database, in one transaction."""

        async def load(cursor: Cursor) -> None:
            for table in COPIED_TABLES:
                await cursor.execute(f"SELECT count(*) AS n FROM {table}")  # noqa: S608
                row = await cursor.fetchone()
                if row is not None and row["n"]:
                    raise StoreError(
                        f"the database {self.location} already holds modbot state ({table} "
                        "has rows): migrate-store copies into an empty store only"
                    )
            for table in COPIED_TABLES:
                booleans = await self._boolean_columns(cursor, table)
                for values in tables.get(table, []):
                    names = list(values)
                    row = {
                        n: bool(v) if n in booleans and v is not None else v
                        for n, v in values.items()
                    }
                    await cursor.execute(
                        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
                        f"VALUES ({_placeholders(names)})",
                        row,
                    )
            await cursor.execute(
                "SELECT setval(pg_get_serial_sequence('deliveries', 'id'), "
                "coalesce((SELECT max(id) FROM deliveries), 0) + 1, false)"
            )

        await self._tx(load, write=True)

    @staticmethod
    async def _boolean_columns(cursor: Cursor, table: str) -> set[str]:
        await cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s AND data_type = 'boolean'",
            (table,),
        )
        return {r["column_name"] for r in await cursor.fetchall()}


def _health(watch: str, r: DictRow | None, page: PageInfo | None) -> Health:
    if r is None:
        return Health(watch=watch, page=page)
    thread = None
    if r["megathread_id"]:
        thread = Thread(r["megathread_id"], r["megathread_title"] or "", r["megathread_permalink"])
    return Health(
        watch=watch,
        last_poll_at=r["last_poll_at"],
        last_poll_ok=bool(r["last_poll_ok"]),
        last_poll_message=r["last_poll_message"],
        last_good_poll_at=r["last_good_poll_at"],
        last_reddit_ok_at=r["last_reddit_ok_at"],
        last_error_at=r["last_error_at"],
        last_error_kind=r["last_error_kind"],
        last_error=r["last_error"],
        paused=bool(r["paused"]),
        paused_by=r["paused_by"],
        paused_at=r["paused_at"],
        megathread=thread,
        megathread_at=r["megathread_at"],
        page=page,
        templates=r["templates"],
        templates_at=r["templates_at"],
        source_kind=r["source_kind"],
    )


def lease_expiry(interval: float) -> float:
    """How long a leader may go without proving its lead before a follower deposes it:
    three proofs missed, plus room for one slow query."""
    return 3 * interval + 2.0


def lock_key(deployment: str) -> int:
    """The advisory lock's 64-bit key for a deployment's name."""
    digest = hashlib.blake2b(f"modbot lead {deployment}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgLease:
    """One process's claim on leading a deployment.

    The lock is PostgreSQL's session-level advisory lock, held on a connection that
    does nothing else: the server releases it when that session ends, including when
    the connection dies or is cut. ``holding`` is the leader's regular proof of life
    (it stamps ``seen_at`` with the server's clock); a query that fails or times out
    means the session, and so the lock, may be gone, and the process must stop leading
    at once (it closes the connection to be sure). A leader whose session lives but who
    has not proven its lead for ``expiry`` seconds (a paused or hung process) is
    deposed by the next follower: it ends that session, and the new epoch fences out
    whatever the old leader does when it wakes.
    """

    shared = True

    def __init__(
        self, store: PostgresStore, deployment: str, host: str, pid: int, *, expiry: float
    ) -> None:
        self.store = store
        self.deployment = deployment
        self.key = lock_key(deployment)
        self.host = host
        self.pid = pid
        self.expiry = expiry
        self.epoch: int | None = None
        self._conn: Connection | None = None
        self._since: float | None = None

    async def _connection(self) -> Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        await self._drop()
        # Keepalives make a silent network failure end the session within seconds on
        # this side too, not only when the server notices.
        conn = await self.store.connect(
            "modbot lease",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        try:
            # And on the server's side: a leader whose machine lost power sends no FIN,
            # so without these the server would keep its session, and the lock, for as
            # long as the kernel's defaults say (hours). With them the lock frees within
            # about 15 s and a follower takes over.
            await conn.execute(
                "SELECT set_config('tcp_keepalives_idle', '5', false), "
                "set_config('tcp_keepalives_interval', '2', false), "
                "set_config('tcp_keepalives_count', '3', false), "
                "set_config('tcp_user_timeout', '10000', false)"
            )
            await conn.execute("SELECT pg_advisory_lock_shared(%s)", (RUNNING_LOCK,))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.close(), LEASE_TIMEOUT)

    async def acquire(self, now: float) -> int | None:
        """Try the lock once: the new epoch when this process now leads, else None
        (and the process is recorded as a waiting follower)."""
        try:
            async with asyncio.timeout(2 * LEASE_TIMEOUT + self.store.connect_timeout):
                conn = await self._connection()
                got = await self._try_lock(conn)
                if not got and await self._depose_silent_leader(conn):
                    got = await self._try_lock(conn)
                if not got:
                    await self._wait_as_follower(conn)
                    return None
                epoch = await self._bump(conn)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._drop()
            raise StoreError(
                f"cannot take part in leading {self.deployment} on {self.store.location}: "
                f"{self.store._text(exc)}; trying again"
            ) from None
        self.epoch = epoch
        self.store.fence(self.deployment, epoch)
        return epoch

    async def _try_lock(self, conn: Connection) -> bool:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (self.key,))
        row = await cursor.fetchone()
        return row is not None and bool(row["got"])

    async def _depose_silent_leader(self, conn: Connection) -> bool:
        """End the lock's session if its leader has not proven its lead for ``expiry``
        seconds (by the server's clock); True when it did."""
        cursor = await conn.execute(
            f"SELECT host, pid, {SERVER_NOW} - seen_at AS silent FROM leadership "  # noqa: S608 - SERVER_NOW is a constant
            "WHERE deployment = %s AND host IS NOT NULL",
            (self.deployment,),
        )
        leader = await cursor.fetchone()
        if leader is None or leader["silent"] is None or leader["silent"] <= self.expiry:
            return False
        high, low = divmod(self.key % (1 << 64), 1 << 32)
        cursor = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "mode = 'ExclusiveLock' AND database = (SELECT oid FROM pg_database WHERE "
            "datname = current_database()) AND classid = %s::oid AND objid = %s::oid "
            "AND objsubid = 1",
            (high, low),
        )
        holders = [r["pid"] for r in await cursor.fetchall()]
        for backend in holders:
            log.warning(
                "%s pid %s has not proven its lead of %s for %.0f s (paused or hung?): "
                "ending its database session and taking over",
                leader["host"],
                leader["pid"],
                self.deployment,
                leader["silent"],
            )
            await conn.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
        return bool(holders)

    async def _wait_as_follower(self, conn: Connection) -> None:
        cursor = await conn.execute(
            "INSERT INTO members (deployment, host, pid, since, seen_at) "  # noqa: S608 - SERVER_NOW is a constant
            f"VALUES (%s, %s, %s, {SERVER_NOW}, {SERVER_NOW}) "
            "ON CONFLICT (deployment, host, pid) DO UPDATE SET seen_at = EXCLUDED.seen_at "
            "RETURNING since",
            (self.deployment, self.host, self.pid),
        )
        row = await cursor.fetchone()
        self._since = row["since"] if row is not None else None
        await conn.execute(  # processes that stopped without saying so, long ago
            f"DELETE FROM members WHERE deployment = %s AND seen_at < {SERVER_NOW} - %s",  # noqa: S608 - SERVER_NOW is a constant
            (self.deployment, MEMBER_FORGOTTEN),
        )

    async def _bump(self, conn: Connection) -> int:
        """A new epoch, recorded with this process as leader, under the writers' lock:
        a fenced write either commits before it or sees the new epoch."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            cursor = await conn.execute(
                "INSERT INTO leadership (deployment, epoch, host, pid, since, seen_at) "  # noqa: S608 - SERVER_NOW is a constant
                f"VALUES (%s, 1, %s, %s, {SERVER_NOW}, {SERVER_NOW}) "
                "ON CONFLICT (deployment) DO UPDATE SET "
                "epoch = leadership.epoch + 1, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                "since = EXCLUDED.since, seen_at = EXCLUDED.seen_at RETURNING epoch",
                (self.deployment, self.host, self.pid),
            )
            row = await cursor.fetchone()
            await conn.execute(
                "DELETE FROM members WHERE deployment = %s AND host = %s AND pid = %s",
                (self.deployment, self.host, self.pid),
            )
        assert row is not None
        return int(row["epoch"])

    async def holding(self, now: float) -> bool:
        """True while the lock's session lives and no newer epoch exists."""
        if self.epoch is None or self._conn is None:
            return False
        try:
            async with asyncio.timeout(LEASE_TIMEOUT):
                cursor = await self._conn.execute(
                    f"UPDATE leadership SET seen_at = {SERVER_NOW} WHERE deployment = %s "  # noqa: S608 - SERVER_NOW is a constant
                    "AND epoch = %s RETURNING epoch",
                    (self.deployment, self.epoch),
                )
                still = await cursor.fetchone() is not None
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning(
                "lost the connection that holds the lead of %s (%s)",
                self.deployment,
                self.store._text(exc),
            )
            still = False
        if not still:
            self.epoch = None
            await self._drop()  # the lock goes with the session, if it still lives
        return still

    async def release(self) -> None:
        """Stop leading or waiting: say so, and end the session that holds the lock."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                async with asyncio.timeout(LEASE_TIMEOUT):
                    if self.epoch is not None:
                        await conn.execute(
                            "UPDATE leadership SET host = NULL, pid = NULL WHERE "
                            "deployment = %s AND epoch = %s",
                            (self.deployment, self.epoch),
                        )
                    await conn.execute(
                        "DELETE FROM members WHERE deployment = %s AND host = %s AND pid = %s",
                        (self.deployment, self.host, self.pid),
                    )
        self.epoch = None
        await self._drop()
