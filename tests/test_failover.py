"""The short failover loop: two real ``modbot run`` processes on one PostgreSQL, the
leader struck once in each way, a late landing among them (CI size; ``python -m
bench.failover`` runs 100)."""

from __future__ import annotations

import pytest

from bench import failover

pytestmark = pytest.mark.slow


async def test_each_way_of_losing_the_leader_once_no_duplicates_nothing_lost(
    postgres_server: str,
) -> None:
    iterations = len(failover.MODES)
    tally = await failover.main(iterations, seed=7, server=postgres_server)
    assert sum(tally.strikes.values()) == iterations
    assert failover.succeeded(tally, iterations), tally.failures
    assert tally.late_second_copies >= 1  # a deposed leader's comment landed late: removed
    assert tally.takeover_seconds
    assert max(tally.takeover_seconds) < failover.LEASE_INTERVAL + failover.POLL_INTERVAL + 5
