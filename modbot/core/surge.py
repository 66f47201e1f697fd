"""When readers' reports make a surge, and when it subsides. Pure: time comes in.

A *surge*, in the window of ``window`` seconds ending now:

- at least ``min_authors`` distinct authors reported, and
- that many is at least ``factor`` times what the watch's own baseline expects in
  such a window at this time of day (until the baseline has enough history, only
  the author minimum applies).

One author counts once per window (their first report in it); an account younger than
``min_account_age`` when it reported does not count (when its age is known). A surge
*subsides* once the window has stayed below the threshold for one whole window: a
dip of a minute or two inside an outage does not end it, and one surge makes one
early notice.

The *baseline* is, for each hour of the day (UTC), weekdays apart from weekends, the
mean number of distinct authors whose reports counted in that hour (a report at the
very end of an hour, like any window, counts in the hour it ends) over the last four
calendar weeks (the current one and the three before: 22 to 28 days). Per hour and
week it keeps a sum and a count, learnt once each hour has ended; a new week takes
over the cells of four weeks back, so an old habit is gone after four weeks. An hour
far above its mean (an outage) is clipped before it is learnt, so outages do not
teach the baseline that outages are normal.

The defaults were chosen with ``python -m bench.reports --sweep`` on the labelled
corpus (synthetic; see ``tests/data/reports/make_corpus.py``). Of 3 to 8 authors, 5 to
15 minute windows and factors 2 to 6, 5 authors in 10 minutes notices the most
incidents ahead of the status page (13 of 25, median lead 7.5 min) while keeping to at
most one false notice per 30 days (0.57: one blip of six readers) and never noticing
one burst twice. Fewer authors notice blips (3 authors: 1.7 false notices per 30
days); 5-minute windows let a surge end inside one outage and notice it twice. The
factor never binds on that corpus (its background stays far below ``min_authors /
factor`` authors per window), so it keeps the issue's 4: on a busier subreddit it is
what keeps an ordinary busy hour from passing for a surge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

HOUR = 3600.0
WEEKS = 4  # the baseline's memory: the last four calendar weeks, about 28 days
MIN_HISTORY = 4  # hours of the same slot learnt before the baseline applies to it
_CLIP = 2.0  # an hour counts at most this many times its mean (or _CLIP_FLOOR)
_CLIP_FLOOR = 2.0
_SLOTS = 48  # 24 hours of weekdays, 24 of weekends (UTC)
_WEEK = 7 * 86_400.0
_EMPTY_SUMS = ((0.0,) * WEEKS,) * _SLOTS
_EMPTY_HOURS = ((0,) * WEEKS,) * _SLOTS


@dataclass(frozen=True)
class SurgeSettings:
    """The watch's ``reports_*`` settings that shape a surge."""

    min_authors: int = 5
    window: float = 600.0  # seconds
    factor: float = 4.0
    min_account_age: float = 86_400.0  # seconds; accounts younger do not count


@dataclass(frozen=True)
class Report:
    """One reader's outage report, as it is kept: labels, never text."""

    at: float  # when it was posted (epoch seconds)
    author: str  # a hash of the author's name
    rule: str  # the rule that made it a report
    errors: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    author_since: float | None = None  # when the author's account was made, if known


def counted(
    reports: Iterable[Report], since: float, until: float, settings: SurgeSettings
) -> list[Report]:
    """The reports that count in ``(since, until]``: each author's first, none from
    accounts too young when they reported; oldest first."""
    firsts: dict[str, Report] = {}
    for report in sorted(reports, key=lambda r: (r.at, r.author)):
        if not since < report.at <= until or _too_young(report, settings):
            continue
        firsts.setdefault(report.author, report)
    return list(firsts.values())


def _too_young(report: Report, settings: SurgeSettings) -> bool:
    if report.author_since is None:
        return False
    return report.at - report.author_since < settings.min_account_age


@dataclass(frozen=True)
class Baseline:
    """Distinct reporting authors per hour of the day, weekdays and weekends apart, over
    the last four calendar weeks: for each of the 48 slots, one sum and one count of
    hours per week."""

    sums: tuple[tuple[float, ...], ...] = _EMPTY_SUMS  # [slot][week % WEEKS]
    hours: tuple[tuple[int, ...], ...] = _EMPTY_HOURS
    week: int = -1  # the newest week learnt (days since the epoch // 7)
    learnt_until: float = 0.0  # the end of the last hour learnt

    def expected(self, at: float, window: float) -> float | None:
        """Authors expected in a window of ``window`` seconds at ``at``; ``None`` while
        that hour has too little history."""
        mean, seen = self._mean(_slot(at), int(at // _WEEK))
        if seen < MIN_HISTORY:
            return None
        return mean * window / HOUR

    def _mean(self, slot: int, week: int) -> tuple[float, int]:
        """The slot's mean over the four weeks up to ``week`` (weeks before the bot last
        learnt are gone: a baseline from long ago is no baseline)."""
        cells = [w % WEEKS for w in range(max(week, self.week) - WEEKS + 1, self.week + 1)]
        seen = sum(self.hours[slot][c] for c in cells)
        return (sum(self.sums[slot][c] for c in cells) / seen if seen else 0.0), seen

    def learn(self, hour_start: float, authors: int) -> Baseline:
        """The baseline after the hour starting at ``hour_start`` (a whole UTC hour) ended
        with ``authors`` distinct authors counted. An hour already learnt changes nothing,
        so a restart may learn the same hour again."""
        start = hour_start - hour_start % HOUR
        if start + HOUR <= self.learnt_until:
            return self
        week = int(start // _WEEK)
        sums = [list(row) for row in self.sums]
        hours = [list(row) for row in self.hours]
        for new in range(max(self.week + 1, week - WEEKS + 1), week + 1):
            for row in range(_SLOTS):  # a new week takes over the cells of four weeks back
                sums[row][new % WEEKS] = 0.0
                hours[row][new % WEEKS] = 0
        slot = _slot(start)
        value = float(authors)
        mean, seen = Baseline(_rows(sums), _rows(hours), week)._mean(slot, week)
        if seen >= MIN_HISTORY:
            value = min(value, max(_CLIP * mean, _CLIP_FLOOR))
        sums[slot][week % WEEKS] += value
        hours[slot][week % WEEKS] += 1
        return Baseline(_rows(sums), _rows(hours), max(week, self.week), start + HOUR)

    def as_numbers(self) -> list[float]:
        """A compact form to store: each slot's four sums, then each slot's four counts,
        the newest week, the end of the last hour learnt (386 numbers)."""
        return [
            *(round(v, 4) for row in self.sums for v in row),
            *(float(v) for row in self.hours for v in row),
            float(self.week),
            self.learnt_until,
        ]

    @classmethod
    def from_numbers(cls, numbers: Sequence[float]) -> Baseline:
        """The baseline ``as_numbers`` stored; a wrong shape is an empty baseline."""
        cells = _SLOTS * WEEKS
        if len(numbers) != 2 * cells + 2 or any(not n >= 0 for n in numbers[: 2 * cells]):
            return cls()
        rows = [numbers[at : at + WEEKS] for at in range(0, 2 * cells, WEEKS)]
        sums = rows[:_SLOTS]
        hours = [[int(v) for v in row] for row in rows[_SLOTS:]]
        return cls(_rows(sums), _rows(hours), int(numbers[-2]), float(numbers[-1]))


def _rows(cells: Sequence[Sequence[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in cells)


def _slot(at: float) -> int:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.hour + (24 if moment.weekday() >= 5 else 0)


def learn_hours(
    baseline: Baseline,
    reports: Iterable[Report],
    since: float,
    until: float,
    settings: SurgeSettings,
) -> Baseline:
    """``baseline`` after learning every whole hour from ``since`` that ended by ``until``
    and is not learnt yet. ``reports`` are all there were from ``since`` to ``until``: an
    hour without any is learnt as none (most hours are quiet), so ``since`` must be when
    the reading began, not earlier (hours nobody read are not quiet, only unknown)."""
    items = sorted(reports, key=lambda r: r.at)
    start = max(baseline.learnt_until, since - since % HOUR)
    if since % HOUR:  # the reading began inside this hour: it was not all read
        start = max(start, since - since % HOUR + HOUR)
    while start + HOUR <= until:
        authors = counted(items, start, start + HOUR, settings)
        baseline = baseline.learn(start, len(authors))
        start += HOUR
    return baseline


@dataclass(frozen=True)
class Assessment:
    """The reports in the window ending at ``at``, against the threshold."""

    at: float
    authors: int  # distinct authors counted in the window
    expected: float | None  # what the baseline expects in a window now (None: no history)
    threshold: float  # authors needed for a surge now

    @property
    def surging(self) -> bool:
        return self.authors >= self.threshold


def assess(
    reports: Iterable[Report], baseline: Baseline, now: float, settings: SurgeSettings
) -> Assessment:
    """How the window ending ``now`` compares with the threshold."""
    authors = len(counted(reports, now - settings.window, now, settings))
    expected = baseline.expected(now, settings.window)
    threshold = float(settings.min_authors)
    if expected is not None:
        threshold = max(threshold, settings.factor * expected)
    return Assessment(now, authors, expected, threshold)


@dataclass(frozen=True)
class Surge:
    """An open surge: what its early notice says (counts and labels only)."""

    detected: float  # when it was detected
    began: float  # when the first report counted in it was posted
    authors: int  # distinct authors counted since it began
    errors: tuple[tuple[str, int], ...] = ()  # error labels and how many authors named each
    products: tuple[tuple[str, int], ...] = ()
    quiet_since: float | None = None  # since when the window has been below the threshold
    ended: float | None = None  # when it subsided


@dataclass(frozen=True)
class SurgeStep:
    """One step of following the reports: the surge now, and what changed."""

    surge: Surge | None
    started: bool = False  # a surge began at this step: time for the early notice
    ended: bool = False  # the surge subsided at this step (``surge.ended`` says when)
    assessment: Assessment | None = None


def track(
    surge: Surge | None,
    reports: Sequence[Report],
    baseline: Baseline,
    now: float,
    settings: SurgeSettings,
) -> SurgeStep:
    """Follow the reports one step (each reports interval). ``reports`` are those since
    the open surge began, or at least the last window when none is open. A surge that
    ended is no longer passed in: the next surge is a new one."""
    now_seen = assess(reports, baseline, now, settings)
    if surge is None or surge.ended is not None:
        if not now_seen.surging:
            return SurgeStep(None, assessment=now_seen)
        window = counted(reports, now - settings.window, now, settings)
        began = window[0].at if window else now  # none only with min_authors 0
        fresh = _summary(Surge(now, began, 0), reports, now, settings)
        return SurgeStep(fresh, started=True, assessment=now_seen)
    current = _summary(surge, reports, now, settings)
    if now_seen.surging:
        return SurgeStep(replace(current, quiet_since=None), assessment=now_seen)
    quiet = surge.quiet_since if surge.quiet_since is not None else now
    if now - quiet >= settings.window:
        return SurgeStep(
            replace(current, quiet_since=quiet, ended=now), ended=True, assessment=now_seen
        )
    return SurgeStep(replace(current, quiet_since=quiet), assessment=now_seen)


def _summary(surge: Surge, reports: Sequence[Report], now: float, settings: SurgeSettings) -> Surge:
    """The surge's counts from every report counted since it began."""
    # From the start of the window that made it a surge: its first report is in there.
    since = counted(reports, surge.detected - settings.window, now, settings)
    errors = Counter(e for r in since for e in dict.fromkeys(r.errors))
    products = Counter(p for r in since for p in dict.fromkeys(r.products))
    return replace(
        surge,
        authors=max(surge.authors, len(since)),
        errors=_ranked(errors) if since else surge.errors,
        products=_ranked(products) if since else surge.products,
    )


def _ranked(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
