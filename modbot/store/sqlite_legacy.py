"""State files from before the one schema: SQLite-only migrations up to version 5.

Frozen: each step brings a file from version N-1 to N as that version was, whatever
the current schema says (``schema`` takes over from version 5 on). Version 1 files
get version 2's tables first, then version 3's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

LEGACY_LATEST = 5  # the last version of a state file before the one schema

# The tables and indexes of a version 5 file (the last SQLite-only schema): what
# version 3 created, version 5 completed, and version 6 starts from.
V5_SCHEMA = """
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
CREATE INDEX incidents_open ON incidents (watch) WHERE is_open = 1 AND (announce = 1 OR forced = 1);
CREATE INDEX incidents_closed ON incidents (watch, closed_at)
    WHERE closed_at IS NOT NULL AND (announce = 1 OR forced = 1);
CREATE INDEX incidents_unrendered ON incidents (watch)
    WHERE rendered_hash IS NULL AND render_error IS NULL AND (announce = 1 OR forced = 1);
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
CREATE INDEX deliveries_active ON deliveries (watch)
    WHERE (state IN ('pending', 'posting')
           OR (state = 'posted' AND delivered_hash IS NOT wanted_hash));
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
    _execute_script(db, V5_SCHEMA)
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


def _v4(db: sqlite3.Connection) -> None:
    """Which vendor a watch's source reads (``auto`` finds out at run time). A file
    coming from version 2 already has it: ``_v3`` creates version 5's tables."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(health)")}
    if "source_kind" not in columns:
        db.execute("ALTER TABLE health ADD COLUMN source_kind TEXT NOT NULL DEFAULT ''")


def _v5(db: sqlite3.Connection) -> None:
    """Templates kept on the subreddit wiki: each revision's verdict and message."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wiki_revisions" not in tables:  # a file from version 2 gets it from ``_v3``
        _execute_script(db, V5_SCHEMA[V5_SCHEMA.index("CREATE TABLE wiki_revisions") :])


# The step that brings a file from version N-1 to N.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
}


def upgrade_legacy(db: sqlite3.Connection, version: int) -> None:
    """Bring a file of ``version`` (1 to 5) to version 5, inside the open transaction."""
    for number in range(version + 1, LEGACY_LATEST + 1):
        MIGRATIONS[number](db)


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the open transaction (``executescript`` commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
