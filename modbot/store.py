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
from collections.abc import Iterator, Mapping
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


COMMENT_FIELDS = tuple(CommentRow.__dataclass_fields__)
# Column names come from the dataclass above, never from input.
_SELECT_COMMENTS = f"SELECT {', '.join(COMMENT_FIELDS)} FROM comments"  # noqa: S608


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

    def tracked(self, page: str) -> dict[str, Tracked]:
        """Every incident the bot knows on ``page``."""
        rows = self._db.execute(
            "SELECT incident_id, view, announce FROM incidents WHERE page = ?", (page,)
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
                    """INSERT INTO incidents
                       (page, incident_id, view, announce, is_open, first_seen, changed_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (page, incident_id) DO UPDATE SET
                         view = excluded.view, announce = excluded.announce,
                         is_open = excluded.is_open, changed_at = excluded.changed_at""",
                    (
                        page,
                        incident_id,
                        view_to_json(tracked.view),
                        int(tracked.announce),
                        int(tracked.view.is_open),
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
        """Announced incidents of ``page``, newest first."""
        rows = self._db.execute(
            """SELECT incident_id, is_open, rendered, rendered_hash, render_error, view
               FROM incidents WHERE page = ? AND announce = 1
               ORDER BY first_seen DESC, incident_id""",
            (page,),
        )
        result = []
        for r in rows:
            view = view_from_json(r["view"])
            result.append(
                IncidentRow(
                    incident_id=r["incident_id"],
                    is_open=bool(r["is_open"]),
                    rendered=r["rendered"],
                    rendered_hash=r["rendered_hash"],
                    render_error=r["render_error"],
                    name=view.name,
                    status=view.status,
                )
            )
        return result

    def incident(self, page: str, incident_id: str) -> IncidentRow | None:
        """One announced incident, or ``None``."""
        for row in self.announced(page):
            if row.incident_id == incident_id:
                return row
        return None

    # --- comments -----------------------------------------------------------------------
    def comments(self, page: str) -> list[CommentRow]:
        """Every comment row of ``page``."""
        rows = self._db.execute(_SELECT_COMMENTS + " WHERE page = ?", (page,))
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
        unknown = set(fields) - set(COMMENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown comment fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        params = dict(fields, page=page, incident_id=incident_id, thread_id=thread_id)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO comments (page, incident_id, thread_id, state) "
                "VALUES (:page, :incident_id, :thread_id, 'pending') "
                "ON CONFLICT (page, incident_id, thread_id) DO NOTHING",
                params,
            )
            if fields:
                db.execute(
                    f"UPDATE comments SET {assignments} "  # noqa: S608 - names checked above
                    "WHERE page = :page AND incident_id = :incident_id AND thread_id = :thread_id",
                    params,
                )
