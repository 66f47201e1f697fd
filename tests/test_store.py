"""The store on its two dialects, SQLite and PostgreSQL, behind one port. The shared tests
run against both (``opener``'s ``sqlite`` and ``postgresql`` params); the migrations of
SQLite files from before the one schema stay SQLite's; PostgreSQL has its own for its
schema, connection errors, timeouts and concurrent writers (``test_schema`` holds the
upgrades to the one schema and the query plans). PostgreSQL tests skip without a server
(see ``tests/pg.py``) and fail instead when CI=true."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from modbot.app import App
from modbot.config.database import DatabaseURL
from modbot.config.settings import Settings, load_settings
from modbot.core import machine, outbox
from modbot.core.codec import view_to_json
from modbot.core.machine import State
from modbot.core.markdown import marker_of
from modbot.core.records import (
    Channel,
    CommandRow,
    DeliveryRow,
    InboxItem,
    Kind,
    MessageRow,
    NoteRow,
    PageInfo,
    PostedComment,
    Rendered,
    Thread,
    Tracked,
    Validators,
    WikiRevision,
    WikiRow,
)
from modbot.core.render import sample_incident
from modbot.errors import ConfigError, StoreError
from modbot.ports import Store
from modbot.store import StateStore, open_store
from modbot.store.postgres import WRITE_LOCK, PostgresDialect, open_postgres
from modbot.store.schema import SCHEMA_VERSION
from modbot.store.sql import SqlStore
from modbot.store.sqlite import SqliteDialect, open_sqlite
from modbot.store.sqlite_legacy import LEGACY_SCHEMAS
from tests.fakes.statuspage import FakeStatuspage
from tests.pg import PASSWORD_ROLE, free_port, unavailable

NOW = 1_000.0
BASELINE = datetime(2026, 1, 1, tzinfo=UTC)
W = "default"
SECRET = "s3cret-horse-battery"  # a password that must never be shown
Opener = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a new store object on this test's state: a SQLite file, or a fresh
    PostgreSQL database. Two calls are two processes sharing one state."""
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"
        return lambda: open_sqlite(path)
    url: str = request.getfixturevalue("postgres_url")
    return lambda: open_postgres(url)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[StateStore]:
    opened = await opener()
    yield opened
    await opened.close()


def incident(incident_id: str, status: str = "investigating") -> Tracked:
    return Tracked(replace(sample_incident(), id=incident_id, status=status), announce=True)


async def save(store: Store, *items: Tracked, now: float = NOW) -> None:
    await store.save_poll(
        W,
        url="https://status.example.com",
        changed={t.view.id: t for t in items},
        rendered={
            t.view.id: Rendered(
                f"body {t.view.id} {t.view.status}", f"h-{t.view.id}-{t.view.status}"
            )
            for t in items
        },
        render_errors={},
        validators=Validators(etag='"e1"'),
        baseline_at=BASELINE,
        page=None,
        now=now,
    )


async def posted(store: Store, key: str, thread: str = "t1", *, kind: Kind = Kind.INCIDENT) -> None:
    """Take a subject's pending row through claim and answer, as the deliverer would."""
    (row,) = [r for r in await store.deliveries(W, kind, [key]) if r.state == State.PENDING]
    claimed = machine.claim(row, thread, NOW)
    assert await store.step(row, claimed)
    body = await store.body(W, kind, key)
    assert body is not None
    comment = PostedComment(f"c-{key}", f"https://r/{key}", NOW)
    assert await store.step(claimed, machine.answered(claimed, comment, body.digest, NOW))


async def test_a_state_file_in_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"the folder .*/sub does not exist: create it"):
        await open_sqlite(tmp_path / "sub" / "state.sqlite3")
    assert not (tmp_path / "sub").exists()


async def test_new_file_gets_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    store = await open_sqlite(tmp_path / "sub" / "state.sqlite3")
    assert await store.schema_version() == SCHEMA_VERSION
    assert await store.integrity_problems() == []
    await store.close()
    raw = sqlite3.connect(tmp_path / "sub" / "state.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


async def test_file_from_a_newer_modbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    await (await open_sqlite(path)).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="newer modbot"):
        await open_sqlite(path)


async def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"state\.sqlite3"):
        await open_sqlite(path)


async def test_poll_results_and_validators_survive_reopening(opener: Opener) -> None:
    store = await opener()
    item = incident("a")
    await save(store, item)
    await store.close()
    again = await opener()
    assert await again.tracked(W, ["a", "zz"]) == {"a": item}
    state = await again.feed_state(W)
    assert (state.baseline_at, state.validators.etag) == (BASELINE, '"e1"')
    assert await again.body(W, Kind.INCIDENT, "a") == Rendered(
        "body a investigating", "h-a-investigating"
    )
    (row,) = await again.deliveries(W, Kind.INCIDENT, ["a"])
    assert (row.state, row.thread_id, row.wanted_hash) == ("pending", None, "h-a-investigating")
    await again.close()


async def test_render_error_keeps_the_previous_body(opener: Opener) -> None:
    store = await opener()
    await save(store, incident("a"))
    await store.save_renders(W, {}, {"a": "incident.md.j2, line 3: boom"})
    assert (await store.body(W, Kind.INCIDENT, "a")) == Rendered(
        "body a investigating", "h-a-investigating"
    )
    (row,) = await store.open_incidents(W)
    assert row.render_error == "incident.md.j2, line 3: boom"
    await store.close()


async def test_a_poll_whose_template_failed_keeps_the_body_and_the_wanted_hash(
    opener: Opener,
) -> None:
    store = await opener()
    await save(store, incident("a"))
    identified = incident("a", "identified")
    await store.save_poll(
        W,
        url="https://status.example.com",
        changed={"a": identified},
        rendered={},
        render_errors={"a": "incident.md.j2, line 3: boom"},
        validators=Validators(etag='"e2"'),
        baseline_at=BASELINE,
        page=None,
        now=NOW + 1,
    )
    assert await store.tracked(W, ["a"]) == {"a": identified}
    assert await store.body(W, Kind.INCIDENT, "a") == Rendered(
        "body a investigating", "h-a-investigating"
    )
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["a"])
    assert row.wanted_hash == "h-a-investigating"
    assert [r.render_error for r in await store.open_incidents(W)] == [
        "incident.md.j2, line 3: boom"
    ]
    await save(store, identified, now=NOW + 2)  # the template works again
    assert await store.body(W, Kind.INCIDENT, "a") == Rendered(
        "body a identified", "h-a-identified"
    )
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["a"])
    assert row.wanted_hash == "h-a-identified"
    assert [r.render_error for r in await store.open_incidents(W)] == [None]
    await store.close()


async def test_a_poll_that_renders_clears_the_error_of_the_last(opener: Opener) -> None:
    store = await opener()
    await save(store, incident("a"))
    await store.save_renders(W, {}, {"a": "incident.md.j2, line 3: boom"})
    await save(store, incident("a", "identified"), now=NOW + 1)
    (row,) = await store.open_incidents(W)
    assert row.render_error is None
    await store.close()


async def test_only_one_process_can_take_a_step(opener: Opener) -> None:
    first, second = await opener(), await opener()
    await save(first, incident("a"))
    (row,) = await second.deliveries(W, Kind.INCIDENT, ["a"])
    assert await first.step(row, machine.claim(row, "t1", NOW)) is True
    assert await second.step(row, machine.claim(row, "t1", NOW)) is False
    (now_row,) = await second.deliveries(W, Kind.INCIDENT, ["a"])
    assert (now_row.state, now_row.attempts, now_row.version) == ("posting", 1, 1)
    await first.close()
    await second.close()


async def test_a_subject_holds_one_row_per_thread(opener: Opener) -> None:
    store = await opener()
    await save(store, incident("a"))
    await posted(store, "a", "t1")
    assert await store.start_delivery(W, Kind.INCIDENT, "a", "t1", now=NOW) is None
    fresh = await store.start_delivery(W, Kind.INCIDENT, "a", "t2", now=NOW)
    assert fresh is not None
    assert (fresh.state, fresh.wanted_hash) == ("pending", "h-a-investigating")
    await store.close()


async def test_work_reads_open_incidents_and_active_rows_only(opener: Opener) -> None:
    store = await opener()
    await save(store, incident("open"), incident("settled"), incident("stale"), incident("unsure"))
    for key in ("open", "settled", "stale", "unsure"):
        await posted(store, key)
    await save(
        store,
        incident("settled", "resolved"),
        incident("stale", "resolved"),
        incident("unsure", "resolved"),
    )
    # settled: its final state was delivered; stale: the edit is still due.
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["settled"])
    assert await store.step(row, machine.edited(row, "h-settled-resolved", NOW))
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["unsure"])
    assert await store.step(row, machine.edited(row, "h-unsure-resolved", NOW))
    fresh = await store.start_delivery(W, Kind.INCIDENT, "unsure", "t2", now=NOW)
    assert fresh is not None
    work = await store.work(W)
    assert {key for _, key in work.subjects} == {"open", "stale", "unsure"}
    assert {r.key for r in work.rows} == {"open", "stale", "unsure"}
    assert len([r for r in work.rows if r.key == "unsure"]) == 1  # the settled row is not read
    only = await store.work(W, [(Kind.INCIDENT, "stale")])
    assert [r.key for r in only.rows] == ["stale"]
    await store.close()


async def test_a_row_in_doubt_is_read_until_the_doubt_ends_even_by_a_new_process(
    opener: Opener,
) -> None:
    store = await opener()
    note = NoteRow(W, "n1", "words", "body", "hb", "cli", NOW)
    await store.add_note(note)
    await posted(store, "n1", kind=Kind.NOTE)
    assert (await store.work(W)).rows == []  # delivered: settled
    (row,) = await store.deliveries(W, Kind.NOTE, ["n1"])
    assert await store.step(row, machine.looked(row, NOW + 60))
    await store.close()
    store = await opener()  # a restart: the doubt is in the store, not in the process
    (row,) = (await store.work(W)).rows
    assert (row.key, row.heal_at) == ("n1", NOW + 60)
    assert await store.step(row, machine.looked(row, None))
    assert (await store.work(W)).rows == []
    await store.close()


async def test_notes_are_recorded_once_with_their_intent(opener: Opener) -> None:
    store = await opener()
    note = NoteRow(W, "n1", "words", "body", "hb", "cli", NOW)
    assert await store.add_note(note) == (note, True)
    assert await store.add_note(replace(note, text="other")) == (note, False)
    (row,) = await store.deliveries(W, Kind.NOTE, ["n1"])
    assert (row.state, row.wanted_hash) == ("pending", "hb")
    await posted(store, "n1", kind=Kind.NOTE)
    assert await store.note_by_comment("c-n1") == note
    await store.edit_note(replace(note, text="new", body="body2", body_hash="hb2"))
    (row,) = (await store.work(W)).rows
    assert (row.state, row.delivered_hash, row.wanted_hash) == ("posted", "hb", "hb2")
    await store.close()


async def test_health_is_a_typed_record_per_watch(opener: Opener) -> None:
    store = await opener()
    await store.record_poll(W, ok=False, message="down", now=NOW)
    await store.record_poll(W, ok=True, message="fine", now=NOW + 1)
    await store.record_megathread(W, Thread("t1", "Megathread", "https://r/t1"), NOW)
    await store.set_paused(W, True, by="alice", now=NOW)
    health = await store.health(W)
    assert (health.last_poll_ok, health.last_good_poll_at, health.last_error) == (
        True,
        NOW + 1,
        "down",
    )
    assert health.megathread == Thread("t1", "Megathread", "https://r/t1")
    assert (health.paused, health.paused_by) == (True, "alice")
    assert (await store.health("other")).paused is False
    await store.close()


def _legacy_file(path: Path, version: int) -> sqlite3.Connection:
    raw = sqlite3.connect(path)
    for script in LEGACY_SCHEMAS[:version]:
        for statement in script.split(";"):
            if statement.strip():
                raw.execute(statement)
    raw.execute(f"PRAGMA user_version = {version}")
    return raw


async def test_version_1_file_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = _legacy_file(path, 1)
    view = sample_incident()
    raw.execute(
        "INSERT INTO incidents (page, incident_id, view, announce, is_open, rendered, "
        "rendered_hash, first_seen, changed_at) "
        "VALUES ('https://p', ?, ?, 1, 1, 'body', 'h', 1, 1)",
        (view.id, view_to_json(view)),
    )
    raw.commit()
    raw.close()
    store = await open_sqlite(path)
    assert await store.schema_version() == SCHEMA_VERSION
    (row,) = await store.open_incidents(W)
    assert (row.name, row.status, row.rendered_hash) == (view.name, view.status, "h")
    assert await store.body(W, Kind.INCIDENT, view.id) == Rendered("body", "h")
    await store.close()


async def test_version_2_file_keeps_comments_notices_and_health(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = _legacy_file(path, 2)
    view = sample_incident()
    page = "https://status.example.com"
    raw.execute("INSERT INTO pages VALUES (?, ?)", (page, BASELINE.isoformat()))
    raw.execute(
        "INSERT INTO incidents (page, incident_id, view, announce, is_open, rendered, "
        "rendered_hash, first_seen, changed_at, name, status) "
        "VALUES (?, ?, ?, 1, 1, 'body', 'h2', 1, 5, 'n', 'monitoring')",
        (page, view.id, view_to_json(view)),
    )
    raw.execute(
        "INSERT INTO comments (page, incident_id, thread_id, state, comment_id, permalink, "
        "delivered_hash, delivered_at) "
        "VALUES (?, ?, 't1', 'posted', 'c1', 'https://r/c1', 'h1', 3)",
        (page, view.id),
    )
    raw.execute(
        "INSERT INTO notes (page, note_id, thread_id, state, text, body, body_hash, comment_id, "
        "permalink, source, created_at) VALUES (?, 'n1', 't1', 'posted', 'hi', 'b', 'hb', 'c2', "
        "'https://r/c2', 'cli', 2)",
        (page,),
    )
    raw.execute(
        "INSERT INTO kv VALUES (?, ?)",
        (
            f"megathread:{page}",
            json.dumps({"at": 4, "id": "t1", "title": "Mega", "permalink": "p"}),
        ),
    )
    raw.execute(
        "INSERT INTO kv VALUES ('paused', ?)", (json.dumps({"paused": True, "by": "bob", "at": 6}),)
    )
    raw.commit()
    raw.close()
    store = await open_sqlite(path)
    (row,) = await store.deliveries(W, Kind.INCIDENT, [view.id])
    assert (row.state, row.comment_id, row.delivered_hash, row.wanted_hash) == (
        "posted",
        "c1",
        "h1",
        "h2",
    )
    (note_row,) = await store.deliveries(W, Kind.NOTE, ["n1"])
    assert (note_row.state, note_row.comment_id) == ("posted", "c2")
    health = await store.health(W)
    assert health.megathread == Thread("t1", "Mega", "p")
    assert (health.paused, health.paused_by) == (True, "bob")
    assert (await store.feed_state(W)).baseline_at == BASELINE
    assert {r.key for r in (await store.work(W)).rows} == {view.id}  # the edit to h2 is due
    await store.close()


async def test_version_3_file_gains_the_source_kind_and_keeps_its_health(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    store = await open_sqlite(path)
    await store.record_poll(W, ok=True, message="fine", now=5.0)
    await store.close()
    raw = sqlite3.connect(path)  # back to version 3's shape
    raw.execute("ALTER TABLE health DROP COLUMN source_kind")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    store = await open_sqlite(path)
    assert await store.schema_version() == SCHEMA_VERSION
    assert (await store.health(W)).last_poll_message == "fine"
    await store.record_poll(W, ok=True, message="fine", now=6.0, kind="incidentio")
    assert (await store.health(W)).source_kind == "incidentio"
    await store.close()


@pytest.mark.parametrize("version", [5, 6])
async def test_an_older_file_remembers_doubts_and_keeps_its_deliveries(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / f"v{version}.sqlite3"
    store = await open_sqlite(path)
    await save(store, incident("a"))
    await posted(store, "a")
    await store.close()
    raw = sqlite3.connect(path)  # back to that version's shape: no doubts
    raw.execute("DROP INDEX deliveries_active")
    raw.execute("ALTER TABLE deliveries DROP COLUMN heal_at")
    raw.execute(
        "CREATE INDEX deliveries_active ON deliveries (watch) WHERE (state IN ('pending', "
        "'posting') OR (state = 'posted' AND delivered_hash IS NOT wanted_hash))"
    )
    raw.execute(f"PRAGMA user_version = {version}")
    raw.commit()
    raw.close()
    store = await open_sqlite(path)
    assert await store.schema_version() == SCHEMA_VERSION
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["a"])
    assert (row.state, row.comment_id, row.heal_at) == ("posted", "c-a", None)
    assert await store.step(row, machine.looked(row, NOW + 30))
    await save(store, incident("a", "resolved"), now=NOW + 1)
    (row,) = await store.deliveries(W, Kind.INCIDENT, ["a"])
    assert await store.step(row, machine.edited(row, "h-a-resolved", NOW + 1))
    assert [r.heal_at for r in (await store.work(W)).rows] == [NOW + 30]  # resolved, in doubt
    await store.close()


# --- the same answers from both stores -------------------------------------------------------


async def test_commands_are_claimed_exactly_once_with_their_notice(store: StateStore) -> None:
    row = CommandRow("t4_m1", "alice", "note", "words", "running", NOW)
    note = NoteRow(W, "n-m1", "words", "body", "hb", "inbox", NOW)
    assert await store.claim_command(row, note) == (row, True)
    assert await store.claim_command(replace(row, author="mallory"), note) == (row, False)
    item = InboxItem("t4_m1", "alice", "!post words", is_mention=False)
    await store.finish_command(
        "t4_m1", "done", "posted", NOW + 1, outbox.reply(item, "posted", NOW)
    )
    await store.command_read("t4_m1")
    assert await store.command("t4_m1") == replace(
        row, state="done", result="posted", done_at=NOW + 1, marked_read=True
    )
    assert await store.command("m2") is None
    (delivery,) = await store.deliveries(W, Kind.NOTE, ["n-m1"])
    assert (delivery.state, delivery.wanted_hash) == ("pending", "hb")
    (reply,) = await store.outbox()  # recorded with the result, in one transaction
    assert (reply.key, reply.channel, reply.recipient) == (
        "reply-t4_m1",
        Channel.MESSAGE_REPLY,
        "t4_m1",
    )
    assert reply.body.startswith("posted\n\n")
    assert marker_of(reply.body) == "msg-reply-t4_m1"


async def test_a_refusal_is_recorded_with_its_reply_once(store: StateStore) -> None:
    item = InboxItem("t1_m2", "mallory", "u/modbot !pause", is_mention=True)
    refused = CommandRow("t1_m2", "mallory", "pause", "", "refused", NOW, "only moderators")
    reply = outbox.reply(item, "only moderators", NOW)
    assert await store.claim_command(refused, None, reply) == (refused, True)
    assert await store.claim_command(refused, None, replace(reply, body="other")) == (
        refused,
        False,
    )
    (message,) = await store.outbox()
    assert (message.channel, message.body) == (Channel.COMMENT_REPLY, reply.body)


async def test_messages_are_recorded_once_and_stepped_by_version(opener: Opener) -> None:
    first, second = await opener(), await opener()
    try:
        wanted = outbox.private_message("wiki-x", "alice", "subject", "words", NOW)
        message, new = await first.add_message(wanted)
        assert new
        assert (message.state, message.version, message.subject) == ("pending", 0, "subject")
        assert await second.add_message(replace(wanted, body="other")) == (message, False)
        claimed = machine.claim_message(message, NOW, hold=30.0)
        assert await first.step(message, claimed)
        assert not await second.step(message, machine.claim_message(message, NOW))  # stale
        lost = machine.unknown(claimed, "timeout", NOW + 1)
        assert await second.step(claimed, lost)
        assert await second.outbox() == [lost]
        found = machine.message_found(lost, PostedComment("m9", "", NOW), NOW + 40)
        assert await first.step(lost, found)
        assert await first.message("wiki-x") == found
        assert await first.outbox() == []  # settled: no longer read by a round
        assert await first.message("nothing") is None
    finally:
        await first.close()
        await second.close()


async def test_a_wiki_verdict_is_recorded_with_its_message_once(store: StateStore) -> None:
    row = WikiRow(W, "incident", "r1", "alice", NOW, "text", "good", decided_at=NOW)
    message = outbox.private_message(outbox.wiki_key(W, "incident", "r1"), "alice", "s", "b", NOW)
    await store.record_wiki(row, message)
    await store.record_wiki(replace(row, outcome="broken"), replace(message, body="other"))
    assert await store.wiki_rows(W) == [row]
    (told,) = await store.outbox()
    assert told.body == message.body


async def test_wiki_pages_are_kept_as_last_read(store: StateStore) -> None:
    page = WikiRevision("incident", "r1", "{{ x }}", "alice", NOW)
    assert await store.wiki_pages("ClaudeAI") == {}  # never read
    await store.record_wiki_pages("ClaudeAI", {"incident": page, "manual": None}, NOW)
    assert await store.wiki_pages("claudeai") == {"incident": page, "manual": None}
    await store.record_wiki_pages("ClaudeAI", {"incident": None}, NOW + 1)
    assert await store.wiki_pages("ClaudeAI") == {"incident": None, "manual": None}
    assert await store.wiki_pages("other") == {}


async def test_only_announced_or_forced_incidents_are_worked_on(store: StateStore) -> None:
    quiet = Tracked(replace(sample_incident(), id="q"), announce=False)
    await save(store, incident("a"), quiet)
    assert set(await store.tracked(W, ["a", "q"])) == {"a", "q"}
    assert set(await store.announced(W, ["a", "q"])) == {"a"}
    assert {r.incident_id for r in await store.open_incidents(W)} == {"a"}
    assert await store.deliveries(W, Kind.INCIDENT, ["q"]) == []
    assert await store.adopt_known(W, ["q", "a", "zz"]) == 1  # "a" is already announced
    assert await store.adopt_known(W, ["q"]) == 0
    assert set(await store.announced(W, ["a", "q"])) == {"a", "q"}
    assert {key for _, key in (await store.work(W)).subjects} == {"a", "q"}


async def test_nul_characters_are_stored_not_fatal(store: StateStore) -> None:
    """SQLite keeps a NUL; PostgreSQL's text cannot, and stores U+FFFD instead."""
    odd = Tracked(replace(sample_incident(), id="a", name="bad\x00name"), announce=True)
    await store.save_poll(
        W,
        url="https://status.example.com",
        changed={"a": odd},
        rendered={"a": Rendered("body\x00", "h")},
        render_errors={},
        validators=Validators(etag="e\x00"),
        baseline_at=BASELINE,
        page=None,
        now=NOW,
    )
    assert await store.tracked(W, ["a"]) == {"a": odd}  # the view is kept as JSON
    (row,) = await store.open_incidents(W)
    assert row.name in ("bad\x00name", "bad\ufffdname")
    body = await store.body(W, Kind.INCIDENT, "a")
    assert body is not None
    assert body.body in ("body\x00", "body\ufffd")
    command = CommandRow("m\x00", "alice", "note", "x\x00y", "running", NOW)
    stored, new = await store.claim_command(command)
    assert new
    assert stored.argument in ("x\x00y", "x\ufffdy")
    assert await store.command("m\x00") == stored


async def scenario(store: StateStore) -> list[tuple[str, object]]:
    """Every method of the port, with answers made comparable across stores: rows are
    named by their subject and thread (ids are the store's), mappings are sorted."""
    answers: list[tuple[str, object]] = []

    def said(label: str, value: object) -> None:
        answers.append((label, comparable(value)))

    quiet = Tracked(replace(sample_incident(), id="q"), announce=False)
    fresh = incident("c")
    await store.save_poll(
        W,
        url="https://status.example.com",
        changed={t.view.id: t for t in (incident("a"), incident("b"), fresh, quiet)},
        rendered={"a": Rendered("body a", "ha"), "q": Rendered("body q", "hq")},
        render_errors={"b": "incident.md.j2, line 1: boom"},
        validators=Validators('"e1"', "Mon, 01 Jan 2026 00:00:00 GMT", "d1"),
        baseline_at=BASELINE,
        page=PageInfo("Example", "https://status.example.com"),
        now=NOW,
    )
    said("feed", await store.feed_state(W))
    said("feed of another watch", await store.feed_state("other"))
    said("tracked", await store.tracked(W, ["a", "b", "c", "q", "zz"]))
    said("tracked none", await store.tracked(W, []))
    said("announced", await store.announced(W, ["a", "b", "c", "q"]))
    said("unrendered", await store.unrendered(W))
    said("open", await store.open_incidents(W))
    said("work", await store.work(W))
    said("body of a", await store.body(W, Kind.INCIDENT, "a"))
    said("body of b", await store.body(W, Kind.INCIDENT, "b"))
    said("body of nothing", await store.body(W, Kind.NOTE, "zz"))
    await store.save_renders(W, {"b": Rendered("body b", "hb"), "c": Rendered("body c", "hc")}, {})
    said("unrendered after", await store.unrendered(W))
    await posted(store, "a")
    await posted(store, "b")
    said("in thread", await store.in_thread(W, "t1"))
    said("in another thread", await store.in_thread(W, "t9"))
    await store.save_poll(
        W,
        url="https://status.example.com/v2",
        changed={"a": incident("a", "resolved"), "b": incident("b", "resolved")},
        rendered={"a": Rendered("body a resolved", "ha2"), "b": Rendered("b resolved", "hb2")},
        render_errors={},
        validators=Validators(None, None, "d2"),
        baseline_at=datetime(2027, 1, 1, tzinfo=UTC),
        page=None,
        now=NOW + 10,
    )
    said("feed after", await store.feed_state(W))
    said("settled", await store.recent_settled(W, 5))
    said("settled none", await store.recent_settled(W, 0))
    said("rerender t1", await store.rerender_scope(W, closed_since=NOW, thread_id="t1"))
    said("rerender late", await store.rerender_scope(W, closed_since=NOW + 11, thread_id="t1"))
    said("rerender unplaced", await store.rerender_scope(W, closed_since=0, thread_id=None))
    said("work after closing", await store.work(W))
    said("work of b", await store.work(W, [(Kind.INCIDENT, "b")]))
    await store.force(W, Tracked(replace(sample_incident(), id="f"), announce=False), now=NOW)
    await store.force(W, quiet, now=NOW)
    said("announced forced", await store.announced(W, ["f", "q"]))
    said("adopt", await store.adopt_known(W, ["a", "f", "q", "zz"]))
    said("start in t1 again", await store.start_delivery(W, Kind.INCIDENT, "b", "t1", now=NOW))
    said("start in t2", await store.start_delivery(W, Kind.INCIDENT, "b", "t2", now=NOW))
    (old, new) = await store.deliveries(W, Kind.INCIDENT, ["b"])
    said(
        "stale step",
        await store.step(replace(old, version=old.version - 1), machine.gone(old, "x")),
    )
    said("taken thread", await store.step(new, machine.claim(new, "t1", NOW)))
    said("step", await store.step(old, machine.pointed(old, NOW)))
    said("deliveries", await store.deliveries(W, Kind.INCIDENT, ["a", "b", "c", "f", "q"]))
    said("deliveries none", await store.deliveries(W, Kind.INCIDENT, []))
    note = NoteRow(W, "n1", "words", "body", "hn", "cli", NOW, cut_chars=3)
    said("note", await store.add_note(note))
    said("note again", await store.add_note(replace(note, text="other")))
    await store.add_note(replace(note, note_id="n2", created_at=NOW + 5))
    await store.add_note(replace(note, note_id="n3"))
    await posted(store, "n1", kind=Kind.NOTE)
    await store.edit_note(replace(note, text="new", body="body 2", body_hash="hn2", cut_chars=0))
    said("one note", await store.note(W, "n1"))
    said("no note", await store.note(W, "zz"))
    said("note by comment", await store.note_by_comment("c-n1"))
    said("no note by comment", await store.note_by_comment("c-zz"))
    said("recent notes", await store.recent_notes(W, 5))
    said("recent note", await store.recent_notes(W, 1))
    said("work with notes", await store.work(W))
    command = CommandRow("m1", "alice", "pause", "", "running", NOW)
    said("command", await store.claim_command(command))
    said("command again", await store.claim_command(replace(command, author="bob"), note))
    item = InboxItem("m1", "alice", "!pause", is_mention=False)
    reply = outbox.reply(item, "not a moderator", NOW)
    await store.finish_command("m1", "refused", "not a moderator", NOW + 1, reply)
    await store.command_read("m1")
    said("command after", await store.command("m1"))
    said("outbox", await store.outbox())
    (message,) = await store.outbox()
    claimed = machine.claim_message(message, NOW, hold=5.0)
    said("message step", await store.step(message, claimed))
    said("stale message step", await store.step(message, claimed))
    said("message", await store.message(reply.key))
    said("no message", await store.message("zz"))
    said("message added", await store.add_message(replace(reply, key="other")))
    said("message again", await store.add_message(replace(reply, key="other", body="x")))
    said("health before", await store.health(W))
    await store.record_poll(W, ok=False, message="down", now=NOW)
    await store.record_poll(W, ok=True, message="fine", now=NOW + 1, kind="statuspage")
    await store.record_poll(W, ok=True, message="fine again", now=NOW + 2)
    await store.record_reddit(W, error=None, kind="", now=NOW + 3)
    await store.record_reddit(W, error="429", kind="reddit", now=NOW + 4)
    await store.record_megathread(W, Thread("t1", "Mega", "https://r/t1"), NOW + 5)
    await store.set_paused(W, True, by="alice", now=NOW + 6)
    await store.record_templates(W, "templates/ (configured)", NOW + 7)
    said("health", await store.health(W))
    await store.record_megathread(W, None, NOW + 8)
    await store.set_paused(W, False, by="bob", now=NOW + 9)
    said("health after", await store.health(W))
    said("health of another watch", await store.health("other"))
    for page, revision, decided in (
        ("manual", "r2", NOW),
        ("incident", "r3", NOW),
        ("a", "r1", 5.0),
    ):
        wiki = WikiRow(W, page, revision, "alice", NOW, "{{ body }}", "good", decided_at=decided)
        told = outbox.private_message(outbox.wiki_key(W, page, revision), "alice", "s", "b", NOW)
        await store.record_wiki(wiki, told)
        await store.record_wiki(replace(wiki, outcome="broken"), told)  # judged once
    said("wiki", await store.wiki_rows(W))
    said("wiki messages", await store.outbox())
    revision = WikiRevision("incident", "r3", "{{ body }}", None, NOW)
    await store.record_wiki_pages("Sub", {"incident": revision, "manual": None}, NOW)
    said("wiki pages", await store.wiki_pages("sub"))
    said("wiki of another watch", await store.wiki_rows("other"))
    said("damage", await store.integrity_problems())
    await store.writable()
    return answers


def comparable(value: object) -> object:
    """``value`` with the store's own choices taken out: delivery ids, wall-clock times
    (``adopt_known`` stamps its rows) and the order of mappings."""
    if isinstance(value, MessageRow):
        fields = dataclasses.asdict(value)
        fields["id"] = value.key
        return ("MessageRow", comparable(fields))
    if isinstance(value, DeliveryRow):
        fields = dataclasses.asdict(value)
        fields["id"] = (value.kind, value.key, value.thread_id)
        if fields["created_at"] > time.time() - 3600:
            fields["created_at"] = "wall clock"
        return ("DeliveryRow", comparable(fields))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            comparable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}),
        )
    if isinstance(value, Mapping):
        return sorted((repr(k), comparable(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return value


async def test_postgresql_answers_every_method_as_sqlite_does(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite = await open_sqlite(tmp_path / "state.sqlite3")
    postgres = await open_postgres(postgres_url)
    try:
        expected, got = await scenario(sqlite), await scenario(postgres)
    finally:
        await sqlite.close()
        await postgres.close()
    assert [label for label, _ in got] == [label for label, _ in expected]
    for (label, answer), (_, reference) in zip(got, expected, strict=True):
        assert (label, answer) == (label, reference)


# --- PostgreSQL: schema, errors, timeouts, concurrent writers -------------------------------


def raw(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


async def test_postgresql_schema_is_created_once_and_versioned(postgres_url: str) -> None:
    store = await open_postgres(postgres_url)
    assert await store.schema_version() == SCHEMA_VERSION
    assert await store.integrity_problems() == []
    await store.writable()
    await store.close()
    await (await open_postgres(postgres_url)).close()  # opening again changes nothing
    with raw(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'health'"
        ).fetchall()
        assert ("source_kind",) in columns
        conn.execute("DROP TABLE notes")
    store = await open_postgres(postgres_url)
    assert await store.integrity_problems() == ["table notes is missing"]
    await store.close()


async def test_postgresql_version_1_gains_the_wiki_revisions(postgres_url: str) -> None:
    store = await open_postgres(postgres_url)
    await store.record_poll(W, ok=True, message="fine", now=NOW)
    await store.close()
    with raw(postgres_url) as conn:  # back to version 1's shape
        conn.execute("DROP TABLE wiki_revisions, leadership, members")
        conn.execute("ALTER TABLE deliveries DROP COLUMN epoch")
        conn.execute("ALTER TABLE deliveries DROP COLUMN heal_at")  # drops its index too
        conn.execute(
            "CREATE INDEX deliveries_active ON deliveries (watch) WHERE (state IN ('pending', "
            "'posting') OR (state = 'posted' AND delivered_hash IS DISTINCT FROM wanted_hash))"
        )
        conn.execute("UPDATE schema_version SET version = 1")
    store = await open_postgres(postgres_url)
    assert await store.schema_version() == SCHEMA_VERSION
    assert await store.integrity_problems() == []
    assert (await store.health(W)).last_poll_message == "fine"
    await store.record_wiki(WikiRow(W, "incident", "r1", "alice", NOW, "{{ x }}", "good"))
    assert [r.revision_id for r in await store.wiki_rows(W)] == ["r1"]
    await store.close()


async def test_postgresql_from_a_newer_modbot_is_refused(postgres_url: str) -> None:
    await (await open_postgres(postgres_url)).close()
    with raw(postgres_url) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer modbot"):
        await open_postgres(postgres_url)


@pytest.mark.parametrize("table", ["feeds", "deliveries"])
async def test_postgresql_tables_of_another_program_are_left_alone(
    postgres_url: str, table: str
) -> None:
    with raw(postgres_url) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER)")
    with pytest.raises(StoreError, match=f"already has tables named {table} that modbot did not"):
        await open_postgres(postgres_url)
    with raw(postgres_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'incidents'"
        ).fetchone() == (0,)


async def test_postgresql_another_programs_schema_version_table_is_not_migrated(
    postgres_url: str,
) -> None:
    with raw(postgres_url) as conn:  # Flyway's table before version 5, and a namesake
        conn.execute(
            "CREATE TABLE schema_version (installed_rank INTEGER, version VARCHAR(50), "
            "description VARCHAR(200))"
        )
        conn.execute("INSERT INTO schema_version VALUES (1, '1', 'init')")
        conn.execute("CREATE TABLE deliveries (id INTEGER)")
    with pytest.raises(StoreError, match="schema_version table that is not modbot's"):
        await open_postgres(postgres_url)
    with raw(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'deliveries'"
        ).fetchall()
    assert tables == [("deliveries",), ("schema_version",)]
    assert columns == [("id",)]


def assert_one_safe_line(message: str) -> None:
    assert "\n" not in message
    assert SECRET not in message
    assert "Traceback" not in message


async def test_postgresql_wrong_password_is_one_line_without_it(
    postgres_server: str, postgres_url: str
) -> None:
    right = "right-" + SECRET[::-1]
    with raw(postgres_server) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_ROLE,))
        verb = "ALTER" if exists.fetchone() else "CREATE"
        admin.execute(f"{verb} ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{right}'")
    parts = urlsplit(postgres_url)
    with raw(postgres_server) as admin:  # its own database, to create the tables in
        admin.execute(f"ALTER DATABASE {parts.path.strip('/')} OWNER TO {PASSWORD_ROLE}")
    where = f"{parts.hostname}:{parts.port}{parts.path}"
    wrong_url = f"postgresql://{PASSWORD_ROLE}:{SECRET}@{where}"
    try:
        psycopg.connect(wrong_url, connect_timeout=10).close()
    except psycopg.OperationalError:
        pass
    else:
        unavailable("the server does not check passwords, so a wrong one cannot be tested")
    with pytest.raises(StoreError) as caught:
        await open_postgres(wrong_url)
    message = str(caught.value)
    assert_one_safe_line(message)
    assert "password authentication failed" in message
    assert f"postgresql://{PASSWORD_ROLE}:***@{where}" in message
    store = await open_postgres(f"postgresql://{PASSWORD_ROLE}:{right}@{where}")
    await store.close()


async def test_postgresql_refused_connection_is_one_line_without_the_password() -> None:
    url = f"postgresql://modbot:{SECRET}@127.0.0.1:{free_port()}/modbot?password={SECRET}"
    with pytest.raises(StoreError, match="cannot connect to the database") as caught:
        await open_postgres(url)
    assert_one_safe_line(str(caught.value))


async def test_postgresql_silent_server_times_out_in_one_line() -> None:
    """A server that accepts the connection and never answers: connect_timeout ends it."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(StoreError, match="cannot connect") as caught:
            await open_postgres(
                f"postgresql://modbot:{SECRET}@127.0.0.1:{port}/modbot", connect_timeout=2
            )
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 15
    assert_one_safe_line(str(caught.value))


async def test_postgresql_held_writers_lock_is_a_busy_error_not_a_hang(postgres_url: str) -> None:
    store = await open_postgres(postgres_url, statement_timeout=0.5)
    with raw(postgres_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        with pytest.raises(StoreError, match="is busy"):
            await store.set_paused(W, True, by="alice", now=NOW)
        assert (await store.health(W)).paused is False  # reads do not wait for writers
    await store.set_paused(W, True, by="alice", now=NOW)
    assert (await store.health(W)).paused is True
    await store.close()


async def test_postgresql_lost_connection_is_replaced(postgres_url: str) -> None:
    store = await open_postgres(postgres_url)
    await store.record_poll(W, ok=True, message="fine", now=NOW)
    assert isinstance(store.dialect, PostgresDialect)
    assert store.dialect._conn is not None
    with raw(postgres_url) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store.dialect._conn.info.backend_pid,))
    with pytest.raises(StoreError) as caught:
        await store.health(W)
    assert_one_safe_line(str(caught.value))
    assert (await store.health(W)).last_poll_message == "fine"  # a new connection
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.health(W)


async def test_postgresql_racing_stores_one_step_wins(postgres_url: str) -> None:
    first, second = await open_postgres(postgres_url), await open_postgres(postgres_url)
    keys = [f"i{n}" for n in range(20)]
    await save(first, *(incident(key) for key in keys))
    rows = await second.deliveries(W, Kind.INCIDENT, keys)
    assert len(rows) == len(keys)
    for row in rows:
        won = await asyncio.gather(
            first.step(row, machine.claim(row, "t1", NOW)),
            second.step(row, machine.claim(row, "t2", NOW)),
        )
        assert sorted(won) == [False, True]
        (now_row,) = await first.deliveries(W, Kind.INCIDENT, [row.key])
        assert (now_row.state, now_row.version, now_row.attempts) == ("posting", 1, 1)
        assert now_row.thread_id == ("t1" if won[0] else "t2")
    await first.close()
    await second.close()


async def test_postgresql_racing_writers_take_turns(postgres_url: str) -> None:
    """Read-then-write methods of two processes never interleave: one delivery row per
    new incident, one claim per command, and no error."""
    first, second = await open_postgres(postgres_url), await open_postgres(postgres_url)
    for n in range(10):
        await asyncio.gather(save(first, incident(f"i{n}")), save(second, incident(f"i{n}")))
        claims = await asyncio.gather(
            first.claim_command(CommandRow(f"m{n}", "alice", "pause", "", "running", NOW)),
            second.claim_command(CommandRow(f"m{n}", "bob", "pause", "", "running", NOW)),
        )
        assert sorted(new for _, new in claims) == [False, True]
        assert claims[0][0] == claims[1][0]
    rows = await first.deliveries(W, Kind.INCIDENT, [f"i{n}" for n in range(10)])
    assert len(rows) == 10
    await first.close()
    await second.close()


# --- choosing the store ----------------------------------------------------------------------


async def test_open_store_picks_the_store_from_the_location(
    tmp_path: Path, postgres_url: str
) -> None:
    for location in (tmp_path / "a.sqlite3", f"sqlite:///{tmp_path / 'b.sqlite3'}"):
        store = await open_store(location)
        assert isinstance(store, SqlStore)
        assert isinstance(store.dialect, SqliteDialect)
        await store.close()
    assert (tmp_path / "b.sqlite3").exists()
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = await open_store(url)
        assert isinstance(store, SqlStore)
        assert isinstance(store.dialect, PostgresDialect)
        await store.close()
    with pytest.raises(StoreError, match="not a mysql:// URL"):
        await open_store("mysql://root@localhost/modbot")


def test_the_database_setting_takes_paths_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(env_file=None).database == Path("modbot.sqlite3")
    assert load_settings(env_file=None, database=Path("x.sqlite3")).database == Path("x.sqlite3")
    assert load_settings(env_file=None, database="sqlite:///y.db").database == Path("y.db")
    url = f"postgresql://modbot:{SECRET}@db.example.com:5432/modbot"
    monkeypatch.setenv("MODBOT_DATABASE", url)
    database = load_settings(env_file=None).database
    assert database == DatabaseURL(url)
    assert database.exists()
    shown = f"{database} {database!r} {[database]}"
    assert SECRET not in shown
    assert "postgresql://modbot:***@db.example.com:5432/modbot" in shown
    for bad in ("mysql://root@localhost/modbot", f"postgresql://u:{SECRET}@x@db.example.com/m"):
        monkeypatch.setenv("MODBOT_DATABASE", bad)
        with pytest.raises(ConfigError, match="MODBOT_DATABASE") as caught:
            load_settings(env_file=None)
        assert_one_safe_line(str(caught.value))


async def test_the_bot_runs_on_postgresql_and_the_commands_read_it(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings], postgres_url: str
) -> None:
    from modbot.cli import service
    from tests.fakes.statuspage import incident as page_incident
    from tests.fakes.statuspage import update

    settings = make_settings(statuspage_url=statuspage.url, database=postgres_url)
    assert isinstance(settings.database, DatabaseURL)
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        statuspage.set_incidents(
            [page_incident("inc1", "investigating", [update("u0", "investigating", "looking", 0)])]
        )
        await app.run_once()
        statuspage.set_incidents(
            [
                page_incident(
                    "inc1",
                    "resolved",
                    [
                        update("u1", "resolved", "fixed", 10),
                        update("u0", "investigating", "looking", 0),
                    ],
                )
            ]
        )
        await app.run_once()
    assert out.getvalue().count("[dry-run] ") == 2  # one new comment, one edit
    lines: list[tuple[str, str]] = []
    assert await service._check_store(settings, lambda name, text: lines.append((name, text))) == 0
    assert lines == [("state file", f"ok: {settings.database} (schema {SCHEMA_VERSION}, writable)")]
    status = io.StringIO()
    assert await service.status(settings, status) == 0
    settled = status.getvalue().split("recently settled")[1]
    assert "inc1" in settled
    assert "resolved" in settled
