"""Alerts to the moderators by new modmail: which is due (pure), what it says, and the
real bot telling them, through the outbox, against the fake Reddit over HTTP."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from modbot.core import alerts, markdown, outbox
from modbot.core.alerts import Condition, PageHealth, Told, Where
from modbot.core.records import Channel
from tests.conftest import page_env, reddit_env, start_bot, until
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage

WHERE = Where("default", "claude", "ClaudeAI")
HOUR = alerts.HOUR


# --- the pure rules -----------------------------------------------------------------------------


def test_a_condition_that_holds_is_told_once_and_its_end_once() -> None:
    cond = Condition.PAGE_FAILING
    assert alerts.decide(cond, None, holds=False, now=0) is None
    assert alerts.decide(cond, None, holds=True, now=0) == "raise"
    raised = Told(raised=True, at=0)
    assert alerts.decide(cond, raised, holds=True, now=10 * HOUR) is None  # never repeated
    assert alerts.decide(cond, raised, holds=False, now=60) == "clear"
    cleared = Told(raised=False, at=60)
    assert alerts.decide(cond, cleared, holds=False, now=120) is None


def test_at_most_one_alert_per_condition_per_hour() -> None:
    cond = Condition.WRITES_REFUSED
    cleared = Told(raised=False, at=1000)
    assert alerts.decide(cond, cleared, holds=True, now=1000 + HOUR - 1) is None
    assert alerts.decide(cond, cleared, holds=True, now=1000 + HOUR) == "raise"


def test_events_are_told_at_most_once_an_hour_and_never_cleared() -> None:
    cond = Condition.WIKI_REJECTED
    told = Told(raised=True, at=0)
    assert alerts.decide(cond, told, holds=True, now=HOUR - 1) is None
    assert alerts.decide(cond, told, holds=True, now=HOUR) == "raise"
    assert alerts.decide(cond, told, holds=False, now=HOUR) is None


def test_a_failing_page_is_said_once_when_it_starts_and_once_when_it_recovers() -> None:
    state, changes = PageHealth(), []
    for now, ok in [(0, True), (1, False), (2, False), (3, False), (4, True), (5, True)]:
        state, change = alerts.page_polled(state, ok, now)
        changes.append(change)
        if now == 3:
            assert state.failing_since == 1
    assert changes == [None, "failing", None, None, "recovered", None]


def test_a_start_remembers_since_when_the_page_fails() -> None:
    assert alerts.page_at_start(False, 500.0, 100.0) == PageHealth(failing_since=100.0)
    assert alerts.page_at_start(True, 500.0, 500.0) == PageHealth()
    assert alerts.failing_long(100.0, 701.0, 600.0)
    assert not alerts.failing_long(100.0, 700.0, 600.0)
    assert not alerts.failing_long(None, 700.0, 600.0)


def test_an_alert_is_a_modmail_row_with_a_stable_subject_and_says_what_to_do() -> None:
    row = alerts.message(WHERE, Condition.PAGE_FAILING, "raise", "HTTP 503", 1234.5)
    assert row.channel is Channel.MODMAIL
    assert row.recipient == "ClaudeAI"
    assert row.subject == alerts.subject(WHERE, Condition.PAGE_FAILING)
    assert "What to do" in row.body
    assert "HTTP 503" in row.body
    assert markdown.marker_of(row.body) == outbox.marker_id(row.key)
    later = alerts.message(WHERE, Condition.PAGE_FAILING, "clear", "", 2000.0)
    assert later.subject == row.subject
    assert later.key != row.key
    assert alerts.told(later, WHERE, Condition.PAGE_FAILING) == Told(raised=False, at=2000.0)
    assert alerts.told(row, WHERE, Condition.PAGE_FAILING) == Told(raised=True, at=1234.5)


def test_every_condition_says_what_to_do() -> None:
    for condition in Condition:
        body = alerts.alert_text(WHERE, condition, "raise", "")
        assert "**What to do:**" in body, condition


def test_outside_text_in_an_alert_is_escaped() -> None:
    body = alerts.alert_text(WHERE, Condition.WIKI_REJECTED, "raise", "by u/spez\n# heading")
    assert "u/spez" not in body.replace("u\\/spez", "")
    assert "\n# heading" not in body


# --- the real bot ---------------------------------------------------------------------------


def alerts_sent(fake: FakeReddit) -> list[str]:
    return [m.body for c in fake.modmail() for m in c.messages]


@pytest.mark.slow
async def test_a_page_failing_longer_than_alert_after_is_one_modmail_and_one_recovered(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    reddit.add_moderator("modbot", ["all"])
    env = page_env(
        statuspage,
        tmp_path,
        **reddit_env(reddit),
        MODBOT_ALERT_AFTER="1",
        MODBOT_INBOX_INTERVAL="0.5",
        MODBOT_REDDIT_CALLS_PER_MINUTE="600",
    )
    statuspage.set_incidents([])
    bot = await start_bot(env, tmp_path)
    try:
        await until(lambda: statuspage.count() >= 2)
        statuspage.misbehave("status", count=None, status=503)
        await until(lambda: len(alerts_sent(reddit)) == 1, timeout=30)
        failing_polls = statuspage.count(503)
        await until(lambda: statuspage.count(503) >= failing_polls + 10)
        await asyncio.sleep(0.5)  # a few inbox rounds more: nothing else is sent
        assert len(alerts_sent(reddit)) == 1
        statuspage.heal()
        await until(lambda: len(alerts_sent(reddit)) == 2, timeout=30)
        answered = statuspage.count()
        await until(lambda: statuspage.count() >= answered + 10)
        await asyncio.sleep(0.5)
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 10)
        assert bot.stderr is not None
        log = (await bot.stderr.read()).decode()
        print(log)
    (conversation,) = reddit.modmail()
    assert conversation.participant is None  # among the moderators
    first, recovered = (m.body for m in conversation.messages)
    assert "status page of **default** has been failing" in first
    assert "What to do" in first
    assert recovered.startswith("Recovered: the status page of **default** answers again")
    assert "Traceback" not in log
    # Said once when it started failing and once when it answered again, not every poll.
    assert log.count("default: status page: ") == 1, log
    assert log.count("status page reachable again") == 1, log
