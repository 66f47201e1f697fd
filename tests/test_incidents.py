"""The functional core: snapshots in, events and records out. No I/O here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modbot.core.codec import view_from_json, view_to_json
from modbot.core.feed import IncidentsFeed, parse_incidents, parse_incidents_object
from modbot.core.incidents import diff, touches, view_of
from modbot.core.records import EventKind, Tracked
from tests.conftest import SAMPLES
from tests.fakes.statuspage import at, incident, update

BASELINE = datetime(2026, 10, 7, 13, 30, tzinfo=UTC)


def feed(*incidents: dict[str, Any]) -> IncidentsFeed:
    return parse_incidents_object({"incidents": list(incidents)})


def apply(known: dict[str, Tracked], snapshot: IncidentsFeed, baseline: datetime | None = BASELINE):
    outcome = diff(known, snapshot, baseline_at=baseline)
    known.update(outcome.changed)
    return outcome


def kinds(outcome: Any) -> list[EventKind]:
    return [e.kind for e in outcome.events]


def test_first_start_records_resolved_and_announces_open() -> None:
    old = incident("old", "resolved", [update("u1", "resolved", "fixed", 1)])
    live = incident("live", "investigating", [update("u2", "investigating", "looking", 2)])
    known: dict[str, Tracked] = {}
    outcome = apply(known, feed(live, old), baseline=None)
    assert kinds(outcome) == [EventKind.OPENED]
    assert outcome.events[0].incident_id == "live"
    assert known["old"].announce is False
    assert known["live"].announce is True


def test_real_feed_baseline_announces_only_the_open_incident() -> None:
    snapshot = parse_incidents((SAMPLES / "claude-incidents-derived.json").read_bytes())
    outcome = diff({}, snapshot, baseline_at=None)
    assert [e.incident_id for e in outcome.events] == ["978mjkgw6mh7"]
    assert len(outcome.changed) == 25


def test_unchanged_snapshot_produces_nothing() -> None:
    live = incident("live", "investigating", [update("u1", "investigating", "looking", 2)])
    known: dict[str, Tracked] = {}
    apply(known, feed(live))
    again = apply(known, feed(live))
    assert again.events == ()
    assert dict(again.changed) == {}


def test_updated_at_churn_alone_is_silent() -> None:
    first = incident("a", "investigating", [update("u1", "investigating", "looking", 2)])
    known: dict[str, Tracked] = {}
    apply(known, feed(first))
    churned = incident(
        "a", "investigating", [update("u1", "investigating", "looking", 2, edited_minute=9)]
    )
    churned["updated_at"] = at(30)
    assert apply(known, feed(churned)).events == ()


def test_new_update_and_status_change() -> None:
    known: dict[str, Tracked] = {}
    apply(known, feed(incident("a", "investigating", [update("u1", "investigating", "x", 1)])))
    moved = incident(
        "a",
        "identified",
        [update("u2", "identified", "found it", 5), update("u1", "investigating", "x", 1)],
    )
    outcome = apply(known, feed(moved))
    assert kinds(outcome) == [EventKind.STATUS_CHANGED, EventKind.UPDATE_ADDED]


def test_full_life_produces_resolved_then_postmortem() -> None:
    known: dict[str, Tracked] = {}
    updates = [update("u1", "investigating", "x", 1)]
    apply(known, feed(incident("a", "investigating", list(updates))))
    updates.insert(0, update("u2", "resolved", "fixed", 9))
    resolved = apply(known, feed(incident("a", "resolved", list(updates))))
    assert EventKind.RESOLVED in kinds(resolved)
    postmortem = apply(known, feed(incident("a", "postmortem", list(updates))))
    assert kinds(postmortem) == [EventKind.POSTMORTEM_PUBLISHED]


def test_edited_update_body_is_an_event() -> None:
    known: dict[str, Tracked] = {}
    apply(
        known,
        feed(
            incident("a", "resolved", [update("u1", "resolved", "posted in error", 1)]),
        ),
        baseline=None,
    )
    known["a"] = Tracked(known["a"].view, announce=True)  # pretend it was announced
    edited = incident(
        "a",
        "resolved",
        [update("u1", "resolved", "Root cause: a bad deploy.", 1, edited_minute=900)],
    )
    outcome = apply(known, feed(edited))
    assert kinds(outcome) == [EventKind.UPDATE_EDITED]
    assert known["a"].view.updates[0].body == "Root cause: a bad deploy."


def test_updates_are_ordered_by_display_time_not_feed_order() -> None:
    backdated = update("late", "investigating", "posted last, shown first", 10, display_minute=0)
    view = view_of(
        parse_incidents_object(
            {
                "incidents": [
                    incident("a", "identified", [update("mid", "identified", "m", 5), backdated])
                ]
            }
        ).incidents[0]
    )
    assert [u.id for u in view.updates] == ["late", "mid"]


def test_backdated_sample_update_orders_by_display_at() -> None:
    snapshot = parse_incidents((SAMPLES / "emma-incidents.json").read_bytes())
    for item in snapshot.incidents:
        times = [u.shown_at for u in view_of(item).updates]
        assert times == sorted(times)  # type: ignore[type-var]


def test_incident_missing_from_feed_is_left_alone() -> None:
    known: dict[str, Tracked] = {}
    a = incident("a", "investigating", [update("u1", "investigating", "x", 1)])
    b = incident("b", "investigating", [update("u2", "investigating", "y", 2)])
    apply(known, feed(a, b))
    outcome = apply(known, feed(b))
    assert outcome.events == ()
    assert known["a"].view.status == "investigating"


def test_new_incident_already_resolved_after_baseline_is_announced() -> None:
    known: dict[str, Tracked] = {}
    apply(known, feed())
    quick = incident("q", "resolved", [update("u1", "resolved", "was briefly down", 60)])
    assert kinds(apply(known, feed(quick))) == [EventKind.OPENED]


def test_new_incident_resolved_before_baseline_is_recorded_silently() -> None:
    known: dict[str, Tracked] = {}
    apply(known, feed())
    old = incident("o", "resolved", [update("u1", "resolved", "ancient", -600)])
    outcome = apply(known, feed(old))
    assert outcome.events == ()
    assert known["o"].announce is False


def test_baseline_incident_that_reopens_is_announced() -> None:
    known: dict[str, Tracked] = {}
    updates = [update("u1", "resolved", "fixed", -600)]
    apply(known, feed(incident("o", "resolved", list(updates))), baseline=None)
    updates.insert(0, update("u2", "investigating", "it is back", 60))
    assert kinds(apply(known, feed(incident("o", "investigating", updates)))) == [EventKind.OPENED]


def test_rename_impact_and_vanished_update() -> None:
    known: dict[str, Tracked] = {}
    updates = [update("u2", "identified", "y", 2), update("u1", "investigating", "x", 1)]
    apply(known, feed(incident("a", "identified", list(updates), name="Old name")))
    renamed = incident("a", "identified", updates[:1], name="New name", impact="critical")
    outcome = apply(known, feed(renamed))
    assert set(kinds(outcome)) == {
        EventKind.RENAMED,
        EventKind.IMPACT_CHANGED,
        EventKind.UPDATE_REMOVED,
    }


def test_duplicate_update_ids_are_shown_once() -> None:
    same = update("u1", "investigating", "x", 1)
    view = view_of(feed(incident("a", "investigating", [same, dict(same)])).incidents[0])
    assert len(view.updates) == 1


def test_component_filter_prefers_degraded_components() -> None:
    everything = incident(
        "a",
        "investigating",
        [
            update(
                "u1",
                "investigating",
                "x",
                1,
                components=(("API", "major_outage"), ("Console", "operational")),
            )
        ],
        components=(("API", "major_outage"), ("Console", "operational")),
    )
    parsed = feed(everything).incidents[0]
    assert touches(parsed, ["api"])
    assert not touches(parsed, ["Console"])
    assert touches(parsed, [])


def test_component_filter_falls_back_to_attachment_and_group_prefix() -> None:
    quiet = incident(
        "a",
        "investigating",
        [update("u1", "investigating", "x", 1, components=(("Models - Opus", "operational"),))],
        components=(("Models - Opus", "operational"),),
    )
    parsed = feed(quiet).incidents[0]
    assert touches(parsed, ["Opus"])
    assert not touches(parsed, ["Sonnet"])


def test_filtered_out_incident_is_recorded_not_announced() -> None:
    console = (("Console", "major_outage"),)
    other = incident(
        "a",
        "investigating",
        [update("u1", "investigating", "x", 1, components=console)],
        components=console,
    )
    outcome = diff({}, feed(other), baseline_at=BASELINE, components=["API"])
    assert outcome.events == ()
    assert outcome.changed["a"].announce is False


def test_view_round_trips_through_json() -> None:
    snapshot = parse_incidents((SAMPLES / "claude-incidents-derived.json").read_bytes())
    for item in snapshot.incidents:
        view = view_of(item)
        assert view_from_json(view_to_json(view)) == view
