"""The short crash loop: one SIGKILL at each crash point of the real process, and each
fault, late landings included (CI size)."""

from __future__ import annotations

import pytest

from bench import crashloop

pytestmark = pytest.mark.slow


async def test_every_crash_point_once_no_duplicates_nothing_lost() -> None:
    iterations = len(crashloop.POINTS)
    tally = await crashloop.main(iterations, seed=7)
    assert sum(tally.kills_by_point.values()) >= iterations
    assert crashloop.succeeded(tally, iterations), tally.failures
    assert tally.late_second_copies >= 1  # a late landing made a copy, and it was removed
