"""The planner: which post, edit, reconcile, pointer or drop is due, and when."""

from __future__ import annotations

from dataclasses import replace

from modbot.core.planner import Drop, Edit, Heal, Plan, Point, Post, Reconcile, plan
from modbot.core.records import DeliveryRow, Kind, Subject

INC = Kind.INCIDENT


def subject(*, is_open: bool = True, wanted: str | None = "h2", kind: Kind = INC) -> Subject:
    return Subject(kind, "a", is_open, wanted)


def row(thread: str | None = "t1", state: str = "posted", **fields: object) -> DeliveryRow:
    base = DeliveryRow(
        id=1,
        watch="w",
        kind=INC,
        key="a",
        state=state,
        thread_id=thread,
        comment_id="c1" if state == "posted" else None,
        permalink=f"/{thread}/c1" if state == "posted" else None,
        wanted_hash="h2",
        delivered_hash="h1" if state == "posted" else None,
        delivered_at=100.0 if state == "posted" else None,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def run(
    item: Subject, rows: list[DeliveryRow], *, thread: str | None = "t1", now: float = 200
) -> Plan:
    return plan({(item.kind, item.key): item}, rows, thread_id=thread, now=now, min_edit_interval=5)


def test_a_new_incident_pending_without_a_thread_is_posted_in_the_megathread() -> None:
    waiting = row(None, "pending")
    assert run(subject(), [waiting]).actions == (Post(INC, "a", "t1", waiting),)


def test_an_open_incident_with_no_row_gets_a_new_one() -> None:
    assert run(subject(), []).actions == (Post(INC, "a", "t1", None),)


def test_nothing_is_posted_without_a_megathread_but_edits_go_on() -> None:
    assert run(subject(), [row()], thread=None).actions == (Edit(row()),)
    assert run(subject(), [row(None, "pending")], thread=None).actions == ()


def test_an_unrendered_subject_waits() -> None:
    assert run(subject(wanted=None), [row(None, "pending")]).actions == ()


def test_a_changed_body_is_edited_after_the_gap() -> None:
    early = run(subject(), [row(delivered_at=198.0)])
    assert early.actions == ()
    assert early.wake_at == 203.0
    late = row(delivered_at=190.0)
    assert run(subject(), [late]).actions == (Edit(late),)


def test_an_unchanged_body_is_never_edited() -> None:
    result = run(subject(wanted="h1"), [row()], now=999)
    assert result.actions == ()
    assert result.wake_at is None


def test_a_posting_row_is_reconciled_not_posted_again() -> None:
    posting = row(state="posting", intent_at=150.0)
    assert run(subject(), [posting]).actions == (Reconcile(posting),)


def test_a_posting_row_in_an_old_thread_is_reconciled_there() -> None:
    posting = row("t0", state="posting", intent_at=150.0)
    actions = run(subject(), [posting]).actions
    assert Reconcile(posting) in actions
    assert Post(INC, "a", "t1", None) in actions  # the open incident also wants t1


def test_not_before_delays_posts_and_edits() -> None:
    waiting = row(None, "pending", not_before=300.0)
    result = run(subject(), [waiting])
    assert result.actions == ()
    assert result.wake_at == 300.0


def test_final_rows_are_left_alone() -> None:
    for state in ("removed", "moved", "failed"):
        assert run(subject(is_open=False), [row(state=state)]).actions == ()


def test_an_open_incident_moves_to_the_new_megathread_then_points_there() -> None:
    old = row("t1")
    assert Post(INC, "a", "t2", None) in run(subject(), [old], thread="t2").actions
    new = row("t2", id=2, comment_id="c2", permalink="/t2/c2", delivered_hash="h2")
    assert run(subject(), [old, new], thread="t2").actions == (Point(old, "/t2/c2"),)


def test_a_resolved_incident_stays_in_its_thread() -> None:
    old = row("t1")
    assert run(subject(is_open=False), [old], thread="t2").actions == (Edit(old),)


def test_a_resolved_incident_never_posted_is_still_posted() -> None:
    waiting = row(None, "pending")
    assert run(subject(is_open=False), [waiting], thread="t2").actions == (
        Post(INC, "a", "t2", waiting),
    )


def test_a_closed_thread_row_is_left_alone_and_an_open_incident_rehomed() -> None:
    closed = row("t1", state="closed")
    assert run(subject(), [closed], thread="t2").actions == (Post(INC, "a", "t2", None),)


def test_a_refused_post_in_an_old_thread_moves_to_the_current_one() -> None:
    refused = row("t1", state="pending")
    assert run(subject(), [refused], thread="t2").actions == (Post(INC, "a", "t2", refused),)


def test_pending_rows_nobody_needs_are_dropped() -> None:
    home = row("t1")
    stray = row(None, "pending", id=2)
    assert run(subject(wanted="h1"), [home, stray]).actions == (
        Drop(stray, "another comment serves this"),
    )


def test_a_notice_is_posted_once_and_never_follows_the_megathread() -> None:
    note = subject(is_open=False, kind=Kind.NOTE)
    waiting = row(None, "pending", kind=Kind.NOTE)
    assert run(note, [waiting]).actions == (Post(Kind.NOTE, "a", "t1", waiting),)
    done = row("t0", kind=Kind.NOTE, delivered_hash="h2")
    assert run(note, [done], thread="t1").actions == ()


def test_a_row_in_doubt_is_searched_for_late_copies_when_due_then_edited() -> None:
    early = row(heal_at=260.0)
    result = run(subject(wanted="h1"), [early])
    assert result.actions == ()
    assert result.wake_at == 260.0
    due = row(heal_at=200.0)
    assert run(subject(), [due]).actions == (Heal("t1", (due,)),)  # the edit waits a pass
    searched = row(heal_at=400.0)
    assert run(subject(), [searched]).actions == (Edit(searched),)


def test_rows_in_doubt_in_one_thread_share_one_search_even_unrendered_or_closed() -> None:
    incident = row(heal_at=150.0, delivered_hash="h2")
    notice = replace(row(heal_at=190.0), id=2, kind=Kind.NOTE, key="n", comment_id="c2")
    elsewhere = replace(row("t0", heal_at=100.0), id=3, key="b", comment_id="c3")
    subjects = {
        (INC, "a"): subject(is_open=False),
        (Kind.NOTE, "n"): Subject(Kind.NOTE, "n", False, "h1"),
        (INC, "b"): Subject(INC, "b", True, None),
    }
    result = plan(
        subjects, [incident, notice, elsewhere], thread_id="t1", now=200, min_edit_interval=5
    )
    assert set(result.actions) == {Heal("t0", (elsewhere,)), Heal("t1", (incident, notice))}


def test_only_posted_rows_are_searched() -> None:
    for state in ("pending", "posting", "moved", "closed"):
        assert not [
            a
            for a in run(subject(), [row(state=state, heal_at=100.0)]).actions
            if isinstance(a, Heal)
        ]
