"""The bot's state in SQLite: the store port's default implementation.

One file, one connection, owned by one worker thread: every public method is a
coroutine that runs one short transaction on that thread, so a slow disk (a commit
waits for ``fsync``) never stalls the event loop. WAL lets ``modbot status`` read while
``modbot run`` writes; ``synchronous=FULL`` because a lost commit could cost a
duplicate comment; read-then-write goes through ``BEGIN IMMEDIATE`` so two processes
never interleave, and every delivery step is written only if the row still has the
version it was read at.

Work follows open incidents, not history: partial indexes hold the open incidents
and the active delivery rows, and nothing that runs every poll reads anything else.
The schema version lives in ``PRAGMA user_version`` and is migrated on open.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no run lock; migrate-store cannot tell a running bot
    fcntl = None  # type: ignore[assignment]

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
from modbot.errors import StateLost, StoreError
from modbot.ports import FeedState, Work

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
SCHEMA_VERSION = 5
# The tables ``migrate-store`` copies.
COPIED_TABLES = (
    "feeds",
    "incidents",
    "notes",
    "deliveries",
    "commands",
    "health",
    "wiki_revisions",
)
APPLICATION_ID = 0x6D6F6462  # "modb" in the file header: how modbot knows its own files
SQLITE_HEADER = b"SQLite format 3\x00"
# Before version 3 modbot did not mark its files (``APPLICATION_ID``): an unmarked file
# with tables is taken for modbot's only when it has every table of its version, since
# other programs' files may well have a table named ``deliveries`` or ``kv``.
V1_TABLES = frozenset({"pages", "incidents", "comments", "kv"})
UNMARKED_TABLES = {
    1: V1_TABLES,
    2: V1_TABLES | {"notes", "commands"},
    3: frozenset({"feeds", "incidents", "notes", "deliveries", "commands", "health"}),
}
START_FRESH = (
    ": restore it from a backup, or move it away to start fresh (the bot then looks for "
    "its own comments on Reddit before it posts anything)"
)
ANNOUNCED = "(announce = 1 OR forced = 1)"
# Rows the deliverer must look at: the same expression as the partial index below, so
# SQLite can use it (see machine.is_active).
ACTIVE = (
    "(state IN ('pending', 'posting') OR (state = 'posted' AND delivered_hash IS NOT wanted_hash))"
)

SCHEMA = f"""
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
    announce INTEGER NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    is_open INTEGER NOT NULL,
    rendered TEXT,
    rendered_hash TEXT,
    render_error TEXT,
    first_seen REAL NOT NULL,
    changed_at REAL NOT NULL,
    closed_at REAL,
    PRIMARY KEY (watch, incident_id)
);
CREATE INDEX incidents_open ON incidents (watch) WHERE is_open = 1 AND {ANNOUNCED};
CREATE INDEX incidents_closed ON incidents (watch, closed_at)
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
    created_at REAL NOT NULL,
    cut_chars INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (watch, note_id)
);
CREATE INDEX notes_created ON notes (watch, created_at);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
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
    delivered_at REAL,
    intent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL DEFAULT 0
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
    marked_read INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    done_at REAL
);
CREATE TABLE health (
    watch TEXT PRIMARY KEY,
    last_poll_at REAL,
    last_poll_ok INTEGER NOT NULL DEFAULT 0,
    last_poll_message TEXT NOT NULL DEFAULT '',
    last_good_poll_at REAL,
    last_reddit_ok_at REAL,
    last_error_at REAL,
    last_error_kind TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    paused INTEGER NOT NULL DEFAULT 0,
    paused_by TEXT NOT NULL DEFAULT '',
    paused_at REAL,
    megathread_id TEXT,
    megathread_title TEXT,
    megathread_permalink TEXT,
    megathread_at REAL,
    templates TEXT NOT NULL DEFAULT '',
    templates_at REAL,
    source_kind TEXT NOT NULL DEFAULT ''
);
CREATE TABLE wiki_revisions (
    watch TEXT NOT NULL,
    page TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    author TEXT,
    revised_at REAL NOT NULL,
    content TEXT NOT NULL,
    outcome TEXT NOT NULL,
    notice TEXT NOT NULL DEFAULT 'none',
    decided_at REAL NOT NULL,
    PRIMARY KEY (watch, page, revision_id)
);
"""

_ABANDONED: list[sqlite3.Connection] = []  # connections to state files that vanished
DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryRow))
COMMAND_FIELDS = tuple(f.name for f in fields(CommandRow))
NOTE_FIELDS = tuple(f.name for f in fields(NoteRow))
WIKI_FIELDS = tuple(f.name for f in fields(WikiRow))
INCIDENT_FIELDS = tuple(f.name for f in fields(IncidentRow))
# Column names come from the dataclasses above, never from input.
_SELECT_DELIVERIES = f"SELECT {', '.join(DELIVERY_FIELDS)} FROM deliveries"  # noqa: S608
_SELECT_COMMANDS = f"SELECT {', '.join(COMMAND_FIELDS)} FROM commands"  # noqa: S608
_SELECT_NOTES = f"SELECT {', '.join(NOTE_FIELDS)} FROM notes"  # noqa: S608
_SELECT_INCIDENTS = f"SELECT {', '.join(INCIDENT_FIELDS)} FROM incidents"  # noqa: S608
_STEP_FIELDS = tuple(
    name
    for name in DELIVERY_FIELDS
    if name not in ("id", "watch", "kind", "key", "wanted_hash", "created_at")
)


def _delivery(row: sqlite3.Row) -> DeliveryRow:
    data = dict(row)
    data["kind"] = Kind(data["kind"])
    return DeliveryRow(**data)


def _incident(row: sqlite3.Row) -> IncidentRow:
    data = dict(row)
    data["is_open"] = bool(data["is_open"])
    return IncidentRow(**data)


def _command(row: sqlite3.Row) -> CommandRow:
    data = dict(row)
    data["marked_read"] = bool(data["marked_read"])
    return CommandRow(**data)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SqliteStore:
    """One SQLite state file. Open with ``await SqliteStore.open(path)``; close when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modbot-store")
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lost = False
        self._shut_out: Any = None  # the run lock, held exclusively by migrate-store

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating and migrating if needed) the state file at ``path``."""
        store = cls(path)
        try:
            await store._run(store._open)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (every commit is already durable) and its thread."""
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` on the store's thread, translating SQLite errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._guarded, function, *args, **kwargs)
        )

    def _guarded(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except sqlite3.Error as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: sqlite3.Error) -> StoreError:
        """One line that says what went wrong with the file and what to do about it."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        path = self.path
        if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            return StoreError(
                f"state file {path} cannot be written ({text}): check the permissions of the "
                f"file and its folder (SQLite also writes {path.name}-wal and {path.name}-shm "
                "next to it)"
            )
        if code.startswith("SQLITE_FULL") or "disk is full" in text:
            return StoreError(
                f"state file {path}: the disk is full ({text}); free some space: nothing is "
                "lost, the bot keeps what it saw and saves it once it can"
            )
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreError(f"state file {path} is damaged ({text}){START_FRESH}")
        if code.startswith("SQLITE_IOERR"):
            return StoreError(
                f"state file {path} cannot be written ({text}): the disk may be full, failing "
                "or gone; nothing is lost, the bot saves once it can"
            )
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(f"state file {path} is busy ({text}): another process holds it")
        return StoreError(f"state file {path}: {text}")

    # --- connection and schema --------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (only ever used on the store's thread)."""
        if self._db is None:
            raise StoreError(f"state file {self.path} is not open")
        return self._db

    def _open(self) -> None:
        self._refuse_foreign_file()
        self._clear_stale_journal()
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except OSError as exc:
            raise StoreError(f"cannot open the state file {self.path}: {exc}") from None
        db.row_factory = sqlite3.Row
        self._db = db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = FULL")
        self._migrate()
        # Only now: switching to WAL rewrites the header of a file that may not be ours.
        db.execute("PRAGMA journal_mode = WAL")
        self._identity = self._file_identity()

    def _refuse_foreign_file(self) -> None:
        """A file that is not an SQLite database at all is never opened (nor overwritten)."""
        try:
            with self.path.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read the state file {self.path}: {exc}") from None
        if header and header != SQLITE_HEADER:
            raise StoreError(f"{self.path} is not a modbot state file (not SQLite){START_FRESH}")

    def _clear_stale_journal(self) -> None:
        """A missing or empty state file next to a left-over ``-wal`` file: that journal
        belongs to a file that is gone, and replayed onto a new one it would leave a
        damaged half of the old state. It goes; the bot starts fresh and reconciles."""
        if self._file_identity() is not None:
            return
        for suffix in ("-wal", "-shm"):
            stale = Path(f"{self.path}{suffix}")
            if stale.exists():
                stale.unlink()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino) if stat.st_size > 0 else None

    def _check_still_there(self) -> None:
        """Refuse to write when the file was deleted, emptied or replaced under us: the
        writes would go to a file nobody will read, and a restart would post again."""
        if self._identity is not None and self._file_identity() != self._identity:
            self._lost = True
            raise StateLost(
                f"the state file {self.path} was deleted, emptied or replaced while the bot "
                "was running; it stops writing so that nothing is posted twice. Restore the "
                "file from a backup, or restart the bot: it then finds its own comments on "
                "Reddit before it posts anything"
            )

    def _close(self) -> None:
        if self._lost:
            # Closing would checkpoint the journal into whatever now has the file's
            # name (an emptied file: half an old state). Leave the connection open; the
            # process is about to end without closing it.
            _ABANDONED.append(self.db)
        else:
            self.db.close()
        self._db = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises."""
        self._check_still_there()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            # Some errors (a full disk, for one) end the transaction by themselves; a
            # second ROLLBACK would hide them behind "no transaction is active".
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            owner = int(db.execute("PRAGMA application_id").fetchone()[0])
            tables = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not _modbots(owner, version, tables):
                raise StoreError(
                    f"{self.path} is another program's SQLite database, not a modbot state "
                    "file; point MODBOT_DATABASE at a file of modbot's own"
                )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer modbot (schema {version}); upgrade modbot"
                )
            if version == 0:
                _execute_script(db, SCHEMA)
            else:
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[number](db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    async def schema_version(self) -> int:
        """The schema version of the open file."""
        return await self._run(lambda: int(self.db.execute("PRAGMA user_version").fetchone()[0]))

    async def integrity_problems(self) -> list[str]:
        """``PRAGMA quick_check`` findings (O(file), no index cross-check); empty when the
        file is healthy. Commands that write run it first, so a damaged file is never
        written to, and nothing is posted on its word."""

        def check() -> list[str]:
            rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check")]
            return [] if rows == ["ok"] else rows

        return await self._run(check)

    async def writable(self) -> None:
        """Raise a ``StoreError`` unless a write transaction can start (permissions, locks)."""

        def probe() -> None:
            with self._tx() as db:
                db.execute("UPDATE feeds SET watch = watch WHERE 0")

        await self._run(probe)

    # --- feeds and incidents ----------------------------------------------------------------
    async def feed_state(self, watch: str) -> FeedState:
        """The page's baseline and validators (empty before the first good poll)."""
        return await self._run(self._feed_state, watch)

    def _feed_state(self, watch: str) -> FeedState:
        row = self.db.execute("SELECT * FROM feeds WHERE watch = ?", (watch,)).fetchone()
        if row is None:
            return FeedState()
        return FeedState(
            url=row["url"],
            baseline_at=datetime.fromisoformat(row["baseline_at"]),
            validators=Validators(row["etag"], row["last_modified"], row["digest"]),
        )

    async def tracked(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """The incidents the bot knows among ``ids``."""
        return await self._run(self._tracked, watch, tuple(ids), "")

    def _tracked(self, watch: str, ids: tuple[str, ...], extra: str) -> dict[str, Tracked]:
        found: dict[str, Tracked] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT incident_id, view, announce FROM incidents "  # noqa: S608 - literals only
                f"WHERE watch = ? AND incident_id IN ({_marks(len(chunk))}){extra}",
                (watch, *chunk),
            )
            for r in rows:
                found[r["incident_id"]] = Tracked(view_from_json(r["view"]), bool(r["announce"]))
        return found

    async def announced(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """Announced (or forced) incidents among ``ids``."""
        return await self._run(self._tracked, watch, tuple(ids), f" AND {ANNOUNCED}")

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
        await self._run(
            self._save_poll,
            watch,
            url=url,
            changed=changed,
            rendered=rendered,
            render_errors=render_errors,
            validators=validators,
            baseline_at=baseline_at,
            page=page,
            now=now,
        )

    def _save_poll(
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
        with self._tx() as db:
            db.execute(
                """INSERT INTO feeds (watch, url, baseline_at, etag, last_modified, digest,
                                      page_name, page_url)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
                self._save_incident(db, watch, tracked, now)
            self._save_renders(db, watch, rendered, render_errors)
            for incident_id, tracked in changed.items():
                if tracked.announce:
                    self._want(db, watch, Kind.INCIDENT, incident_id, now)

    @staticmethod
    def _save_incident(db: sqlite3.Connection, watch: str, tracked: Tracked, now: float) -> None:
        view = tracked.view
        closed_at = None if view.is_open else now
        db.execute(
            """INSERT INTO incidents (watch, incident_id, view, name, status, announce, is_open,
                                      first_seen, changed_at, closed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (watch, incident_id) DO UPDATE SET
                 view = excluded.view, name = excluded.name, status = excluded.status,
                 announce = excluded.announce, is_open = excluded.is_open,
                 changed_at = excluded.changed_at,
                 closed_at = CASE WHEN excluded.is_open = 1 THEN NULL
                                  ELSE COALESCE(incidents.closed_at, excluded.closed_at) END""",
            (
                watch,
                view.id,
                view_to_json(view),
                view.name,
                view.status,
                int(tracked.announce),
                int(view.is_open),
                now,
                now,
                closed_at,
            ),
        )

    @staticmethod
    def _want(db: sqlite3.Connection, watch: str, kind: Kind, key: str, now: float) -> None:
        """A pending, unplaced delivery for a subject that has no delivery row yet."""
        db.execute(
            """INSERT INTO deliveries (watch, kind, key, state, wanted_hash, created_at)
               SELECT ?, ?, ?, 'pending', NULL, ?
               WHERE NOT EXISTS (SELECT 1 FROM deliveries
                                 WHERE watch = ? AND kind = ? AND key = ?)""",
            (watch, kind.value, key, now, watch, kind.value, key),
        )
        SqliteStore._sync_wanted(db, watch, kind, key)

    @staticmethod
    def _sync_wanted(db: sqlite3.Connection, watch: str, kind: Kind, key: str) -> None:
        """Copy the subject's current body hash onto its rows (the active index needs it)."""
        source = (
            "SELECT rendered_hash FROM incidents WHERE watch = ?1 AND incident_id = ?3"
            if kind is Kind.INCIDENT
            else "SELECT body_hash FROM notes WHERE watch = ?1 AND note_id = ?3"
        )
        db.execute(
            f"UPDATE deliveries SET wanted_hash = ({source}) "  # noqa: S608 - literals only
            "WHERE watch = ?1 AND kind = ?2 AND key = ?3",
            (watch, kind.value, key),
        )

    async def save_renders(
        self, watch: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
    ) -> None:
        """Re-rendered bodies (after a template change or a refresh)."""

        def save() -> None:
            with self._tx() as db:
                self._save_renders(db, watch, rendered, errors)

        await self._run(save)

    @staticmethod
    def _save_renders(
        db: sqlite3.Connection,
        watch: str,
        rendered: Mapping[str, Rendered],
        errors: Mapping[str, str],
    ) -> None:
        for incident_id, body in rendered.items():
            db.execute(
                "UPDATE incidents SET rendered = ?, rendered_hash = ?, render_error = NULL "
                "WHERE watch = ? AND incident_id = ?",
                (body.body, body.digest, watch, incident_id),
            )
            SqliteStore._sync_wanted(db, watch, Kind.INCIDENT, incident_id)
        for incident_id, error in errors.items():
            db.execute(
                "UPDATE incidents SET render_error = ? WHERE watch = ? AND incident_id = ?",
                (error, watch, incident_id),
            )

    async def rerender_scope(
        self, watch: str, *, closed_since: float, thread_id: str | None
    ) -> dict[str, Tracked]:
        """Open incidents, and those closed since ``closed_since`` with a comment in
        ``thread_id``: what readers still see."""

        def query() -> dict[str, Tracked]:
            rows = list(
                self.db.execute(
                    "SELECT incident_id, view, announce FROM incidents "  # noqa: S608
                    f"WHERE watch = ? AND is_open = 1 AND {ANNOUNCED}",
                    (watch,),
                )
            )
            if thread_id is not None:
                rows += self.db.execute(
                    "SELECT incident_id, view, announce FROM incidents i "  # noqa: S608
                    f"WHERE watch = ? AND closed_at IS NOT NULL AND {ANNOUNCED} "
                    "AND closed_at >= ? AND EXISTS (SELECT 1 FROM deliveries d "
                    "WHERE d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id "
                    "AND d.thread_id = ? AND d.state IN ('posted', 'posting'))",
                    (watch, closed_since, thread_id),
                )
            return {
                r["incident_id"]: Tracked(view_from_json(r["view"]), bool(r["announce"]))
                for r in rows
            }

        return await self._run(query)

    async def in_thread(self, watch: str, thread_id: str) -> dict[str, Tracked]:
        """Every announced incident with a live comment in ``thread_id``."""

        def query() -> dict[str, Tracked]:
            rows = self.db.execute(
                "SELECT i.incident_id, i.view, i.announce FROM deliveries d "
                "JOIN incidents i ON i.watch = d.watch AND i.incident_id = d.key "
                "WHERE d.watch = ? AND d.thread_id = ? AND d.kind = 'inc' "
                "AND d.state IN ('posted', 'posting')",
                (watch, thread_id),
            )
            return {
                r["incident_id"]: Tracked(view_from_json(r["view"]), bool(r["announce"]))
                for r in rows
            }

        return await self._run(query)

    async def force(self, watch: str, tracked: Tracked, *, now: float) -> None:
        """Post ``tracked`` whatever the rules say (a moderator asked for it)."""

        def save() -> None:
            with self._tx() as db:
                view = tracked.view
                db.execute(
                    """INSERT INTO incidents (watch, incident_id, view, name, status, announce,
                                              forced, is_open, first_seen, changed_at, closed_at)
                       VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?, ?)
                       ON CONFLICT (watch, incident_id) DO UPDATE SET forced = 1""",
                    (
                        watch,
                        view.id,
                        view_to_json(view),
                        view.name,
                        view.status,
                        int(view.is_open),
                        now,
                        now,
                        None if view.is_open else now,
                    ),
                )
                self._want(db, watch, Kind.INCIDENT, view.id, now)

        await self._run(save)

    async def adopt_known(self, watch: str, ids: Collection[str]) -> int:
        """Incidents among ``ids`` that the bot has a comment for (found by its marker) but
        took as a baseline (a fresh state file): deliver them again, so that comment is
        kept current. Returns how many."""

        def save() -> int:
            wanted = tuple(ids)
            with self._tx() as db:
                found = [
                    r[0]
                    for r in db.execute(
                        "SELECT incident_id FROM incidents WHERE watch = ? "  # noqa: S608
                        f"AND incident_id IN ({_marks(len(wanted))}) "
                        "AND announce = 0 AND forced = 0",
                        (watch, *wanted),
                    )
                ]
                for incident_id in found:
                    db.execute(
                        "UPDATE incidents SET forced = 1, closed_at = CASE WHEN is_open = 0 "
                        "THEN COALESCE(closed_at, changed_at) END "
                        "WHERE watch = ? AND incident_id = ?",
                        (watch, incident_id),
                    )
                    self._want(db, watch, Kind.INCIDENT, incident_id, time.time())
            return len(found)

        return await self._run(save)

    async def unrendered(self, watch: str) -> dict[str, Tracked]:
        """Incidents to post about that have no body yet (and no template error)."""
        return await self._run(
            self._tracked_where,
            f"WHERE watch = ? AND rendered_hash IS NULL AND render_error IS NULL AND {ANNOUNCED}",
            (watch,),
        )

    def _tracked_where(self, where: str, values: tuple[Any, ...]) -> dict[str, Tracked]:
        rows = self.db.execute(f"SELECT incident_id, view, announce FROM incidents {where}", values)  # noqa: S608
        return {
            r["incident_id"]: Tracked(view_from_json(r["view"]), bool(r["announce"])) for r in rows
        }

    async def open_incidents(self, watch: str) -> list[IncidentRow]:
        """Announced incidents still open, newest first."""
        return await self._run(
            self._incidents,
            f"WHERE watch = ? AND is_open = 1 AND {ANNOUNCED} ORDER BY first_seen DESC",
            (watch,),
        )

    async def recent_settled(self, watch: str, limit: int) -> list[IncidentRow]:
        """The ``limit`` most recently closed announced incidents."""
        return await self._run(
            self._incidents,
            f"WHERE watch = ? AND closed_at IS NOT NULL AND {ANNOUNCED} "
            "ORDER BY closed_at DESC LIMIT ?",
            (watch, limit),
        )

    def _incidents(self, where: str, values: tuple[Any, ...]) -> list[IncidentRow]:
        return [_incident(r) for r in self.db.execute(f"{_SELECT_INCIDENTS} {where}", values)]

    # --- deliveries -------------------------------------------------------------------------
    async def work(self, watch: str, keys: Collection[tuple[Kind, str]] | None = None) -> Work:
        """Open incidents and active deliveries, with their rows (only ``keys``, if given)."""
        return await self._run(self._work, watch, None if keys is None else frozenset(keys))

    def _work(self, watch: str, keys: frozenset[tuple[Kind, str]] | None) -> Work:
        db = self.db
        rows = {
            r["id"]: _delivery(r)
            for r in db.execute(f"{_SELECT_DELIVERIES} WHERE watch = ? AND {ACTIVE}", (watch,))
        }
        subjects: dict[tuple[Kind, str], Subject] = {}
        for r in db.execute(
            "SELECT incident_id, rendered_hash FROM incidents "  # noqa: S608 - literals only
            f"WHERE watch = ? AND is_open = 1 AND {ANNOUNCED}",
            (watch,),
        ):
            key = (Kind.INCIDENT, r["incident_id"])
            subjects[key] = Subject(Kind.INCIDENT, r["incident_id"], True, r["rendered_hash"])
        # CROSS JOIN keeps the open incidents (a partial index) as the outer loop.
        for r in db.execute(
            "SELECT d.* FROM incidents i CROSS JOIN deliveries d "
            "ON d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id "
            "WHERE i.watch = ? AND i.is_open = 1 AND (i.announce = 1 OR i.forced = 1)",
            (watch,),
        ):
            rows[r["id"]] = _delivery(r)
        missing = {(row.kind, row.key) for row in rows.values()} - subjects.keys()
        subjects.update(self._subjects(watch, missing))
        if keys is not None:
            subjects = {k: v for k, v in subjects.items() if k in keys}
        chosen = [row for row in rows.values() if (row.kind, row.key) in subjects]
        return Work(subjects=subjects, rows=sorted(chosen, key=lambda row: row.id))

    def _subjects(
        self, watch: str, keys: Collection[tuple[Kind, str]]
    ) -> dict[tuple[Kind, str], Subject]:
        found: dict[tuple[Kind, str], Subject] = {}
        for kind, key in keys:
            if kind is Kind.INCIDENT:
                r = self.db.execute(
                    "SELECT is_open, rendered_hash FROM incidents "
                    "WHERE watch = ? AND incident_id = ?",
                    (watch, key),
                ).fetchone()
                if r is not None:
                    found[(kind, key)] = Subject(kind, key, bool(r[0]), r[1])
            else:
                r = self.db.execute(
                    "SELECT body_hash FROM notes WHERE watch = ? AND note_id = ?", (watch, key)
                ).fetchone()
                if r is not None:
                    found[(kind, key)] = Subject(kind, key, False, r[0])
        return found

    async def body(self, watch: str, kind: Kind, key: str) -> Rendered | None:
        """The body a subject's comment should show now."""

        def query() -> Rendered | None:
            sql = (
                "SELECT rendered, rendered_hash FROM incidents WHERE watch = ? AND incident_id = ?"
                if kind is Kind.INCIDENT
                else "SELECT body, body_hash FROM notes WHERE watch = ? AND note_id = ?"
            )
            r = self.db.execute(sql, (watch, key)).fetchone()
            if r is None or r[0] is None or r[1] is None:
                return None
            return Rendered(r[0], r[1])

        return await self._run(query)

    async def deliveries(self, watch: str, kind: Kind, keys: Collection[str]) -> list[DeliveryRow]:
        """Every delivery row of these subjects, oldest first."""

        def query() -> list[DeliveryRow]:
            wanted = tuple(keys)
            rows = self.db.execute(
                f"{_SELECT_DELIVERIES} WHERE watch = ? AND kind = ? "
                f"AND key IN ({_marks(len(wanted))}) ORDER BY id",
                (watch, kind.value, *wanted),
            )
            return [_delivery(r) for r in rows]

        return await self._run(query)

    async def start_delivery(
        self, watch: str, kind: Kind, key: str, thread_id: str, *, now: float
    ) -> DeliveryRow | None:
        """A new ``pending`` row for a subject in ``thread_id`` (None if one exists)."""

        def insert() -> DeliveryRow | None:
            with self._tx() as db:
                cursor = db.execute(
                    "INSERT INTO deliveries (watch, kind, key, state, thread_id, created_at) "
                    "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
                    (watch, kind.value, key, thread_id, now),
                )
                if cursor.rowcount != 1:
                    return None
                self._sync_wanted(db, watch, kind, key)
                row = db.execute(
                    f"{_SELECT_DELIVERIES} WHERE id = ?", (cursor.lastrowid,)
                ).fetchone()
                return _delivery(row)

        return await self._run(insert)

    async def step(self, before: DeliveryRow, after: DeliveryRow) -> bool:
        """Write ``after`` if the row is still ``before`` (same version); False if not."""

        def write() -> bool:
            values = {name: getattr(after, name) for name in _STEP_FIELDS}
            assignments = ", ".join(f"{name} = :{name}" for name in _STEP_FIELDS)
            try:
                with self._tx() as db:
                    cursor = db.execute(
                        f"UPDATE deliveries SET {assignments} "  # noqa: S608 - literals only
                        "WHERE id = :id AND version = :expected",
                        {**values, "id": before.id, "expected": before.version},
                    )
                    return cursor.rowcount == 1
            except sqlite3.IntegrityError:
                return False  # another row already holds that thread for this subject

        return await self._run(write)

    # --- notices ----------------------------------------------------------------------------
    async def add_note(self, note: NoteRow) -> tuple[NoteRow, bool]:
        """Record a notice and its delivery intent; the stored row and whether it is new."""

        def save() -> tuple[NoteRow, bool]:
            with self._tx() as db:
                new = self._insert_note(db, note)
            stored = self._note(note.watch, note.note_id)
            assert stored is not None
            return stored, new

        return await self._run(save)

    def _insert_note(self, db: sqlite3.Connection, note: NoteRow) -> bool:
        cursor = db.execute(
            f"INSERT INTO notes ({', '.join(NOTE_FIELDS)}) "  # noqa: S608 - literals only
            f"VALUES ({_marks(len(NOTE_FIELDS))}) ON CONFLICT DO NOTHING",
            astuple(note),
        )
        if cursor.rowcount == 1:
            self._want(db, note.watch, Kind.NOTE, note.note_id, note.created_at)
        return cursor.rowcount == 1

    async def note(self, watch: str, note_id: str) -> NoteRow | None:
        """One notice."""
        return await self._run(self._note, watch, note_id)

    def _note(self, watch: str, note_id: str) -> NoteRow | None:
        r = self.db.execute(
            f"{_SELECT_NOTES} WHERE watch = ? AND note_id = ?", (watch, note_id)
        ).fetchone()
        return None if r is None else NoteRow(**dict(r))

    async def note_by_comment(self, comment_id: str) -> NoteRow | None:
        """The notice posted as ``comment_id``."""

        def query() -> NoteRow | None:
            r = self.db.execute(
                "SELECT watch, key FROM deliveries WHERE comment_id = ? AND kind = 'note'",
                (comment_id,),
            ).fetchone()
            return None if r is None else self._note(r["watch"], r["key"])

        return await self._run(query)

    async def edit_note(self, note: NoteRow) -> None:
        """New words (and body) for a notice; the deliverer edits its comment."""

        def save() -> None:
            with self._tx() as db:
                db.execute(
                    "UPDATE notes SET text = ?, body = ?, body_hash = ?, cut_chars = ? "
                    "WHERE watch = ? AND note_id = ?",
                    (
                        note.text,
                        note.body,
                        note.body_hash,
                        note.cut_chars,
                        note.watch,
                        note.note_id,
                    ),
                )
                self._sync_wanted(db, note.watch, Kind.NOTE, note.note_id)

        await self._run(save)

    async def recent_notes(self, watch: str, limit: int) -> list[NoteRow]:
        """The newest notices."""

        def query() -> list[NoteRow]:
            rows = self.db.execute(
                f"{_SELECT_NOTES} WHERE watch = ? ORDER BY created_at DESC LIMIT ?",
                (watch, limit),
            )
            return [NoteRow(**dict(r)) for r in rows]

        return await self._run(query)

    # --- inbox commands ---------------------------------------------------------------------
    async def claim_command(
        self, row: CommandRow, note: NoteRow | None = None
    ) -> tuple[CommandRow, bool]:
        """Record a received command (with a notice's intent, atomically)."""

        def save() -> tuple[CommandRow, bool]:
            with self._tx() as db:
                cursor = db.execute(
                    f"INSERT INTO commands ({', '.join(COMMAND_FIELDS)}) "  # noqa: S608
                    f"VALUES ({_marks(len(COMMAND_FIELDS))}) ON CONFLICT DO NOTHING",
                    astuple(row),
                )
                new = cursor.rowcount == 1
                if new and note is not None:
                    self._insert_note(db, note)
            stored = self._command(row.message_id)
            assert stored is not None
            return stored, new

        return await self._run(save)

    async def command(self, message_id: str) -> CommandRow | None:
        """One received command."""
        return await self._run(self._command, message_id)

    def _command(self, message_id: str) -> CommandRow | None:
        r = self.db.execute(f"{_SELECT_COMMANDS} WHERE message_id = ?", (message_id,)).fetchone()
        return None if r is None else _command(r)

    async def finish_command(self, message_id: str, state: str, result: str, now: float) -> None:
        """Record what a command did."""
        await self._write(
            "UPDATE commands SET state = ?, result = ?, done_at = ? WHERE message_id = ?",
            (state, result, now, message_id),
        )

    async def reply_state(self, message_id: str, state: str) -> None:
        """Record how far the reply got (``sending``, ``sent``, ``none``)."""
        await self._write(
            "UPDATE commands SET reply_state = ? WHERE message_id = ?", (state, message_id)
        )

    async def command_read(self, message_id: str) -> None:
        """Record that the message was marked read."""
        await self._write("UPDATE commands SET marked_read = 1 WHERE message_id = ?", (message_id,))

    async def _write(self, sql: str, values: tuple[Any, ...]) -> None:
        def write() -> None:
            with self._tx() as db:
                db.execute(sql, values)

        await self._run(write)

    # --- health -----------------------------------------------------------------------------
    async def health(self, watch: str) -> Health:
        """The watch's health record."""

        def query() -> Health:
            r = self.db.execute("SELECT * FROM health WHERE watch = ?", (watch,)).fetchone()
            page = self.db.execute(
                "SELECT page_name, page_url FROM feeds WHERE watch = ?", (watch,)
            ).fetchone()
            info = PageInfo(page[0], page[1]) if page is not None and page[1] else None
            return _health(watch, r, info)

        return await self._run(query)

    async def record_poll(
        self, watch: str, *, ok: bool, message: str, now: float, kind: str = ""
    ) -> None:
        """The outcome of one poll (``kind``: the vendor the source reads, once known)."""
        good = ", last_good_poll_at = :now" if ok else ""
        good += ", source_kind = :kind" if kind else ""
        error = (
            ""
            if ok
            else ", last_error_at = :now, last_error_kind = 'status page', last_error = :message"
        )
        await self._health_write(
            watch,
            f"last_poll_at = :now, last_poll_ok = :ok, last_poll_message = :message{good}{error}",
            {"now": now, "ok": int(ok), "message": message, "kind": kind},
        )

    async def record_reddit(self, watch: str, *, error: str | None, kind: str, now: float) -> None:
        """A good Reddit call (``error`` None) or a failed one."""
        if error is None:
            await self._health_write(watch, "last_reddit_ok_at = :now", {"now": now})
        else:
            await self._health_write(
                watch,
                "last_error_at = :now, last_error_kind = :kind, last_error = :error",
                {"now": now, "kind": kind, "error": error},
            )

    async def record_megathread(self, watch: str, thread: Thread | None, now: float) -> None:
        """The megathread in use."""
        await self._health_write(
            watch,
            "megathread_id = :id, megathread_title = :title, "
            "megathread_permalink = :permalink, megathread_at = :now",
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
            "paused = :paused, paused_by = :by, paused_at = :now",
            {"paused": int(paused), "by": by, "now": now},
        )

    async def record_templates(self, watch: str, templates: str, now: float) -> None:
        """Which templates the watch renders with (and why, when not the configured ones)."""
        await self._health_write(
            watch,
            "templates = :templates, templates_at = :now",
            {"templates": templates, "now": now},
        )

    # --- wiki templates -------------------------------------------------------------------
    async def wiki_rows(self, watch: str) -> list[WikiRow]:
        """Every wiki revision decided for the watch, oldest first."""

        def read() -> list[WikiRow]:
            rows = self.db.execute(
                f"SELECT {', '.join(WIKI_FIELDS)} FROM wiki_revisions WHERE watch = ? "  # noqa: S608
                "ORDER BY decided_at, revised_at",
                (watch,),
            )
            return [WikiRow(**dict(r)) for r in rows]

        return await self._run(read)

    async def record_wiki(self, row: WikiRow) -> None:
        """Record the decision about one revision (kept: a revision is judged once)."""
        values = {name: getattr(row, name) for name in WIKI_FIELDS}

        def write() -> None:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO wiki_revisions ({', '.join(WIKI_FIELDS)}) "  # noqa: S608
                    f"VALUES ({', '.join(':' + n for n in WIKI_FIELDS)}) ON CONFLICT DO NOTHING",
                    values,
                )

        await self._run(write)

    async def claim_wiki_notice(self, watch: str, page: str, revision_id: str) -> bool:
        """Mark the author's message as being sent; False when claimed before."""

        def claim() -> bool:
            with self._tx() as db:
                done = db.execute(
                    "UPDATE wiki_revisions SET notice = 'sending' WHERE watch = ? AND page = ? "
                    "AND revision_id = ? AND notice = 'none'",
                    (watch, page, revision_id),
                )
                return done.rowcount == 1

        return await self._run(claim)

    async def wiki_notice_sent(self, watch: str, page: str, revision_id: str) -> None:
        """The message went out."""

        def write() -> None:
            with self._tx() as db:
                db.execute(
                    "UPDATE wiki_revisions SET notice = 'sent' WHERE watch = ? AND page = ? "
                    "AND revision_id = ?",
                    (watch, page, revision_id),
                )

        await self._run(write)

    # --- several processes ------------------------------------------------------------------
    async def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> FileLease:
        """A state file has one machine: the process always leads. Its lease only marks
        the file as in use, for ``migrate-store``."""
        return FileLease(self.run_lock_path)

    @property
    def run_lock_path(self) -> Path:
        """The file a running bot holds a shared lock on (beside the state file)."""
        return self.path.with_name(self.path.name + "-run.lock")

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """None: one process at a time, no leader to tell apart."""
        return None

    async def confirm_lead(self) -> None:
        """Nothing to confirm: nobody else can take the lead of a file."""

    async def shut_out(self) -> list[Member]:
        """Hold the run lock exclusively (a running bot holds it shared)."""
        if fcntl is None:
            return []  # Windows: a running bot cannot be told apart
        handle = open(self.run_lock_path, "a+b")  # noqa: SIM115, ASYNC230 - held until let_in
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return [Member(socket.gethostname(), 0, 0.0, 0.0)]
        self._shut_out = handle
        return []

    async def let_in(self) -> None:
        """Release the run lock taken by ``shut_out``."""
        handle, self._shut_out = self._shut_out, None
        if handle is not None:
            handle.close()

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the bot's tables, in the order they were written."""

        def query() -> dict[str, list[dict[str, Any]]]:
            return {
                table: [
                    dict(r)
                    for r in self.db.execute(f"SELECT * FROM {table} ORDER BY rowid")  # noqa: S608
                ]
                for table in COPIED_TABLES
            }

        return await self._run(query)

    async def import_rows(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Load rows into this empty state file, in one transaction."""

        def load() -> None:
            with self._tx() as db:
                for table in COPIED_TABLES:
                    if db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():  # noqa: S608
                        raise StoreError(
                            f"state file {self.path} already holds modbot state ({table} has "
                            "rows): migrate-store copies into an empty store only"
                        )
                for table in COPIED_TABLES:
                    for row in tables.get(table, []):
                        names = list(row)
                        db.execute(
                            f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
                            f"VALUES ({', '.join(':' + n for n in names)})",
                            row,
                        )

        await self._run(load)

    async def _health_write(self, watch: str, assignments: str, values: dict[str, Any]) -> None:
        def write() -> None:
            with self._tx() as db:
                db.execute("INSERT INTO health (watch) VALUES (?) ON CONFLICT DO NOTHING", (watch,))
                db.execute(
                    f"UPDATE health SET {assignments} WHERE watch = :watch",  # noqa: S608
                    {**values, "watch": watch},
                )

        await self._run(write)


def _health(watch: str, r: sqlite3.Row | None, page: PageInfo | None) -> Health:
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


def _modbots(owner: int, version: int, tables: set[str]) -> bool:
    """Whether a file with this header and these tables is a modbot state file."""
    if owner == APPLICATION_ID:
        return True
    if owner != 0:
        return False
    if not tables:
        return True  # new and empty
    # A file that has tables but no version is another program's: modbot writes both
    # in one transaction.
    required = UNMARKED_TABLES.get(min(version, 3))
    return required is not None and required <= tables


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the open transaction (``executescript`` commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


# --- migrations of older state files -------------------------------------------------------

# The schema of modbot's first two releases, kept to migrate their files.
LEGACY_SCHEMAS: tuple[str, ...] = (
    """
    CREATE TABLE pages (page TEXT PRIMARY KEY, baseline_at TEXT NOT NULL);
    CREATE TABLE incidents (
        page TEXT NOT NULL, incident_id TEXT NOT NULL, view TEXT NOT NULL,
        announce INTEGER NOT NULL, is_open INTEGER NOT NULL, rendered TEXT,
        rendered_hash TEXT, render_error TEXT, first_seen REAL NOT NULL,
        changed_at REAL NOT NULL, PRIMARY KEY (page, incident_id));
    CREATE TABLE comments (
        page TEXT NOT NULL, incident_id TEXT NOT NULL, thread_id TEXT NOT NULL,
        state TEXT NOT NULL, comment_id TEXT, permalink TEXT, delivered_hash TEXT,
        delivered_at REAL, intent_hash TEXT, intent_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0,
        last_error TEXT, PRIMARY KEY (page, incident_id, thread_id));
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE incidents ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
    UPDATE incidents SET name = json_extract(view, '$.name'),
                         status = json_extract(view, '$.status');
    CREATE TABLE notes (
        page TEXT NOT NULL, note_id TEXT NOT NULL, thread_id TEXT, state TEXT NOT NULL,
        text TEXT NOT NULL, body TEXT NOT NULL, body_hash TEXT NOT NULL, comment_id TEXT,
        permalink TEXT, source TEXT NOT NULL, created_at REAL NOT NULL, intent_at REAL,
        delivered_at REAL, last_error TEXT, PRIMARY KEY (page, note_id));
    CREATE TABLE commands (
        message_id TEXT PRIMARY KEY, author TEXT NOT NULL, command TEXT NOT NULL,
        argument TEXT NOT NULL, state TEXT NOT NULL, result TEXT,
        reply_state TEXT NOT NULL DEFAULT 'none', marked_read INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL, done_at REAL);
    """,
)
DRY_RUN_PREFIX = "dry-run "


def _v2(db: sqlite3.Connection) -> None:
    _execute_script(db, LEGACY_SCHEMAS[1])


def _v3(db: sqlite3.Connection) -> None:
    """Pages keyed by URL become watches; comments and notices become deliveries."""
    scopes = _legacy_scopes(db)
    for table in ("incidents", "notes", "commands"):
        db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    _execute_script(db, SCHEMA)
    db.execute("INSERT INTO commands SELECT * FROM old_commands")
    kv = {r[0]: r[1] for r in db.execute("SELECT key, value FROM kv")}
    for page, watch in scopes.items():
        _migrate_page(db, page, watch, kv)
    for table in ("old_incidents", "old_notes", "old_commands", "comments", "pages", "kv"):
        db.execute(f"DROP TABLE {table}")


def _legacy_scopes(db: sqlite3.Connection) -> dict[str, str]:
    """Each old page key's new watch: the most recently active live page becomes
    ``default`` (and its dry-run twin ``dry-run:default``); others are kept apart."""
    activity = dict(
        db.execute(
            "SELECT page, MAX(changed_at) FROM incidents GROUP BY page "
            "UNION ALL SELECT page, 0 FROM pages WHERE page NOT IN (SELECT page FROM incidents)"
        ).fetchall()
    )
    scopes: dict[str, str] = {}
    for dry in (False, True):
        pages = [p for p in activity if p.startswith(DRY_RUN_PREFIX) == dry]
        pages.sort(key=lambda p: activity[p] or 0, reverse=True)
        for number, page in enumerate(pages):
            name = "default" if number == 0 else f"legacy-{number}"
            scopes[page] = f"dry-run:{name}" if dry else name
    return scopes


def _migrate_page(db: sqlite3.Connection, page: str, watch: str, kv: dict[str, str]) -> None:
    url = page.removeprefix(DRY_RUN_PREFIX)
    info = json.loads(kv.get(f"page_info:{page}", "{}"))
    db.execute(
        "INSERT INTO feeds (watch, url, baseline_at, page_name, page_url) "
        "SELECT ?, ?, baseline_at, ?, ? FROM pages WHERE page = ?",
        (watch, url, info.get("name"), info.get("url"), page),
    )
    db.execute(
        """INSERT INTO incidents (watch, incident_id, view, name, status, announce, forced,
                                  is_open, rendered, rendered_hash, render_error, first_seen,
                                  changed_at, closed_at)
           SELECT ?, incident_id, view, name, status, announce, forced, is_open, rendered,
                  rendered_hash, render_error, first_seen, changed_at,
                  CASE WHEN is_open = 0 THEN changed_at END
           FROM old_incidents WHERE page = ?""",
        (watch, page),
    )
    db.execute(
        """INSERT INTO deliveries (watch, kind, key, state, thread_id, comment_id, permalink,
                                   wanted_hash, delivered_hash, delivered_at, intent_at,
                                   attempts, not_before, last_error, created_at)
           SELECT ?, 'inc', c.incident_id, c.state, c.thread_id, c.comment_id, c.permalink,
                  i.rendered_hash, c.delivered_hash, c.delivered_at, c.intent_at, c.attempts,
                  c.not_before, c.last_error, COALESCE(c.intent_at, 0)
           FROM comments c LEFT JOIN old_incidents i
             ON i.page = c.page AND i.incident_id = c.incident_id
           WHERE c.page = ?""",
        (watch, page),
    )
    db.execute(
        "INSERT INTO notes (watch, note_id, text, body, body_hash, source, created_at) "
        "SELECT ?, note_id, text, body, body_hash, source, created_at FROM old_notes "
        "WHERE page = ?",
        (watch, page),
    )
    db.execute(
        """INSERT INTO deliveries (watch, kind, key, state, thread_id, comment_id, permalink,
                                   wanted_hash, delivered_hash, delivered_at, intent_at,
                                   attempts, last_error, created_at)
           SELECT ?, 'note', note_id, state, thread_id, comment_id, permalink, body_hash,
                  CASE WHEN state = 'posted' THEN body_hash END, delivered_at, intent_at,
                  CASE WHEN intent_at IS NULL THEN 0 ELSE 1 END, last_error, created_at
           FROM old_notes WHERE page = ?""",
        (watch, page),
    )
    _migrate_health(db, page, watch, kv)


def _migrate_health(db: sqlite3.Connection, page: str, watch: str, kv: dict[str, str]) -> None:
    poll = json.loads(kv.get(f"last_poll:{page}", "{}"))
    thread = json.loads(kv.get(f"megathread:{page}", "{}"))
    paused = json.loads(kv.get("paused", "{}"))
    reddit_ok = json.loads(kv.get("reddit_ok", "{}"))
    error = json.loads(kv.get("last_error", "{}"))
    db.execute(
        """INSERT INTO health (watch, last_poll_at, last_poll_ok, last_poll_message,
                               last_good_poll_at, last_reddit_ok_at, last_error_at,
                               last_error_kind, last_error, paused, paused_by, paused_at,
                               megathread_id, megathread_title, megathread_permalink,
                               megathread_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            watch,
            poll.get("at"),
            int(bool(poll.get("ok"))),
            str(poll.get("message") or ""),
            poll.get("last_ok"),
            reddit_ok.get("at"),
            error.get("at"),
            str(error.get("kind") or ""),
            str(error.get("message") or ""),
            int(bool(paused.get("paused"))),
            str(paused.get("by") or ""),
            paused.get("at"),
            thread.get("id"),
            thread.get("title"),
            thread.get("permalink"),
            thread.get("at"),
        ),
    )


# The step that brings a file from version N-1 to N. Version 1 files get version 2's
# tables first, then version 3's.
def _v4(db: sqlite3.Connection) -> None:
    """Which vendor a watch's source reads (``auto`` finds out at run time). A file
    coming from version 2 already has it: ``_v3`` creates the current tables."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(health)")}
    if "source_kind" not in columns:
        db.execute("ALTER TABLE health ADD COLUMN source_kind TEXT NOT NULL DEFAULT ''")


def _v5(db: sqlite3.Connection) -> None:
    """Templates kept on the subreddit wiki: each revision's verdict and message."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wiki_revisions" not in tables:  # a file from version 2 gets it from ``_v3``
        _execute_script(db, SCHEMA[SCHEMA.index("CREATE TABLE wiki_revisions") :])


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
}


class FileLease:
    """The lease of a process on a SQLite state file: it always leads (one machine),
    and holds a shared lock on ``<file>-run.lock`` while it runs, so that
    ``migrate-store`` can tell that the file is in use."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    async def acquire(self, now: float) -> int | None:
        """Always the lead (epoch 1), marked by the shared lock."""
        if fcntl is not None and self._handle is None:
            try:
                handle = open(self.path, "a+b")  # noqa: SIM115, ASYNC230 - a local lock, held
            except OSError:
                return 1  # a read-only folder: the mark is a courtesy, not a guard
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise StoreError(
                    f"{self.path.name.removesuffix('-run.lock')} is being copied by "
                    "modbot migrate-store; start the bot when it is done"
                ) from None
            self._handle = handle
        return 1

    async def holding(self, now: float) -> bool:
        """Always: nobody else can take the lead of a file."""
        return True

    async def release(self) -> None:
        """Drop the mark."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
