"""Surges of readers' reports: who counts, window edges, the baseline, and when a surge
starts and subsides."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from modbot.core.surge import (
    HOUR,
    MIN_HISTORY,
    Baseline,
    Report,
    Surge,
    SurgeSettings,
    assess,
    counted,
    learn_hours,
    track,
)

SETTINGS = SurgeSettings()  # 5 authors, 10 minutes, factor 4, accounts a day old
WINDOW = SETTINGS.window
NOW = datetime(2026, 9, 29, 14, 10, tzinfo=UTC).timestamp()  # a Tuesday
OLD = NOW - 400 * 86_400  # an account made long ago


def report(at: float, author: str, since: float | None = OLD, **labels: tuple[str, ...]) -> Report:
    return Report(at=at, author=author, rule="error code", author_since=since, **labels)


def readers(
    count: int, *, at: float = NOW, gap: float = 30.0, since: float | None = OLD
) -> list[Report]:
    """``count`` distinct readers, one report each, ``gap`` seconds apart, the last at ``at``."""
    return [report(at - gap * (count - 1 - n), f"reader{n}", since) for n in range(count)]


def surging(reports: list[Report], baseline: Baseline | None = None, now: float = NOW) -> bool:
    return assess(reports, baseline or Baseline(), now, SETTINGS).surging


# --- who counts -------------------------------------------------------------------------


def test_five_readers_in_ten_minutes_are_a_surge_four_are_not() -> None:
    assert surging(readers(5))
    assert not surging(readers(4))


def test_one_author_counts_once_however_often_they_post() -> None:
    angry = [report(NOW - n * 20, "angry") for n in range(25)]
    assert len(counted(angry, NOW - WINDOW, NOW, SETTINGS)) == 1
    assert not surging(angry + readers(3))
    assert surging(angry + readers(4))


def test_a_brigade_of_new_accounts_does_not_count() -> None:
    brigade = readers(30, since=NOW - 3600)  # made an hour ago
    assert assess(brigade, Baseline(), NOW, SETTINGS).authors == 0
    # An account exactly the minimum age when it reported counts.
    of_age = [report(NOW, "adult", since=NOW - SETTINGS.min_account_age)]
    assert len(counted(of_age, NOW - WINDOW, NOW, SETTINGS)) == 1


def test_an_account_of_unknown_age_counts() -> None:
    assert surging(readers(5, since=None))


def test_age_is_judged_when_the_reader_reported() -> None:
    # Made 23 hours before reporting: too young then, whatever its age today.
    young_then = [report(NOW - n, f"r{n}", since=NOW - n - 23 * 3600) for n in range(5)]
    assert not surging(young_then)


# --- window edges -----------------------------------------------------------------------


def test_the_window_holds_its_end_but_not_its_start() -> None:
    four = readers(4)
    assert surging([*four, report(NOW - WINDOW + 0.001, "edge")])
    assert not surging([*four, report(NOW - WINDOW, "edge")])  # exactly a window ago: out
    assert not surging([*four, report(NOW + 1, "future")])  # not posted yet at NOW


def test_five_readers_over_slightly_more_than_a_window_are_no_surge() -> None:
    spread = readers(5, gap=WINDOW / 4 + 1)
    assert not surging(spread)
    assert surging(readers(5, gap=WINDOW / 4 - 1))


def test_an_authors_first_report_in_the_window_is_the_one_that_counts() -> None:
    before = report(NOW - WINDOW - 60, "early")
    again = report(NOW - 60, "early")
    (first,) = counted([before, again], NOW - WINDOW, NOW, SETTINGS)
    assert first is again


# --- the baseline -----------------------------------------------------------------------


def hour_start(at: float) -> float:
    return at - at % HOUR


def baseline_of(authors_per_hour: int, *, days: int = 28, at: float = NOW) -> Baseline:
    """A baseline that learnt ``authors_per_hour`` for the hour of ``at`` on each weekday
    of the ``days`` before it."""
    baseline = Baseline()
    start = hour_start(at) - days * 86_400
    for _ in range(days):
        if datetime.fromtimestamp(start, UTC).weekday() < 5:
            baseline = baseline.learn(start, authors_per_hour)
        start += 86_400
    return baseline


def test_without_enough_history_only_the_author_minimum_applies() -> None:
    busy = baseline_of(60, days=MIN_HISTORY - 1)  # would expect 10 a window
    assert busy.expected(NOW, WINDOW) is None
    assert surging(readers(5), busy)


def test_a_busy_hour_needs_factor_times_its_baseline() -> None:
    busy = baseline_of(30)  # 30 authors an hour at this hour: 5 a window
    assert busy.expected(NOW, WINDOW) == 5.0
    seen = assess(readers(19), busy, NOW, SETTINGS)
    assert (seen.threshold, seen.surging) == (20.0, False)
    assert surging(readers(20), busy)


def test_a_quiet_hour_still_needs_the_author_minimum() -> None:
    quiet = baseline_of(1)
    assert assess(readers(4), quiet, NOW, SETTINGS).threshold == SETTINGS.min_authors


def test_weekends_and_weekdays_and_hours_have_baselines_of_their_own() -> None:
    busy = baseline_of(30)
    saturday = datetime(2026, 10, 3, 14, 10, tzinfo=UTC).timestamp()
    assert busy.expected(saturday, WINDOW) is None
    assert busy.expected(NOW + HOUR, WINDOW) is None
    assert busy.expected(NOW + 86_400, WINDOW) == 5.0  # Wednesday, same hour


def test_an_hour_is_learnt_once() -> None:
    once = Baseline().learn(hour_start(NOW), 10)
    assert once.learn(hour_start(NOW), 10) == once
    assert once.learn(hour_start(NOW) - HOUR, 99) == once  # an older hour: already past


def test_an_outage_hour_teaches_little() -> None:
    usual = baseline_of(4)
    seen = sum(usual.hours[14])
    after = usual.learn(hour_start(NOW), 400)
    # Clipped at twice the mean: one more hour of 8.
    assert after.expected(NOW, HOUR) == (4 * seen + 8) / (seen + 1)


def test_the_baseline_forgets_what_is_older_than_four_weeks() -> None:
    old_habit = baseline_of(20, days=60)
    start = hour_start(NOW)

    def then(days: int) -> Baseline:
        learnt = old_habit
        for day in range(days):
            learnt = learnt.learn(start + day * 86_400, 2)
        return learnt

    # Asked four weeks on, with nothing learnt since: no baseline, not a stale one.
    assert old_habit.expected(NOW + 28 * 86_400, HOUR) is None
    assert old_habit.expected(NOW + 14 * 86_400, HOUR) == 20.0
    assert then(29).expected(NOW + 28 * 86_400, HOUR) == 2.0  # four weeks on: all new
    assert then(14).expected(NOW + 14 * 86_400, HOUR) > 2.0  # two weeks on: both


def test_the_baseline_is_a_few_numbers_that_survive_storing() -> None:
    learnt = baseline_of(7)
    numbers = learnt.as_numbers()
    assert len(numbers) == 48 * 4 * 2 + 2
    assert Baseline.from_numbers(numbers) == learnt
    assert Baseline.from_numbers([1.0, 2.0]) == Baseline()
    assert Baseline.from_numbers([-1.0] * len(numbers)) == Baseline()


def test_learn_hours_learns_each_whole_hour_that_ended() -> None:
    start = hour_start(NOW)
    reports = [report(start + 60, "a"), report(start + 120, "a"), report(start + HOUR + 5, "b")]
    learnt = learn_hours(Baseline(), reports, start, start + HOUR + 30, SETTINGS)
    assert learnt.learnt_until == start + HOUR  # the second hour has not ended
    assert sum(learnt.sums[_slot_of(start)]) == 1.0  # "a" once
    again = learn_hours(learnt, reports, start, start + HOUR + 30, SETTINGS)
    assert again == learnt


def test_an_hour_with_no_reports_is_learnt_as_none() -> None:
    # Quiet hours are most hours: leaving them out would make every hour look busy.
    start = hour_start(NOW) - 7 * 86_400
    busy_once = [report(start + 60 + n, f"r{n}") for n in range(6)]
    learnt = Baseline()
    for day in range(8):
        hour = start + day * 86_400
        learnt = learn_hours(learnt, busy_once, hour, hour + HOUR, SETTINGS)
    seen = sum(learnt.hours[_slot_of(start)])
    assert seen == 6  # six weekdays among the eight days
    assert learnt.expected(NOW, HOUR) == 1.0  # one hour of 6 authors, five of none


def _slot_of(at: float) -> int:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.hour + (24 if moment.weekday() >= 5 else 0)


# --- a surge from start to end ----------------------------------------------------------


def test_a_surge_starts_once_and_names_counts_only() -> None:
    first = readers(5, at=NOW)
    labelled = [
        Report(r.at, r.author, r.rule, ("529",), ("Claude Code",), r.author_since) for r in first
    ]
    step = track(None, labelled, Baseline(), NOW, SETTINGS)
    assert step.started
    assert step.surge is not None
    assert step.surge.detected == NOW
    assert step.surge.began == labelled[0].at
    assert (step.surge.authors, step.surge.errors, step.surge.products) == (
        5,
        (("529", 5),),
        (("Claude Code", 5),),
    )
    more = [*labelled, *readers(3, at=NOW + 30)[:0], report(NOW + 25, "late", errors=("500",))]
    later = track(step.surge, more, Baseline(), NOW + 30, SETTINGS)
    assert not later.started
    assert later.surge is not None
    assert later.surge.authors == 6
    assert dict(later.surge.errors) == {"529": 5, "500": 1}


def follow(reports: list[Report], times: list[float]) -> list[tuple[float, str]]:
    """Track a surge over ``times``; what changed when."""
    surge: Surge | None = None
    changes = []
    for now in times:
        step = track(surge, [r for r in reports if r.at <= now], Baseline(), now, SETTINGS)
        if step.started:
            changes.append((now, "started"))
        if step.ended:
            changes.append((now, "ended"))
            surge = None
        else:
            surge = step.surge
    return changes


def test_a_surge_subsides_after_a_whole_window_below_the_threshold() -> None:
    burst = readers(8, at=NOW, gap=20)
    every_30_s = [NOW + 30 * n for n in range(80)]
    changes = follow(burst, every_30_s)
    # The window holds five readers until 20 s after the fifth-last leaves it; then
    # a whole window below the threshold.
    assert changes[0] == (NOW, "started")
    quiet_from = burst[3].at + WINDOW  # the fourth reader leaves: four are left
    (ended,) = [t for t, what in changes if what == "ended"]
    assert quiet_from <= ended - WINDOW < quiet_from + 30
    assert [what for _, what in changes] == ["started", "ended"]


def test_a_short_dip_does_not_end_a_surge() -> None:
    first = readers(5, at=NOW, gap=10)
    # Ten minutes on, a second wave while the first leaves the window: the window dips
    # below five for a few minutes only.
    second = [report(NOW + WINDOW + 120 + 20 * n, f"second{n}") for n in range(6)]
    every_30_s = [NOW + 30 * n for n in range(60)]
    assert [what for _, what in follow(first + second, every_30_s)] == ["started"]


def test_after_a_surge_ends_the_next_one_is_new() -> None:
    first = readers(5, at=NOW)
    second = readers(5, at=NOW + 3 * WINDOW)
    second = [Report(r.at, "again-" + r.author, r.rule, author_since=OLD) for r in second]
    times = [NOW + 30 * n for n in range(int(3 * WINDOW / 30) + 2)]
    assert [what for _, what in follow(first + second, times)] == ["started", "ended", "started"]


@given(
    offsets=st.lists(st.floats(0, 3 * 3600, allow_nan=False), max_size=60),
    authors=st.integers(1, 12),
)
def test_one_notice_per_surge_whatever_the_reports(offsets: list[float], authors: int) -> None:
    reports = [report(NOW + t, f"r{n % authors}") for n, t in enumerate(sorted(offsets))]
    times = [NOW + 30 * n for n in range(int(4 * 3600 / 30))]
    changes = [what for _, what in follow(reports, times)]
    # Starts and ends alternate, starting with a start: never two notices for one surge.
    assert changes == ["started", "ended"] * (len(changes) // 2) + ["started"] * (len(changes) % 2)
    if authors < SETTINGS.min_authors:
        assert changes == []


def test_an_author_minimum_of_zero_does_not_break_tracking() -> None:
    step = track(None, [], Baseline(), NOW, SurgeSettings(min_authors=0))
    assert step.started
    assert step.surge is not None
    assert step.surge.began == NOW
