"""The shared Reddit call budget: never over the limit, and fair among watches."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.core.budget import ASKS_AGAIN_WITHIN, CallBudget


def take(budget: CallBudget, who: str, now: float) -> bool:
    if budget.wait(who, now) > 0:
        return False
    budget.spend(who, now)
    return True


def test_a_lone_caller_gets_the_whole_budget_then_waits_for_the_oldest_call() -> None:
    budget = CallBudget(limit=5, window=60.0)
    assert all(take(budget, "busy", float(t)) for t in range(5))
    assert budget.wait("busy", 10.0) == 50.0  # the call at t=0 leaves the window at 60
    assert take(budget, "busy", 60.0)


def test_a_busy_watch_cannot_starve_another_watchs_first_comment() -> None:
    budget = CallBudget(limit=10, window=60.0)
    now = 0.0
    while take(budget, "busy", now):  # alone and unexpected: it takes everything
        now += 0.1
    assert not take(budget, "quiet", now)  # full: the quiet watch waits its turn
    # The first slot that frees goes to the quiet watch, not to the busy one.
    now = 60.0
    assert not take(budget, "busy", now)
    assert take(budget, "quiet", now)
    # While the quiet watch has called less, one slot stays free for it.
    assert not take(budget, "busy", 60.15)  # one free: kept
    assert take(budget, "busy", 60.25)  # two free: one for it, one kept


def test_callers_that_called_less_go_first_when_the_budget_is_contended() -> None:
    budget = CallBudget(limit=12, window=60.0)
    for t in range(12):
        assert take(budget, "a", float(t))
    assert not take(budget, "b", 11.5)  # full: b and c wait
    assert not take(budget, "c", 11.5)
    # One slot frees a minute after each of a's calls; they go to b and c first.
    assert not take(budget, "a", 60.0)
    assert take(budget, "b", 60.0)
    assert not take(budget, "a", 61.0)
    assert take(budget, "c", 61.0)
    # b and c have called less than a: a slot stays free for each.
    # One free, two kept: it is told to come back when two more of its calls (t=3 and
    # t=4) have left the window.
    assert budget.wait("a", 62.0) == pytest.approx(2.0)
    assert not take(budget, "a", 63.0)  # two free
    assert take(budget, "a", 64.0)  # three free: two kept
    assert take(budget, "b", 64.0)  # and b's kept slot is there when b asks


def test_an_expected_caller_that_never_called_is_owed_a_slot() -> None:
    """Nine quiet watches that have never called are the ones most owed a slot: a busy
    watch filling the window in a second leaves one free for each."""
    budget = CallBudget(limit=20, window=60.0)
    quiet = [f"w{n}" for n in range(1, 10)]
    budget.expect("w0", *quiet)
    taken = sum(take(budget, "w0", t / 100) for t in range(50))
    assert taken == 11  # its first, then ten kept (half the budget) for the nine
    for who in quiet:
        assert take(budget, who, 0.6), who


def test_a_quiet_watch_gets_the_next_free_slot_while_it_has_called_less() -> None:
    budget = CallBudget(limit=20, window=60.0)
    budget.expect("busy", "quiet")
    now = 0.0
    while take(budget, "busy", now):
        now += 0.1
    assert now == pytest.approx(1.9)  # 19 calls: one slot kept for the quiet watch
    assert take(budget, "quiet", 2.0)  # its first call goes at once
    assert not take(budget, "quiet", 2.1)  # full: its second waits for a slot to free,
    assert not take(budget, "busy", 60.0)  # and the slot the busy watch's first call frees
    assert take(budget, "quiet", 60.0)  # is the quiet watch's, which has called less


def test_a_caller_that_stops_asking_stops_holding_slots_back() -> None:
    budget = CallBudget(limit=4, window=60.0)
    for t in range(4):
        assert take(budget, "busy", float(t))
    assert budget.wait("gone", 10.0) == 50.0  # refused, told to ask again at 60
    assert not take(budget, "busy", 60.5)  # it may still ask: its slot is held
    # It never did: a few seconds after it was due, the slot is the busy watch's.
    assert take(budget, "busy", 60.0 + ASKS_AGAIN_WITHIN + 0.1)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_a_caller_that_keeps_asking_is_served_within_two_windows(limit: int, seed: int) -> None:
    """No caller starves: however the others ask, one that asks every second when it
    wants a call gets one within two windows of wanting it."""
    rng = random.Random(seed)
    budget = CallBudget(limit=limit, window=60.0)
    budget.expect(*"abcde")
    wanting: dict[str, float] = {}  # caller -> since when it wants a call
    for second in range(900):
        now = float(second)
        for who in "abcde":
            if who not in wanting and rng.random() < (0.9 if who == "a" else 0.2):
                wanting[who] = now
        for who in sorted(wanting, key=lambda _: rng.random()):
            if take(budget, who, now):
                del wanting[who]
        for who, since in wanting.items():
            # Each of the others may go first once a window, as long as it has called less.
            assert now - since <= 60.0 * (2 + 5 // limit), (who, since, now, limit)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_never_more_than_the_limit_in_any_window(limit: int, seed: int) -> None:
    rng = random.Random(seed)
    budget = CallBudget(limit=limit, window=60.0)
    spent: list[float] = []
    now = 0.0
    for _ in range(300):
        now += rng.random() * 3
        if take(budget, rng.choice("abcde"), now):
            spent.append(now)
    for i, start in enumerate(spent):
        inside = [t for t in spent[i:] if t < start + 60.0]
        assert len(inside) <= limit


def test_a_quiet_watch_finds_a_slot_free_however_fast_a_busy_one_filled_the_window() -> None:
    """The benchmark's run: ten watches and the inbox have called before (a start); a
    minute later one watch opens forty incidents and takes every slot it can in half a
    second, before nine others open one each. They must not wait for the window."""
    budget = CallBudget(limit=20, window=60.0)
    callers = [f"w{n}" for n in range(10)] + [""]
    for who in callers:
        assert take(budget, who, 0.0)
    now = 61.0
    taken = 0
    while now < 61.5:
        taken += take(budget, "w0", now)
        now += 0.01
    assert taken >= 10  # alone, the busy watch still gets half the budget at once
    for who in callers[1:10]:
        assert budget.wait(who, now) == 0.0, who
        budget.spend(who, now)
