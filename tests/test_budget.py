"""The shared Reddit call budget: never over the limit, and fair among watches."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.core.budget import CallBudget


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
    while take(budget, "busy", now):  # the busy watch takes everything it can
        now += 0.1
    assert not take(budget, "quiet", now)  # full: the quiet watch waits its turn
    # The first slot that frees goes to the quiet watch, not to the busy one.
    now = 60.0
    assert not take(budget, "busy", now)
    assert take(budget, "quiet", now)
    assert take(budget, "busy", now + 0.1)


def test_watches_under_their_share_go_first_when_the_budget_is_contended() -> None:
    budget = CallBudget(limit=12, window=60.0)
    for t in range(12):
        assert take(budget, "a", float(t))
    assert not take(budget, "b", 11.5)  # full: b and c wait
    assert not take(budget, "c", 11.5)
    # One slot frees a minute after each of a's calls. Three callers make a share 4
    # each; a is far over it, so the freed slots go to b and c first.
    assert not take(budget, "a", 60.0)
    assert take(budget, "b", 60.0)
    assert not take(budget, "a", 61.0)
    assert take(budget, "c", 61.0)
    assert take(budget, "a", 62.0)  # nobody under their share is waiting any more


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
