"""Times from outside: what a feed may give for a moment, and when it means nothing.

Every time a source reads, the store reads back, or a comment shows passes through
here. A value that is not a usable time costs that one field (it becomes ``None``, shown
as "unknown time"), never the incident and never the watch. The rules:

* ISO 8601 text (what every vendor sends), with leap seconds (``23:59:60``, read as
  ``23:59:59``) and ``24:00`` (the end of a day: the next midnight); without an offset
  it is UTC.
* A JSON number is seconds since 1970 (UTC); numeric text is not a time.
* Anything else, and any time within a day of the calendar's edges (years 1 and 9999),
  is unknown: there, converting to UTC or to a reader's zone overflows, and Go writes
  ``0001-01-01T00:00:00Z`` for a time that was never set.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# Zone offsets are under a day, so a moment in this range converts to any zone.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
MAX_TEXT = 64  # longer text is not a timestamp; not worth parsing
_LEAP_SECOND = re.compile(r"(?<=[T ]\d\d:\d\d:)60(?=\D|$)")
_END_OF_DAY = re.compile(r"(?<=[T ])24(:00(:00(\.0+)?)?)?(?=[Z+-]|$)")


def in_utc(moment: datetime) -> datetime | None:
    """``moment`` as aware UTC (a naive one is taken as UTC); None when it lies within a
    day of the calendar's edges."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return utc if EARLIEST <= utc <= LATEST else None


def from_epoch(seconds: float) -> datetime | None:
    """Seconds since 1970 as aware UTC; None when out of range (or not a number)."""
    try:
        return in_utc(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=8192)
def from_text(text: str) -> datetime | None:
    """ISO 8601 text as aware UTC; None when it is not a usable time. Remembered: a feed
    repeats the same few hundred times on every poll."""
    text = text.strip().upper()
    if not text or len(text) > MAX_TEXT:
        return None
    text = _LEAP_SECOND.sub("59", text, count=1)
    text, end_of_day = _END_OF_DAY.subn("00:00:00", text, count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if end_of_day:
        try:
            moment += timedelta(days=1)
        except OverflowError:
            return None
    return in_utc(moment)


def parse(value: object) -> datetime | None:
    """Any value a feed gives for a time: ISO text, epoch seconds, a datetime; None when it
    is none of these, or not a usable time."""
    if isinstance(value, datetime):
        return in_utc(value)
    if isinstance(value, bool):  # a bool is an int to Python, never a time to a feed
        return None
    if isinstance(value, int | float):
        return from_epoch(value)
    if isinstance(value, str):
        return from_text(value)
    return None
