"""The SQLite store: schema migration, durability settings, the post claim."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modbot.errors import StoreError
from modbot.incidents import Tracked, view_to_json
from modbot.render import Rendered, sample_incident
from modbot.store import MIGRATIONS, Store

NOW = 1_000.0
BASELINE = datetime(2026, 1, 1, tzinfo=UTC)


def test_new_file_gets_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "sub" / "state.sqlite3")
    assert store.schema_version == len(MIGRATIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.integrity_problems() == []
    store.close()


def test_file_from_a_newer_modbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="newer modbot"):
        Store.open(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open the state file"):
        Store.open(path)


def test_poll_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store.open(path)
    view = sample_incident()
    body = Rendered("text", "hash")
    store.save_poll(
        "page",
        changed={view.id: Tracked(view, True)},
        rendered={view.id: body},
        render_errors={},
        now=NOW,
        baseline_at=BASELINE,
    )
    store.close()
    again = Store.open(path)
    assert again.tracked("page") == {view.id: Tracked(view, True)}
    assert again.baseline_at("page") == BASELINE
    row = again.incident("page", view.id)
    assert row is not None
    assert (row.rendered, row.rendered_hash, row.is_open) == ("text", "hash", True)
    again.close()


def test_render_error_keeps_the_previous_body(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    view = sample_incident()
    store.save_poll(
        "p",
        changed={view.id: Tracked(view, True)},
        rendered={view.id: Rendered("v1", "h1")},
        render_errors={},
        now=NOW,
        baseline_at=BASELINE,
    )
    store.save_renders("p", {}, {view.id: "incident.md.j2, line 3: boom"})
    row = store.incident("p", view.id)
    assert row is not None
    assert (row.rendered, row.render_error) == ("v1", "incident.md.j2, line 3: boom")


def test_only_one_process_can_claim_a_post(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first, second = Store.open(path), Store.open(path)
    assert first.claim_post("p", "a", "t", intent_hash="h", now=NOW) is True
    assert second.claim_post("p", "a", "t", intent_hash="h", now=NOW) is False
    row = second.comment("p", "a", "t")
    assert row is not None
    assert (row.state, row.intent_hash, row.attempts) == ("posting", "h", 1)


def test_pending_row_waits_for_not_before(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    store.update_comment("p", "a", "t", state="pending", not_before=NOW + 10)
    assert store.claim_post("p", "a", "t", intent_hash="h", now=NOW) is False
    assert store.claim_post("p", "a", "t", intent_hash="h", now=NOW + 11) is True


def test_unknown_comment_fields_are_rejected(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    with pytest.raises(ValueError, match="unknown comments fields"):
        store.update_comment("p", "a", "t", bogus=1)


def test_version_1_file_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            raw.execute(statement)
    view = sample_incident()
    raw.execute(
        "INSERT INTO incidents (page, incident_id, view, announce, is_open, rendered, "
        "rendered_hash, first_seen, changed_at) VALUES ('p', ?, ?, 1, 1, 'body', 'h', 1, 1)",
        (view.id, view_to_json(view)),
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS) >= 2
    row = store.incident("p", view.id)
    assert row is not None
    assert (row.name, row.status, row.rendered) == (view.name, view.status, "body")
    assert store.notes("p") == []
    assert store.commands() == []


def test_settled_incidents_are_left_out_of_delivery_planning(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    base = sample_incident()
    views = {
        name: base.__class__(**{**base.__dict__, "id": name, "status": status})
        for name, status in [("open", "investigating"), ("settled", "resolved"),
                             ("stale", "resolved"), ("unsure", "resolved")]
    }  # fmt: skip
    store.save_poll(
        "p", changed={k: Tracked(v, True) for k, v in views.items()},
        rendered={k: Rendered(f"body {k}", f"h-{k}") for k in views}, render_errors={},
        now=NOW, baseline_at=BASELINE,
    )  # fmt: skip
    store.update_comment("p", "open", "t", state="posted", delivered_hash="h-open")
    store.update_comment("p", "settled", "t", state="posted", delivered_hash="h-settled")
    store.update_comment("p", "stale", "t", state="posted", delivered_hash="old")
    store.update_comment("p", "unsure", "t", state="posted", delivered_hash="h-unsure")
    store.update_comment("p", "unsure", "t2", state="posting")
    assert {r.incident_id for r in store.deliverable("p")} == {"open", "stale", "unsure"}
    assert all(r.rendered is None for r in store.deliverable("p"))
    assert {r.incident_id for r in store.comments("p", ["stale"])} == {"stale"}


def test_notes_can_be_read_by_state(tmp_path: Path) -> None:
    from modbot.store import NoteRow

    store = Store.open(tmp_path / "s.sqlite3")
    for number, state in enumerate(["posted", "posting", "failed", "pending"]):
        note = NoteRow(f"n{number}", state, "t", "b", "h", "cli", created_at=NOW + number)
        store.add_note("p", note)
    assert [n.note_id for n in store.notes("p", ("posting", "pending"))] == ["n3", "n1"]
    assert len(store.notes("p")) == 4
