"""Every datetime edge a status page can send, as hypothesis strategies.

Years 1 and 9999 with every offset from -23:59 to +23:59, leap seconds, ``24:00``, naive
times, epoch numbers (negative, huge, NaN, infinite), empty and garbage text, values of
the wrong type; in ISO 8601 for JSON and Atom, in RFC 822 for RSS. And every zone
``zoneinfo`` knows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import strategies as st

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LIMIT = 23 * 60 + 59  # minutes: the largest offset ISO 8601 text can carry

zones = st.one_of(st.none(), st.sampled_from(sorted(available_timezones())).map(ZoneInfo))
minutes = st.integers(-LIMIT, LIMIT)
moments = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(1, 1, 3)),
    st.datetimes(datetime(9999, 12, 29), datetime.max),
    st.datetimes(datetime(1969, 1, 1), datetime(2100, 1, 1)),
)
dates = moments.map(datetime.date)
garbage = st.one_of(
    st.sampled_from(
        ["", " ", "T", "Z", "0000-00-00T00:00:00Z", "9999-99-99", "1791378000", "-1", "now"]
    ),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
)


def iso_offset(total: int) -> str:
    sign = "-" if total < 0 else "+"
    return f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


def rfc_offset(total: int) -> str:
    return iso_offset(total).replace(":", "")


iso_suffixes = st.one_of(st.sampled_from(["Z", "", "+00:00", "-00:00"]), minutes.map(iso_offset))


def _iso(moment: datetime, suffix: str) -> str:
    return moment.isoformat() + suffix


def _iso_leap(day: date, suffix: str) -> str:
    return f"{day.isoformat()}T23:59:60{suffix}"


def _iso_end_of_day(day: date, form: str, suffix: str) -> str:
    return f"{day.isoformat()}T{form}{suffix}"


iso_texts = st.one_of(
    st.builds(_iso, moments, iso_suffixes),
    st.builds(_iso_leap, dates, iso_suffixes),
    st.builds(_iso_end_of_day, dates, st.sampled_from(["24:00", "24:00:00", "24:00:00.000"]),
              iso_suffixes),
    garbage,
)  # fmt: skip
epochs = st.one_of(
    st.sampled_from([0, -62135596800, -62135596801, 253402300799, 253402300800, 2**63, -(2**63)]),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
wrong_types = st.one_of(st.none(), st.booleans(), st.just([]), st.just({"at": 1}))
# What a JSON source may hold where a time belongs.
json_times: st.SearchStrategy[Any] = st.one_of(iso_texts, epochs, wrong_types)


def _rfc(moment: datetime, clock: str, zone: str) -> str:
    day = DAYS[moment.weekday()]
    return f"{day}, {moment.day:02d} {MONTHS[moment.month - 1]} {moment.year:04d} {clock} {zone}"


rfc_zones = st.one_of(st.sampled_from(["GMT", "UTC", "-0000", "+0000"]), minutes.map(rfc_offset))
rfc_clocks = st.one_of(
    moments.map(lambda m: m.strftime("%H:%M:%S")), st.sampled_from(["23:59:60", "24:00:00"])
)
# What an RSS feed may hold in a date (``pubDate``, xAI's update lines).
rfc_texts = st.one_of(st.builds(_rfc, moments, rfc_clocks, rfc_zones), garbage)
# Statuspage's ``history.atom`` update lines: ``Mon D, HH:MM UTC``, digits of any value.
history_stamps = st.tuples(
    st.sampled_from(MONTHS), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)
)
