"""The SQLite store: schema and migrations, durability settings, versioned steps, and
reads that follow the open work rather than the history."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modbot import machine
from modbot.codec import view_to_json
from modbot.errors import StoreError
from modbot.machine import State
from modbot.records import Kind, NoteRow, PostedComment, Rendered, Thread, Tracked, Validators
from modbot.render import sample_incident
from modbot.store import LEGACY_SCHEMAS, SCHEMA_VERSION, SqliteStore

NOW = 1_000.0
BASELINE = datetime(2026, 1, 1, tzinfo=UTC)
W = "default"


def incident(incident_id: str, status: str = "investigating") -> Tracked:
    return Tracked(replace(sample_incident(), id=incident_id, status=status), announce=True)


async def save(store: SqliteStore, *items: Tracked, now: float = NOW) -> None:
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


async def posted(
    store: SqliteStore, key: str, thread: str = "t1", *, kind: Kind = Kind.INCIDENT
) -> None:
    """Take a subject's pending row through claim and answer, as the deliverer would."""
    (row,) = [r for r in await store.deliveries(W, kind, [key]) if r.state == State.PENDING]
    claimed = machine.claim(row, thread, NOW)
    assert await store.step(row, claimed)
    body = await store.body(W, kind, key)
    assert body is not None
    comment = PostedComment(f"c-{key}", f"https://r/{key}", NOW)
    assert await store.step(claimed, machine.answered(claimed, comment, body.digest, NOW))


async def test_new_file_gets_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "sub" / "state.sqlite3")
    assert await store.schema_version() == SCHEMA_VERSION
    assert await store.integrity_problems() == []
    await store.close()
    raw = sqlite3.connect(tmp_path / "sub" / "state.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


async def test_file_from_a_newer_modbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    await (await SqliteStore.open(path)).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="newer modbot"):
        await SqliteStore.open(path)


async def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"state\.sqlite3"):
        await SqliteStore.open(path)


async def test_poll_results_and_validators_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = await SqliteStore.open(path)
    item = incident("a")
    await save(store, item)
    await store.close()
    again = await SqliteStore.open(path)
    assert await again.tracked(W, ["a", "zz"]) == {"a": item}
    state = await again.feed_state(W)
    assert (state.baseline_at, state.validators.etag) == (BASELINE, '"e1"')
    assert await again.body(W, Kind.INCIDENT, "a") == Rendered(
        "body a investigating", "h-a-investigating"
    )
    (row,) = await again.deliveries(W, Kind.INCIDENT, ["a"])
    assert (row.state, row.thread_id, row.wanted_hash) == ("pending", None, "h-a-investigating")
    await again.close()


async def test_render_error_keeps_the_previous_body(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.sqlite3")
    await save(store, incident("a"))
    await store.save_renders(W, {}, {"a": "incident.md.j2, line 3: boom"})
    assert (await store.body(W, Kind.INCIDENT, "a")) == Rendered(
        "body a investigating", "h-a-investigating"
    )
    (row,) = await store.open_incidents(W)
    assert row.render_error == "incident.md.j2, line 3: boom"
    await store.close()


async def test_only_one_process_can_take_a_step(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first, second = await SqliteStore.open(path), await SqliteStore.open(path)
    await save(first, incident("a"))
    (row,) = await second.deliveries(W, Kind.INCIDENT, ["a"])
    assert await first.step(row, machine.claim(row, "t1", NOW)) is True
    assert await second.step(row, machine.claim(row, "t1", NOW)) is False
    (now_row,) = await second.deliveries(W, Kind.INCIDENT, ["a"])
    assert (now_row.state, now_row.attempts, now_row.version) == ("posting", 1, 1)
    await first.close()
    await second.close()


async def test_a_subject_holds_one_row_per_thread(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.sqlite3")
    await save(store, incident("a"))
    await posted(store, "a", "t1")
    assert await store.start_delivery(W, Kind.INCIDENT, "a", "t1", now=NOW) is None
    fresh = await store.start_delivery(W, Kind.INCIDENT, "a", "t2", now=NOW)
    assert fresh is not None
    assert (fresh.state, fresh.wanted_hash) == ("pending", "h-a-investigating")
    await store.close()


async def test_work_reads_open_incidents_and_active_rows_only(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.sqlite3")
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


async def test_notes_are_recorded_once_with_their_intent(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.sqlite3")
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


async def test_health_is_a_typed_record_per_watch(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.sqlite3")
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
    store = await SqliteStore.open(path)
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
    store = await SqliteStore.open(path)
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
    store = await SqliteStore.open(path)
    await store.record_poll(W, ok=True, message="fine", now=5.0)
    await store.close()
    raw = sqlite3.connect(path)  # back to version 3's shape
    raw.execute("ALTER TABLE health DROP COLUMN source_kind")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    store = await SqliteStore.open(path)
    assert await store.schema_version() == SCHEMA_VERSION == 4
    assert (await store.health(W)).last_poll_message == "fine"
    await store.record_poll(W, ok=True, message="fine", now=6.0, kind="incidentio")
    assert (await store.health(W)).source_kind == "incidentio"
    await store.close()
