"""One schema for both dialects: stores from each dialect's last own version upgrade in
place to the same tables as a new one, the hot queries use the partial indexes on both,
and the SQL "active row" rule agrees with ``machine.is_active``. PostgreSQL tests skip
without a server (see ``tests/pg.py``) and fail instead when CI=true."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import psycopg
import pytest

from modbot.core import machine
from modbot.core.codec import view_to_json
from modbot.core.machine import MessageState, State
from modbot.core.records import (
    Channel,
    DeliveryRow,
    Kind,
    MessageRow,
    Rendered,
    Tracked,
    Validators,
)
from modbot.core.render import sample_incident
from modbot.store import sql
from modbot.store.base import Q, Result, Tx, statements
from modbot.store.postgres import PostgresDialect, _pyformat, open_postgres
from modbot.store.schema import SCHEMA_VERSION, add_columns, column_ddl
from modbot.store.sql import SqlStore
from modbot.store.sqlite import SqliteDialect, open_sqlite
from modbot.store.sqlite_legacy import LEGACY_SCHEMAS, V5_SCHEMA
from tests.pg import fresh_database

W = "default"
NOW = 1_000.0
AnyStore = SqlStore[SqliteDialect] | SqlStore[PostgresDialect]
Opener = Callable[[], Awaitable[AnyStore]]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"
        return lambda: open_sqlite(path)
    url: str = request.getfixturevalue("postgres_url")
    return lambda: open_postgres(url)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[AnyStore]:
    opened = await opener()
    yield opened
    await opened.close()


def incident(incident_id: str, status: str = "investigating") -> Tracked:
    return Tracked(replace(sample_incident(), id=incident_id, status=status), announce=True)


# --- the active rule, written once in SQL ------------------------------------------------------


async def test_the_sql_active_rule_is_machine_is_active(store: AnyStore) -> None:
    hashes = (None, "a", "b")
    doubts = (None, 1234.5)  # a posted row in doubt stays active until its look is done
    cases = list(product(State, hashes, hashes, doubts))

    def insert() -> Tx[None]:
        for number, (state, delivered, wanted, heal_at) in enumerate(cases):
            yield Q(
                "INSERT INTO deliveries (watch, kind, key, state, delivered_hash, wanted_hash, "
                "heal_at) VALUES (:watch, 'inc', :key, :state, :delivered, :wanted, :heal_at)",
                watch=W,
                key=f"k{number}",
                state=state.value,
                delivered=delivered,
                wanted=wanted,
                heal_at=heal_at,
            )

    def active() -> Tx[set[str]]:
        found = yield Q("SELECT key FROM deliveries WHERE watch = :watch AND {active}", watch=W)
        return {r["key"] for r in found.rows}

    await store.dialect.run(insert(), write=True)
    expected = {
        f"k{number}"
        for number, (state, delivered, wanted, heal_at) in enumerate(cases)
        if machine.is_active(
            DeliveryRow(
                0,
                W,
                Kind.INCIDENT,
                "k",
                state,
                delivered_hash=delivered,
                wanted_hash=wanted,
                heal_at=heal_at,
            )
        )
    }
    assert await store.dialect.run(active(), write=False) == expected
    assert 0 < len(expected) < len(cases)


async def test_the_sql_active_rule_of_messages_is_machine_is_active(store: AnyStore) -> None:
    cases = list(product(MessageState, (None, 1234.5)))

    def insert() -> Tx[None]:
        for number, (state, heal_at) in enumerate(cases):
            yield Q(
                "INSERT INTO messages (key, channel, recipient, body, state, heal_at, "
                "created_at) VALUES (:key, 'comment-reply', 't1_x', 'b', :state, :heal_at, 0)",
                key=f"k{number}",
                state=state.value,
                heal_at=heal_at,
            )

    await store.dialect.run(insert(), write=True)
    expected = {
        f"k{number}"
        for number, (state, heal_at) in enumerate(cases)
        if machine.is_active(
            MessageRow(0, "k", Channel.COMMENT_REPLY, "t1_x", "", "b", state, heal_at=heal_at)
        )
    }
    assert {m.key for m in await store.outbox()} == expected
    assert 0 < len(expected) < len(cases)


# --- the hot queries use the partial indexes ----------------------------------------------------

# Each hot query, and the index it must be answered from.
HOT: list[tuple[str, Callable[[], Tx[Any]], int, str]] = [
    ("work: active rows", lambda: sql.work(W, None), 0, "deliveries_active"),
    ("work: open incidents", lambda: sql.work(W, None), 1, "incidents_open"),
    ("work: their rows", lambda: sql.work(W, None), 2, "incidents_open"),
    ("open incidents", lambda: sql.open_incidents(W), 0, "incidents_open"),
    ("unrendered", lambda: sql.unrendered(W), 0, "incidents_unrendered"),
    ("rerender scope", lambda: sql.rerender_scope(W, 0.0, "t1"), 0, "incidents_open"),
    ("recently settled", lambda: sql.recent_settled(W, 5), 0, "incidents_closed"),
    ("outbox", sql.outbox, 0, "messages_active"),
]


def _v5_file(path: Path) -> sqlite3.Connection:
    """A state file as modbot wrote it before the one schema (version 5)."""
    raw = sqlite3.connect(path)
    raw.executescript(V5_SCHEMA)
    raw.execute("PRAGMA user_version = 5")
    return raw


def _sqlite_plans(path: Path) -> dict[str, str]:
    dialect = SqliteDialect(path)
    raw = sqlite3.connect(path)
    plans = {}
    for label, tx, number, _ in HOT:
        statement = statements(tx())[number]
        rows = raw.execute(f"EXPLAIN QUERY PLAN {dialect.sql(statement.sql)}", statement.params)
        plans[label] = " / ".join(str(r[3]) for r in rows)
    raw.close()
    return plans


@pytest.mark.parametrize("made", ["new", "upgraded from version 5"])
async def test_sqlite_answers_the_hot_queries_from_the_partial_indexes(
    tmp_path: Path, made: str
) -> None:
    path = tmp_path / "state.sqlite3"
    if made != "new":
        _v5_file(path).close()  # its indexes say is_open = 1 AND (announce = 1 OR ...)
    await (await open_sqlite(path)).close()
    plans = _sqlite_plans(path)
    for label, _, _, index in HOT:
        assert f"USING INDEX {index}" in plans[label], (label, plans[label])
    assert "TEMP B-TREE" not in plans["recently settled"]  # the index gives the order


async def test_postgresql_answers_the_hot_queries_from_the_partial_indexes(
    postgres_url: str,
) -> None:
    await (await open_postgres(postgres_url)).close()
    dialect = PostgresDialect(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute("SET enable_seqscan = off")  # tables this small would be read whole
        for label, tx, number, index in HOT:
            statement = statements(tx())[number]
            found = raw.execute(f"EXPLAIN {dialect.sql(statement.sql)}", statement.params)
            plan = " / ".join(str(r[0]) for r in found)
            assert index in plan, (label, plan)


# --- upgrades in place --------------------------------------------------------------------------

_DEFAULTS = {"FALSE": "0", "TRUE": "1"}  # a new file's DEFAULT FALSE is an old file's 0


def sqlite_schema(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Every table's columns and every index's definition, as comparable values."""
    raw = sqlite3.connect(path)
    names = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables = {
        name: sorted(
            (c[1], c[2], c[3], c[5], _DEFAULTS.get(c[4], c[4]))
            for c in raw.execute(f"PRAGMA table_info({name})")
        )
        for name in names
    }
    indexes = {
        name: " ".join(text.split())
        for name, text in raw.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    raw.close()
    return tables, indexes


def _legacy_file(path: Path, version: int) -> None:
    raw = sqlite3.connect(path)
    for script in LEGACY_SCHEMAS[:version]:
        raw.executescript(script)
    raw.execute(f"PRAGMA user_version = {version}")
    raw.close()


@pytest.mark.parametrize("version", [1, 2, 5])
async def test_an_upgraded_state_file_has_the_schema_of_a_new_one(
    tmp_path: Path, version: int
) -> None:
    new, old = tmp_path / "new.sqlite3", tmp_path / "old.sqlite3"
    await (await open_sqlite(new)).close()
    if version == 5:
        _v5_file(old).close()
    else:
        _legacy_file(old, version)
    store = await open_sqlite(old)
    assert await store.schema_version() == SCHEMA_VERSION
    await store.close()
    assert sqlite_schema(old) == sqlite_schema(new)


async def test_a_version_5_state_file_keeps_its_state(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    raw = _v5_file(path)
    view = sample_incident()
    raw.execute(
        "INSERT INTO feeds (watch, url, baseline_at, etag) VALUES (?, 'https://p', ?, '\"e\"')",
        (W, datetime(2026, 1, 1, tzinfo=UTC).isoformat()),
    )
    raw.execute(
        "INSERT INTO incidents (watch, incident_id, view, name, status, announce, forced, "
        "is_open, rendered, rendered_hash, first_seen, changed_at) "
        "VALUES (?, ?, ?, 'n', 'identified', 1, 0, 1, 'body 2', 'h2', 1, 5)",
        (W, view.id, view_to_json(view)),
    )
    raw.execute(
        "INSERT INTO deliveries (watch, kind, key, state, version, thread_id, comment_id, "
        "wanted_hash, delivered_hash, created_at) "
        "VALUES (?, 'inc', ?, 'posted', 3, 't1', 'c1', 'h2', 'h1', 1)",
        (W, view.id),
    )
    raw.execute(
        "INSERT INTO commands (message_id, author, command, argument, state, marked_read, "
        "received_at) VALUES ('m1', 'alice', 'pause', '', 'done', 1, 2)"
    )
    raw.execute("INSERT INTO health (watch, paused, paused_by) VALUES (?, 1, 'bob')", (W,))
    raw.commit()
    raw.close()
    store = await open_sqlite(path)
    assert await store.schema_version() == SCHEMA_VERSION
    (row,) = (await store.work(W)).rows  # the edit to h2 is still due
    assert (row.key, row.state, row.version, row.delivered_hash) == (view.id, "posted", 3, "h1")
    (opened,) = await store.open_incidents(W)
    assert (opened.is_open, opened.status) == (True, "identified")
    assert (await store.feed_state(W)).validators.etag == '"e"'
    command = await store.command("m1")
    assert command is not None
    assert command.marked_read is True
    health = await store.health(W)
    assert (health.paused, health.paused_by) == (True, "bob")
    assert await store.step(row, machine.edited(row, "h2", NOW))
    assert not [r for r in (await store.work(W)).rows if machine.is_active(r)]
    await store.close()


def postgres_schema(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(url, autocommit=True) as raw:
        columns = raw.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, "
            "is_identity, identity_generation FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY 1, 2"
        ).fetchall()
        indexes = raw.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "ORDER BY 1"
        ).fetchall()
    return columns, indexes


async def test_a_version_3_postgresql_database_keeps_its_state(
    postgres_server: str, postgres_url: str
) -> None:
    store = await open_postgres(postgres_url)
    await store.save_poll(
        W,
        url="https://p",
        changed={"a": incident("a")},
        rendered={"a": Rendered("body a", "ha")},
        render_errors={},
        validators=Validators(etag='"e"'),
        baseline_at=datetime(2026, 1, 1, tzinfo=UTC),
        page=None,
        now=NOW,
    )
    await store.set_paused(W, True, by="bob", now=NOW)
    await store.close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:  # version 3's tables are these
        raw.execute("UPDATE schema_version SET version = 3")
        raw.execute("DROP INDEX incidents_open")  # and its indexes: rebuilt as they were
        raw.execute(
            "CREATE INDEX incidents_open ON incidents (watch) "
            "WHERE is_open AND (announce OR forced)"
        )
    store = await open_postgres(postgres_url)
    assert await store.schema_version() == SCHEMA_VERSION
    (row,) = (await store.work(W)).rows
    assert (row.key, row.state, row.wanted_hash) == ("a", "pending", "ha")
    assert (await store.health(W)).paused is True
    await store.close()
    with fresh_database(postgres_server) as other:
        await (await open_postgres(other)).close()
        assert postgres_schema(postgres_url) == postgres_schema(other)


async def test_a_version_1_postgresql_database_gets_the_schema_of_a_new_one(
    postgres_server: str, postgres_url: str
) -> None:
    await (await open_postgres(postgres_url)).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:  # back to version 1's shape
        raw.execute("DROP TABLE wiki_revisions, leadership, members")
        raw.execute("ALTER TABLE deliveries DROP COLUMN epoch")
        raw.execute("UPDATE schema_version SET version = 1")
    await (await open_postgres(postgres_url)).close()
    with fresh_database(postgres_server) as other:
        await (await open_postgres(other)).close()
        assert postgres_schema(postgres_url) == postgres_schema(other)


# --- the dialect's small parts -----------------------------------------------------------------


def test_postgresql_placeholders_leave_casts_strings_and_percent_signs_alone() -> None:
    assert _pyformat("SELECT ':no', a::text, :yes, 5 % 2 FROM t WHERE b = :b_2") == (
        "SELECT ':no', a::text, %(yes)s, 5 %% 2 FROM t WHERE b = %(b_2)s"
    )


def test_a_new_column_is_declared_once_and_added_where_missing() -> None:
    assert column_ddl("deliveries", "epoch") == "epoch BIGINT NOT NULL DEFAULT 0"
    without = Result((), -1, [("id",), ("watch",)])
    with_it = Result((), -1, [("id",), ("epoch",)])
    assert [q.sql for q in statements(add_columns("deliveries", "epoch"), without)][1:] == [
        "ALTER TABLE deliveries ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0"
    ]
    assert len(statements(add_columns("deliveries", "epoch"), with_it)) == 1


async def test_postgresql_stamps_each_intent_with_the_epoch_it_was_written_under(
    postgres_url: str,
) -> None:
    store = await open_postgres(postgres_url)
    try:
        row = await store.start_delivery(W, Kind.INCIDENT, "i", "t1", now=NOW)
        assert row is not None
        lease = await store.lease("r/x", "a", 1, interval=60)
        assert await lease.acquire(NOW) == 1
        assert await store.step(row, machine.claim(row, "t1", NOW))
        await store.start_delivery(W, Kind.INCIDENT, "i", "t2", now=NOW)
        await lease.release()
    finally:
        await store.close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        stamped = raw.execute("SELECT thread_id, epoch FROM deliveries ORDER BY id").fetchall()
    assert stamped == [("t1", 1), ("t2", 1)]


# --- version 7: replies and wiki messages become the outbox -----------------------------------

V7_ROWS = [
    "INSERT INTO commands (message_id, author, command, argument, state, result, reply_state, "
    "marked_read, received_at, done_at) VALUES "
    "('t4_sent', 'alice', 'status', '', 'done', 'all fine', 'sent', TRUE, 1, 2), "
    "('t4_lost', 'alice', 'pause', '', 'done', 'paused', 'sending', FALSE, 3, 4), "
    "('t1_due', 'bob', 'help', '', 'refused', 'only moderators', 'none', FALSE, 5, 5), "
    "('t4_running', 'alice', 'refresh', '', 'running', NULL, 'none', FALSE, 6, NULL)",
    "INSERT INTO wiki_revisions (watch, page, revision_id, author, revised_at, content, "
    "outcome, notice, decided_at) VALUES "
    "('default', 'incident', 'r1', 'alice', 1, 'x', 'good', 'sent', 7), "
    "('default', 'manual', 'r2', 'bob', 1, 'y', 'broken', 'sending', 8), "
    "('default', 'maintenance', 'r3', 'carol', 1, 'z', 'good', 'none', 9)",
]


def _back_to_version_7(execute: Callable[[str], object]) -> None:
    """A store of today's schema, brought back to version 7's shape, with the rows an older
    bot left: replies sent, lost mid-send and due; wiki messages sent and lost."""
    execute("DROP TABLE messages")
    execute("DROP TABLE wiki_pages")
    execute("ALTER TABLE commands ADD COLUMN reply_state TEXT NOT NULL DEFAULT 'none'")
    execute("ALTER TABLE wiki_revisions ADD COLUMN notice TEXT NOT NULL DEFAULT 'none'")
    for statement in V7_ROWS:
        execute(statement)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_a_version_7_store_moves_its_replies_and_wiki_messages_into_the_outbox(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str
) -> None:
    if dialect == "sqlite":
        path, fresh = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
        await (await open_sqlite(path)).close()
        await (await open_sqlite(fresh)).close()
        connection = sqlite3.connect(path)
        _back_to_version_7(connection.execute)
        connection.execute("PRAGMA user_version = 7")
        connection.commit()
        connection.close()
        store: AnyStore = await open_sqlite(path)
    else:
        url: str = request.getfixturevalue("postgres_url")
        await (await open_postgres(url)).close()
        with psycopg.connect(url, autocommit=True) as raw:
            _back_to_version_7(raw.execute)
            raw.execute("UPDATE schema_version SET version = 7")
        store = await open_postgres(url)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        every = {r["key"]: r for r in (await store.export_rows())["messages"]}
        due = await store.outbox()
        command = await store.command("t4_lost")
    finally:
        await store.close()
    assert {key: r["state"] for key, r in every.items()} == {
        "reply-t4_sent": "sent",
        "reply-t4_lost": "failed",  # it may have gone out, and carries no marker to look for
        "reply-t1_due": "pending",  # to send, now with its marker
        "wiki-default-incident-r1": "sent",
        "wiki-default-manual-r2": "failed",
    }
    assert [m.key for m in due] == ["reply-t1_due"]
    assert due[0].channel is Channel.COMMENT_REPLY  # a mention's reply is a comment
    assert due[0].body.startswith("only moderators\n\n[](#modbot-msg-reply-t1_due)")
    assert every["reply-t4_sent"]["channel"] == Channel.MESSAGE_REPLY
    wiki = every["wiki-default-incident-r1"]
    assert (wiki["recipient"], wiki["channel"]) == ("alice", Channel.MESSAGE)
    assert command is not None
    assert (command.state, command.result, command.marked_read) == ("done", "paused", False)
    if dialect == "sqlite":
        assert sqlite_schema(path) == sqlite_schema(fresh)
    else:
        with fresh_database(request.getfixturevalue("postgres_server")) as other:
            await (await open_postgres(other)).close()
            assert postgres_schema(url) == postgres_schema(other)
