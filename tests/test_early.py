"""The pure parts of readers' reports: listing cursors, what counts, the early notice's
decisions, what an incident's comment shows, and ``!quiet``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modbot.core import early, reading
from modbot.core.commands import duration, parse
from modbot.core.markdown import MARKED_KINDS, marker, parse_marker
from modbot.core.records import ComponentView, IncidentView, Kind, ReaderItem
from modbot.core.reports import Classification
from modbot.core.surge import Report, Surge, SurgeSettings
from modbot.errors import CommandError

NOW = 1_800_000_000.0


def item(name: str, at: float, **fields: object) -> ReaderItem:
    values: dict[str, object] = {
        "fullname": name,
        "created_utc": at,
        "author": "alice",
        "text": "Claude down",
        "thread_id": name.removeprefix("t3_") if name.startswith("t3_") else "mega",
    }
    values.update(fields)
    return ReaderItem(**values)  # type: ignore[arg-type]


# --- listings -----------------------------------------------------------------------------


def test_a_cursor_stays_behind_items_that_may_still_appear_late() -> None:
    listing = reading.Listing()
    assert listing.before(NOW) is None  # the first read: the newest items
    listing, fresh = reading.absorb(listing, [item("t3_b", NOW - 5), item("t3_a", NOW - 100)], NOW)
    assert [i.fullname for i in fresh] == ["t3_a", "t3_b"]  # oldest first
    assert listing.before(NOW) == "t3_a"  # settled; t3_b may still have a late neighbour
    # t3_b comes back (it is newer than the cursor), with a late item older than it.
    listing, fresh = reading.absorb(listing, [item("t3_b", NOW - 5), item("t3_c", NOW - 8)], NOW)
    assert [i.fullname for i in fresh] == ["t3_c"]
    later = NOW + reading.SETTLE
    listing, fresh = reading.absorb(listing, [item("t3_b", NOW - 5), item("t3_c", NOW - 8)], later)
    assert fresh == []
    assert listing.before(later) == "t3_b"


def test_an_old_cursor_is_dropped_for_a_plain_read_and_old_news_stays_old() -> None:
    listing, _ = reading.absorb(reading.Listing(), [item("t3_a", NOW - 100)], NOW)
    assert listing.before(NOW + reading.REANCHOR + 101) is None
    # A plain read lists what was seen and forgotten long ago: it is not news again.
    much_later = NOW + 10 * reading.REANCHOR
    listing, _ = reading.absorb(listing, [item("t3_z", much_later - 100)], much_later)
    listing, fresh = reading.absorb(listing, [item("t3_a", NOW - 100)], much_later)
    assert fresh == []


def test_pages_and_what_counts() -> None:
    page = [item(f"t3_{n}", NOW - n) for n in range(reading.PAGE)]
    assert reading.full(page)
    assert not reading.full(page[:-1])
    assert reading.newest(page) == "t3_0"
    mega = {"mega"}
    assert reading.considered(item("t1_x", NOW), bot="modbot", since=NOW - 1, threads=mega)
    assert reading.considered(item("t3_x", NOW), bot="modbot", since=NOW - 1, threads=set())
    for other in (
        item("t1_x", NOW, thread_id="elsewhere"),
        item("t1_x", NOW, author="ModBot"),
        item("t1_x", NOW, author="AutoModerator"),
        item("t1_x", NOW, author=None),
        item("t1_x", NOW, removed=True),
        item("t1_x", NOW, distinguished=True),
        item("t1_x", NOW - 10),
    ):
        assert not reading.considered(other, bot="modbot", since=NOW - 1, threads=mega), other


def test_reading_pays_for_extra_calls_by_coming_later_but_never_in_a_flood() -> None:
    quiet = reading.pace(0, 2, flooded=False)
    assert (quiet.intervals, quiet.owed) == (1.0, 0)  # two listings: on time
    ages = reading.pace(0, 3, flooded=False)
    assert (ages.intervals, ages.owed) == (1.5, 0)  # one call more: half an interval
    owed = 0
    for _ in range(3):  # a flood: three pages a listing and the ages, read at full speed
        flood = reading.pace(owed, 7, flooded=True)
        assert flood.intervals == 1.0
        owed = flood.owed
    assert owed == reading.MAX_OWED  # a long flood's debt is capped
    while owed:  # paid back after it, at most one interval more per read
        after = reading.pace(owed, 2, flooded=False)
        assert 1.0 < after.intervals <= 2.0
        owed = after.owed


@pytest.mark.parametrize(
    "costs",
    [[2] * 10, [3] * 10, [5] * 10, [12] * 10, [2, 3, 5, 2, 2, 9, 2, 2, 2, 2, 2], [40, 2, 2]],
)
def test_reads_that_are_no_flood_cost_two_calls_an_interval_at_most(costs: list[int]) -> None:
    calls, intervals, owed = 0, 0.0, 0
    for made in costs:
        paced = reading.pace(owed, made, flooded=False)
        calls, intervals, owed = calls + made, intervals + paced.intervals, paced.owed
        assert calls <= reading.CALLS_PER_READ * intervals


def test_authors_are_kept_as_keyed_hashes() -> None:
    one, other = reading.author_hash(b"k1", "Alice"), reading.author_hash(b"k2", "Alice")
    assert one == reading.author_hash(b"k1", "alice") != other
    assert "alice" not in one.lower()
    verdict = Classification("down", ("529",), ("API",))
    kept = reading.as_report(item("t3_x", NOW), verdict, one, NOW - 86_400 * 9)
    assert kept == Report(NOW, one, "down", ("529",), ("API",), NOW - 86_400 * 9)


# --- the early notice ---------------------------------------------------------------------


def view(
    incident_id: str, *components: str, opened: float = NOW, is_open: bool = True
) -> IncidentView:
    return IncidentView(
        id=incident_id,
        name="Errors",
        status="investigating" if is_open else "resolved",
        impact="major",
        shortlink=None,
        created_at=datetime.fromtimestamp(opened, UTC),
        resolved_at=None,
        components=tuple(ComponentView(c, "major_outage") for c in components),
        updates=(),
    )


def test_what_holds_an_early_notice() -> None:
    signal = early.Signal("w", started_at=NOW - 3600)
    assert early.hold_reason("notice", signal, NOW, [], ["API"]) == ""
    assert early.hold_reason("count", signal, NOW, [], ["API"]) == "reports = 'count'"
    quiet = early.Signal("w", NOW - 3600, quiet_until=NOW + 60, quiet_by="u/bob")
    assert early.hold_reason("notice", quiet, NOW, [], []) == "quiet (u/bob)"
    api = view("i1", "Claude API (api.anthropic.com)")
    assert early.hold_reason("notice", signal, NOW, [api], ["Claude API"]) == "incident i1 is open"
    assert early.hold_reason("notice", signal, NOW, [api], ["claude.ai"]) == ""
    assert early.hold_reason("notice", signal, NOW, [api], []) == "incident i1 is open"
    assert early.hold_reason("notice", signal, NOW, [view("i2")], ["claude.ai"]) != ""


def row(state: str = early.OPEN) -> early.EarlyRow:
    surge = Surge(detected=NOW, began=NOW - 300, authors=5, errors=(("529", 3),))
    return (
        early.draft("w", early.notice_id_for(NOW), surge, NOW)
        if state == early.OPEN
        else (early.subsided(early.draft("w", early.notice_id_for(NOW), surge, NOW), NOW + 900))
    )


def test_which_incident_confirms_a_notice_and_by_how_much_readers_were_ahead() -> None:
    notice = row()
    window = 7200.0
    before = (view("old", opened=NOW - 8000), NOW + 60)  # seen after, opened long before
    seen_earlier = (view("known", opened=NOW + 600), NOW - 5)  # seen before the notice
    too_late = (view("late", opened=NOW + window + 1), NOW + window + 2)
    right = (view("right", opened=NOW + 540), NOW + 560)
    assert early.confirming(notice, [before, seen_earlier, too_late], window) is None
    found = early.confirming(notice, [too_late, right], window)
    assert found is not None
    assert found.id == "right"
    assert early.lead_text(early.lead(notice, found)) == "14 min"
    confirmed = early.confirmed(notice, "right")
    assert early.confirming(confirmed, [right], window) is None  # once
    assert early.subsided(confirmed, NOW + 900).state == early.CONFIRMED
    assert early.confirming(row(early.SUBSIDED), [right], window) is not None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (30.0, ""), (-600.0, ""), (840.0, "14 min"), (3900.0, "1 h 05 min")],
)
def test_lead_text(seconds: float | None, text: str) -> None:
    assert early.lead_text(seconds) == text


def test_counts_change_at_most_every_refresh() -> None:
    notice = row()
    more = Surge(detected=NOW, began=NOW - 300, authors=9, errors=(("529", 7),))
    assert not early.counts_changed(notice, more, NOW + 10, NOW)
    assert early.counts_changed(notice, more, NOW + early.REFRESH, NOW)
    assert early.with_counts(notice, more).authors == 9


def test_a_tally_counts_each_reader_once_and_every_label_they_named() -> None:
    settings = SurgeSettings(min_account_age=86_400)
    old = NOW - 10 * 86_400
    reports = [
        Report(NOW, "a", "r", ("529",), ("API",), old),
        Report(NOW + 1, "a", "r", ("500",), ("API",), old),
        Report(NOW + 2, "b", "r", ("529",), (), None),  # age unknown: counts
        Report(NOW + 3, "c", "r", ("529",), (), NOW),  # a new account: does not
        Report(NOW - 100, "d", "r", ("503",), (), old),  # before the span
    ]
    tally = early.tally(reports, NOW, NOW + 10, settings)
    assert tally == early.Tally(2, (("529", 2), ("500", 1)), (("API", 1),))


def test_a_surge_survives_storage_and_damage_is_no_surge() -> None:
    surge = Surge(NOW, NOW - 60, 6, (("529", 2),), (("API", 1),), quiet_since=NOW + 5)
    assert early.surge_from_json(early.surge_to_json(surge)) == surge
    assert early.surge_to_json(None) is None
    assert early.surge_from_json("{not json") is None
    assert early.surge_from_json('{"detected": 1}') is None


def test_every_kind_the_bot_posts_has_a_marker_it_recognises() -> None:
    assert {kind.value for kind in Kind} == MARKED_KINDS
    assert parse_marker(marker("early", "e123", "claude")[len("[](#modbot-") : -1]) == (
        "claude",
        "early",
        "e123",
    )


# --- !quiet -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200.0), ("30m", 1800.0), ("1d", 86_400.0), ("1h30m", 5400.0), ("45", 2700.0),
     ("off", 0.0), ("0", 0.0), ("10s", 60.0)],
)  # fmt: skip
def test_quiet_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["!quiet", "!quiet forever", "!quiet 31d", "!quiet -2h"])
def test_a_bad_quiet_gets_the_help_text(text: str) -> None:
    with pytest.raises(CommandError):
        parse(text, "modbot")


def test_quiet_names_a_watch_and_keeps_its_duration() -> None:
    command = parse("u/modbot !quiet openai 2h", "modbot", ["openai"])
    assert command is not None
    assert (command.name, command.watch, command.argument) == (
        "quiet",
        "openai",
        "2h",
    )
