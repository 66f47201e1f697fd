"""The bot's state in SQLite: incidents it knows, what it rendered, where it posted.

Stdlib ``sqlite3``: transactions are few and short (one per poll, one or two per Reddit
call), so running them on the event loop's thread costs less than a thread hop, and
no extra dependency is needed. WAL lets ``modbot status`` read while ``modbot run``
writes; ``synchronous=FULL`` because a lost commit could cost a duplicate comment;
read-then-write goes through ``BEGIN IMMEDIATE`` so two processes never interleave.
The schema version lives in ``PRAGMA user_version`` and is migrated on open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modbot.errors import StoreError
from modbot.incidents import Tracked, view_from_json, view_to_json
from modbot.render import Rendered

BUSY_TIMEOUT_MS = 10_000

MIGRATIONS: tuple[str, ...] = (
    # v1: incidents, rendered bodies and comment deliveries.
    """
    CREATE TABLE pages (
        page TEXT PRIMARY KEY,
        baseline_at TEXT NOT NULL
    );
    CREATE TABLE incidents (
        page TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        view TEXT NOT NULL,
        announce INTEGER NOT NULL,
        is_open INTEGER NOT NULL,
        rendered TEXT,
        rendered_hash TEXT,
        render_error TEXT,
        first_seen REAL NOT NULL,
        changed_at REAL NOT NULL,
        PRIMARY KEY (page, incident_id)
    );
    CREATE TABLE comments (
        page TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        state TEXT NOT NULL,
        comment_id TEXT,
        permalink TEXT,
        delivered_hash TEXT,
        delivered_at REAL,
        intent_hash TEXT,
        intent_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (page, incident_id, thread_id)
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # v2: moderator commands and notices; incidents keep name and status in columns
    # (so listings need not parse views) and can be forced into announcement.
    """
    ALTER TABLE incidents ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
    UPDATE incidents SET name = json_extract(view, '$.name'),
                         status = json_extract(view, '$.status');
    CREATE TABLE notes (
        page TEXT NOT NULL,
        note_id TEXT NOT NULL,
        thread_id TEXT,
        state TEXT NOT NULL,
        text TEXT NOT NULL,
        body TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        comment_id TEXT,
        permalink TEXT,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        intent_at REAL,
        delivered_at REAL,
        last_error TEXT,
        PRIMARY KEY (page, note_id)
    );
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
    """,
)


@dataclass(frozen=True)
class IncidentRow:
    """An announced incident and the body it should show."""

    incident_id: str
    is_open: bool
    rendered: str | None
    rendered_hash: str | None
    render_error: str | None
    name: str
    status: str


@dataclass(frozen=True)
class CommentRow:
    """The bot's comment (or intent to comment) for one incident in one thread."""

    incident_id: str
    thread_id: str
    state: str  # pending | posting | posted | moved | removed | closed
    comment_id: str | None = None
    permalink: str | None = None
    delivered_hash: str | None = None
    delivered_at: float | None = None
    intent_hash: str | None = None
    intent_at: float | None = None
    attempts: int = 0
    not_before: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True)
class NoteRow:
    """A moderator's notice and where it was posted."""

    note_id: str
    state: str  # pending | posting | posted
    text: str
    body: str
    body_hash: str
    source: str
    created_at: float
    thread_id: str | None = None
    comment_id: str | None = None
    permalink: str | None = None
    intent_at: float | None = None
    delivered_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class CommandRow:
    """A command received in the inbox and what became of it."""

    message_id: str
    author: str
    command: str
    argument: str
    state: str  # running | done | refused
    received_at: float
    result: str | None = None
    reply_state: str = "none"  # none | sending | sent
    marked_read: int = 0
    done_at: float | None = None


COMMENT_FIELDS = tuple(CommentRow.__dataclass_fields__)
NOTE_FIELDS = tuple(NoteRow.__dataclass_fields__)
COMMAND_FIELDS = tuple(CommandRow.__dataclass_fields__)
INCIDENT_FIELDS = tuple(IncidentRow.__dataclass_fields__)
# Column names come from the dataclass above, never from input.
_SELECT_COMMENTS = f"SELECT {', '.join(COMMENT_FIELDS)} FROM comments"  # noqa: S608
_SELECT_INCIDENTS = f"SELECT {', '.join(INCIDENT_FIELDS)} FROM incidents"  # noqa: S608
_SELECT_NOTES = f"SELECT {', '.join(NOTE_FIELDS)} FROM notes"  # noqa: S608
_SELECT_COMMANDS = f"SELECT {', '.join(COMMAND_FIELDS)} FROM commands"  # noqa: S608


def _incident_row(row: sqlite3.Row) -> IncidentRow:
    data = dict(row)
    data["is_open"] = bool(data["is_open"])
    return IncidentRow(**data)


class Store:
    """One SQLite file; open it with ``Store.open`` and close it when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating and migrating if needed) the state file at ``path``."""
        try:
            if path.parent != Path():
                path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, path)
            store._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state file {path}: {exc}") from None
        return store

    def close(self) -> None:
        """Close the connection (every commit is already durable)."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"state file {self.path} is busy or unwritable: {exc}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state file {self.path}: {exc}") from None

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer modbot (schema {version}); upgrade modbot"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check`` findings; empty when the file is healthy."""
        rows = [str(r[0]) for r in self._db.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

    # --- key/value ----------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        """A stored value, or ``None``."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Store a value."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- incidents ----------------------------------------------------------------------
    def baseline_at(self, page: str) -> datetime | None:
        """When the bot first read ``page``; ``None`` before the first successful poll."""
        row = self._db.execute("SELECT baseline_at FROM pages WHERE page = ?", (page,)).fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def tracked(self, page: str, ids: Collection[str] | None = None) -> dict[str, Tracked]:
        """The incidents the bot knows on ``page`` (only ``ids``, if given)."""
        only, values = _in("incident_id", ids)
        rows = self._db.execute(
            "SELECT incident_id, view, announce FROM incidents WHERE page = ?" + only,  # noqa: S608
            (page, *values),
        )
        return {
            r["incident_id"]: Tracked(view=view_from_json(r["view"]), announce=bool(r["announce"]))
            for r in rows
        }

    def save_poll(
        self,
        page: str,
        *,
        changed: Mapping[str, Tracked],
        rendered: Mapping[str, Rendered],
        render_errors: Mapping[str, str],
        now: float,
        baseline_at: datetime,
    ) -> None:
        """Save one poll's outcome atomically: new views, new bodies, the baseline."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO pages (page, baseline_at) VALUES (?, ?) ON CONFLICT (page) DO NOTHING",
                (page, baseline_at.isoformat()),
            )
            for incident_id, tracked in changed.items():
                db.execute(
                    """INSERT INTO incidents (page, incident_id, view, announce, is_open,
                                            name, status, first_seen, changed_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (page, incident_id) DO UPDATE SET
                         view = excluded.view, announce = excluded.announce,
                         is_open = excluded.is_open, name = excluded.name,
                         status = excluded.status, changed_at = excluded.changed_at""",
                    (
                        page,
                        incident_id,
                        view_to_json(tracked.view),
                        int(tracked.announce),
                        int(tracked.view.is_open),
                        tracked.view.name,
                        tracked.view.status,
                        now,
                        now,
                    ),
                )
            self._save_renders(db, page, rendered, render_errors)

    def save_renders(
        self, page: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
    ) -> None:
        """Store re-rendered bodies (after a template change or a forced refresh)."""
        with self.transaction() as db:
            self._save_renders(db, page, rendered, errors)

    @staticmethod
    def _save_renders(
        db: sqlite3.Connection,
        page: str,
        rendered: Mapping[str, Rendered],
        errors: Mapping[str, str],
    ) -> None:
        for incident_id, body in rendered.items():
            db.execute(
                "UPDATE incidents SET rendered = ?, rendered_hash = ?, render_error = NULL "
                "WHERE page = ? AND incident_id = ?",
                (body.body, body.digest, page, incident_id),
            )
        for incident_id, error in errors.items():
            db.execute(
                "UPDATE incidents SET render_error = ? WHERE page = ? AND incident_id = ?",
                (error, page, incident_id),
            )

    def announced(self, page: str) -> list[IncidentRow]:
        """Announced (or moderator-forced) incidents of ``page``, newest first."""
        rows = self._db.execute(
            _SELECT_INCIDENTS + " WHERE page = ? AND (announce = 1 OR forced = 1) "
            "ORDER BY first_seen DESC, incident_id",
            (page,),
        )
        return [_incident_row(r) for r in rows]

    def deliverable(self, page: str) -> list[IncidentRow]:
        """Announced incidents that may need delivery work (bodies left out).

        Open incidents, and closed ones without a current comment or with a post of
        unknown outcome. A long-running bot accumulates thousands of settled
        incidents; planning never needs to read them again.
        """
        rows = self._db.execute(
            """SELECT incident_id, is_open, NULL AS rendered, rendered_hash, render_error,
                      name, status
               FROM incidents i
               WHERE page = :page AND (announce = 1 OR forced = 1)
                 AND rendered_hash IS NOT NULL
                 AND (is_open = 1
                      OR EXISTS (SELECT 1 FROM comments c
                                 WHERE c.page = i.page AND c.incident_id = i.incident_id
                                   AND c.state IN ('posting', 'pending'))
                      OR NOT EXISTS (SELECT 1 FROM comments c
                                     WHERE c.page = i.page AND c.incident_id = i.incident_id
                                       AND (c.state = 'removed' OR (c.state = 'posted'
                                            AND c.delivered_hash = i.rendered_hash))))
               ORDER BY first_seen DESC, incident_id""",
            {"page": page},
        )
        return [_incident_row(r) for r in rows]

    def incident(self, page: str, incident_id: str) -> IncidentRow | None:
        """One announced (or forced) incident, or ``None``."""
        row = self._db.execute(
            _SELECT_INCIDENTS
            + " WHERE page = ? AND incident_id = ? AND (announce = 1 OR forced = 1)",
            (page, incident_id),
        ).fetchone()
        return None if row is None else _incident_row(row)

    def forced(self, page: str) -> set[str]:
        """Incidents a moderator asked to post although the rules would not."""
        rows = self._db.execute(
            "SELECT incident_id FROM incidents WHERE page = ? AND forced = 1", (page,)
        )
        return {r[0] for r in rows}

    def force(self, page: str, tracked: Tracked, *, now: float) -> None:
        """Record ``tracked`` (if new) and mark it to be posted whatever the rules say."""
        with self.transaction() as db:
            db.execute(
                """INSERT INTO incidents (page, incident_id, view, announce, is_open, name,
                                          status, forced, first_seen, changed_at)
                   VALUES (?, ?, ?, 0, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (page, incident_id) DO UPDATE SET forced = 1""",
                (
                    page,
                    tracked.view.id,
                    view_to_json(tracked.view),
                    int(tracked.view.is_open),
                    tracked.view.name,
                    tracked.view.status,
                    now,
                    now,
                ),
            )

    # --- comments -----------------------------------------------------------------------
    def comments(self, page: str, incident_ids: Collection[str] | None = None) -> list[CommentRow]:
        """The comment rows of ``page`` (of these incidents only, if given)."""
        only, values = _in("incident_id", incident_ids)
        rows = self._db.execute(_SELECT_COMMENTS + " WHERE page = ?" + only, (page, *values))
        return [CommentRow(**dict(r)) for r in rows]

    def comment(self, page: str, incident_id: str, thread_id: str) -> CommentRow | None:
        """The row of one (incident, thread), or ``None``."""
        row = self._db.execute(
            _SELECT_COMMENTS + " WHERE page = ? AND incident_id = ? AND thread_id = ?",
            (page, incident_id, thread_id),
        ).fetchone()
        return None if row is None else CommentRow(**dict(row))

    def claim_post(
        self, page: str, incident_id: str, thread_id: str, *, intent_hash: str, now: float
    ) -> bool:
        """Record the intent to post, unless another process already did; True if ours."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT state, not_before FROM comments "
                "WHERE page = ? AND incident_id = ? AND thread_id = ?",
                (page, incident_id, thread_id),
            ).fetchone()
            if row is not None and (row["state"] != "pending" or row["not_before"] > now):
                return False
            db.execute(
                """INSERT INTO comments (page, incident_id, thread_id, state, intent_hash,
                                         intent_at, attempts)
                   VALUES (?, ?, ?, 'posting', ?, ?, 1)
                   ON CONFLICT (page, incident_id, thread_id) DO UPDATE SET
                     state = 'posting', intent_hash = excluded.intent_hash,
                     intent_at = excluded.intent_at, attempts = attempts + 1""",
                (page, incident_id, thread_id, intent_hash, now),
            )
        return True

    def update_comment(self, page: str, incident_id: str, thread_id: str, **fields: Any) -> None:
        """Set fields of one comment row (creating it as ``pending`` if missing)."""
        keys = {"page": page, "incident_id": incident_id, "thread_id": thread_id}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO comments (page, incident_id, thread_id, state) "
                "VALUES (:page, :incident_id, :thread_id, 'pending') "
                "ON CONFLICT (page, incident_id, thread_id) DO NOTHING",
                keys,
            )
            _set(db, "comments", keys, fields, COMMENT_FIELDS)

    # --- notices ------------------------------------------------------------------------
    def add_note(self, page: str, note: NoteRow) -> NoteRow:
        """Record a new notice (kept as it is if ``note_id`` exists); return the stored row."""
        values = {name: getattr(note, name) for name in NOTE_FIELDS}
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO notes (page, {', '.join(NOTE_FIELDS)}) "  # noqa: S608
                f"VALUES (:page, {', '.join(':' + n for n in NOTE_FIELDS)}) "
                "ON CONFLICT (page, note_id) DO NOTHING",
                dict(values, page=page),
            )
        stored = self.note(page, note.note_id)
        assert stored is not None
        return stored

    def note(self, page: str, note_id: str) -> NoteRow | None:
        """One notice, or ``None``."""
        row = self._db.execute(
            _SELECT_NOTES + " WHERE page = ? AND note_id = ?", (page, note_id)
        ).fetchone()
        return None if row is None else NoteRow(**dict(row))

    def note_by_comment(self, page: str, comment_id: str) -> NoteRow | None:
        """The notice posted as ``comment_id``, or ``None``."""
        row = self._db.execute(
            _SELECT_NOTES + " WHERE page = ? AND comment_id = ?", (page, comment_id)
        ).fetchone()
        return None if row is None else NoteRow(**dict(row))

    def notes(self, page: str, states: Collection[str] | None = None) -> list[NoteRow]:
        """The notices of ``page`` (in these states only, if given), newest first."""
        only, values = _in("state", states)
        rows = self._db.execute(
            _SELECT_NOTES + " WHERE page = ?" + only + " ORDER BY created_at DESC",
            (page, *values),
        )
        return [NoteRow(**dict(r)) for r in rows]

    def claim_note(self, page: str, note_id: str, thread_id: str, *, now: float) -> bool:
        """Mark a pending notice as being posted in ``thread_id``; False if not pending."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE notes SET state = 'posting', thread_id = ?, intent_at = ? "
                "WHERE page = ? AND note_id = ? AND state = 'pending'",
                (thread_id, now, page, note_id),
            )
            return cursor.rowcount == 1

    def update_note(self, page: str, note_id: str, **fields: Any) -> None:
        """Set fields of one notice."""
        with self.transaction() as db:
            _set(db, "notes", {"page": page, "note_id": note_id}, fields, NOTE_FIELDS)

    # --- inbox commands -----------------------------------------------------------------
    def claim_command(self, row: CommandRow) -> tuple[CommandRow, bool]:
        """Record a received command; returns the stored row and whether it is new."""
        values = {name: getattr(row, name) for name in COMMAND_FIELDS}
        with self.transaction() as db:
            cursor = db.execute(
                f"INSERT INTO commands ({', '.join(COMMAND_FIELDS)}) "  # noqa: S608
                f"VALUES ({', '.join(':' + n for n in COMMAND_FIELDS)}) "
                "ON CONFLICT (message_id) DO NOTHING",
                values,
            )
            new = cursor.rowcount == 1
        stored = self.command(row.message_id)
        assert stored is not None
        return stored, new

    def command(self, message_id: str) -> CommandRow | None:
        """One received command, or ``None``."""
        row = self._db.execute(_SELECT_COMMANDS + " WHERE message_id = ?", (message_id,)).fetchone()
        return None if row is None else CommandRow(**dict(row))

    def commands(self) -> list[CommandRow]:
        """Every received command, oldest first."""
        rows = self._db.execute(_SELECT_COMMANDS + " ORDER BY received_at, message_id")
        return [CommandRow(**dict(r)) for r in rows]

    def update_command(self, message_id: str, **fields: Any) -> None:
        """Set fields of one received command."""
        with self.transaction() as db:
            _set(db, "commands", {"message_id": message_id}, fields, COMMAND_FIELDS)


def _in(column: str, values: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """``" AND column IN (?, ...)"`` and its parameters; nothing when ``values`` is None.

    ``column`` is always a literal from this module, never input.
    """
    if values is None:
        return "", ()
    wanted = tuple(values)
    return f" AND {column} IN ({', '.join('?' * len(wanted))})", wanted


def _set(
    db: sqlite3.Connection,
    table: str,
    keys: Mapping[str, Any],
    fields: Mapping[str, Any],
    allowed: tuple[str, ...],
) -> None:
    """``UPDATE table SET fields WHERE keys``; column names are checked against ``allowed``."""
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {table} fields: {sorted(unknown)}")
    if not fields:
        return
    assignments = ", ".join(f"{name} = :{name}" for name in fields)
    where = " AND ".join(f"{name} = :{name}" for name in keys)
    db.execute(f"UPDATE {table} SET {assignments} WHERE {where}", {**fields, **keys})  # noqa: S608
