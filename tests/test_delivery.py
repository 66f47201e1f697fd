"""The delivery planner: which post, edit, reconcile or pointer is due, and when."""

from __future__ import annotations

from dataclasses import replace

from modbot.delivery import Edit, Point, Post, Reconcile, plan
from modbot.store import CommentRow, IncidentRow


def incident(incident_id: str = "a", *, is_open: bool = True, digest: str = "h2") -> IncidentRow:
    return IncidentRow(
        incident_id, is_open, f"body {digest}", digest, None, "name", "investigating"
    )


def row(thread: str = "t1", state: str = "posted", **fields: object) -> CommentRow:
    base = CommentRow(
        incident_id="a",
        thread_id=thread,
        state=state,
        comment_id="c1",
        permalink=f"/{thread}/c1",
        delivered_hash="h1",
        delivered_at=100.0,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_open_incident_without_comment_is_posted() -> None:
    assert plan([incident()], [], thread_id="t1", now=200, min_edit_interval=5).actions == (
        Post("a", "t1"),
    )


def test_nothing_happens_without_a_megathread_except_edits_elsewhere() -> None:
    result = plan([incident()], [row()], thread_id=None, now=200, min_edit_interval=5)
    assert result.actions == (Edit("a", "t1", "c1"),)
    assert plan([incident()], [], thread_id=None, now=200, min_edit_interval=5).actions == ()


def test_unrendered_incident_waits() -> None:
    item = replace(incident(), rendered=None, rendered_hash=None)
    assert plan([item], [], thread_id="t1", now=200, min_edit_interval=5).actions == ()


def test_changed_body_is_edited_after_the_gap() -> None:
    early = plan(
        [incident()], [row(delivered_at=198.0)], thread_id="t1", now=200, min_edit_interval=5
    )
    assert early.actions == ()
    assert early.wake_at == 203.0
    late = plan(
        [incident()], [row(delivered_at=190.0)], thread_id="t1", now=200, min_edit_interval=5
    )
    assert late.actions == (Edit("a", "t1", "c1"),)


def test_unchanged_body_is_never_edited() -> None:
    result = plan([incident(digest="h1")], [row()], thread_id="t1", now=999, min_edit_interval=0)
    assert result.actions == ()
    assert result.wake_at is None


def test_posting_row_is_reconciled_not_posted() -> None:
    pending = row(state="posting", comment_id=None, intent_at=150.0)
    assert plan([incident()], [pending], thread_id="t1", now=200, min_edit_interval=5).actions == (
        Reconcile("a", "t1"),
    )


def test_not_before_delays_posts_and_edits() -> None:
    waiting = row(state="pending", comment_id=None, not_before=300.0)
    result = plan([incident()], [waiting], thread_id="t1", now=200, min_edit_interval=5)
    assert result.actions == ()
    assert result.wake_at == 300.0


def test_removed_comment_is_not_reposted() -> None:
    gone = row(state="removed")
    assert plan([incident()], [gone], thread_id="t1", now=200, min_edit_interval=5).actions == ()


def test_open_incident_moves_to_the_new_megathread_then_points_there() -> None:
    old = row("t1")
    first = plan([incident()], [old], thread_id="t2", now=200, min_edit_interval=5)
    assert Post("a", "t2") in first.actions
    new = row("t2", comment_id="c2", permalink="/t2/c2", delivered_hash="h2")
    second = plan([incident()], [old, new], thread_id="t2", now=200, min_edit_interval=5)
    assert second.actions == (Point("a", "t1", "c1", "/t2/c2"),)


def test_resolved_incident_stays_in_its_thread() -> None:
    done = incident(is_open=False, digest="h3")
    result = plan([done], [row("t1")], thread_id="t2", now=200, min_edit_interval=5)
    assert result.actions == (Edit("a", "t1", "c1"),)


def test_resolved_incident_never_delivered_is_still_posted() -> None:
    done = incident(is_open=False)
    assert plan([done], [], thread_id="t2", now=200, min_edit_interval=5).actions == (
        Post("a", "t2"),
    )


def test_closed_thread_row_is_left_alone_and_incident_rehomed() -> None:
    closed = row("t1", state="closed")
    result = plan([incident()], [closed], thread_id="t2", now=200, min_edit_interval=5)
    assert result.actions == (Post("a", "t2"),)
