"""Alerts to the moderators by new modmail: which is due (pure), what it says, and the
real bot telling them, through the outbox, against the fake Reddit over HTTP."""

from __future__ import annotations

import asyncio
import io
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core import alerts, markdown, outbox
from modbot.core.alerts import Condition, PageHealth, Told, Where
from modbot.core.machine import State
from modbot.core.records import Channel
from tests.conftest import (
    StateLocation,
    page_env,
    reddit_env,
    reddit_settings,
    start_bot,
    until,
)
from tests.fakes.incidentio import FakeIncidentio
from tests.fakes.reddit import Conversation, FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage
from tests.test_reddit_delivery import Harness, stage

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


# --- the bot's comments: refused, removed, filtered; the megathread -------------------------------


@pytest.fixture
async def harness(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    state_location: StateLocation,
) -> AsyncIterator[Harness]:
    """One bot (``run --once`` per step) whose account moderates r/ClaudeAI with all
    permissions, as the alerts need (new modmail is for moderators); on each store."""
    reddit.add_moderator("modbot", ["all"])
    values = reddit_settings(reddit) | {"database": state_location}
    settings = make_settings(statuspage_url=statuspage.url, **values)
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        yield Harness(statuspage, reddit, settings, app)


def conversation(fake: FakeReddit, condition: Condition) -> Conversation:
    """The one conversation about ``condition`` of the default watch."""
    subject = alerts.subject(Where("default", "default", "ClaudeAI"), condition)
    (found,) = [c for c in fake.modmail() if c.subject == subject]
    return found


def verify_now(harness: Harness) -> None:
    harness.app.deliverer._verified_at = -1e9  # the periodic check of comments is due


async def test_a_comment_filtered_by_the_spam_filter_is_kept_edited_and_told(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    comment = harness.only_comment()
    fake.filter_comment(comment.id, by="spam")
    verify_now(harness)
    await harness.step(stage(1))
    # Not a moderator's removal: the row stays posted and the comment is edited.
    assert (await harness.row()).state == State.POSTED
    assert fake.comments[comment.id].body == harness.expected(stage(1))
    (told,) = conversation(fake, Condition.COMMENT_FILTERED).messages
    assert "spam filter" in told.body
    assert "Approve the comment" in told.body
    assert comment.id in told.body
    # Still filtered at the next check: nothing more is sent.
    verify_now(harness)
    await harness.step(stage(2))
    assert len(conversation(fake, Condition.COMMENT_FILTERED).messages) == 1
    # A moderator approves it: it shows the latest text, and the moderators hear so.
    fake.approve_comment(comment.id)
    verify_now(harness)
    await harness.step(stage(3))
    assert fake.comments[comment.id].body == harness.expected(stage(3))
    _, recovered = conversation(fake, Condition.COMMENT_FILTERED).messages
    assert recovered.body.startswith("Recovered: the filtered comment")
    assert len(harness.bot_comments()) == 1


async def test_a_comment_filtered_by_automoderator_is_not_a_moderators_removal(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    comment = harness.only_comment()
    fake.filter_comment(comment.id, by="automod")
    await harness.step(stage(1))  # the edit's answer shows the filter: still edited
    assert (await harness.row()).state == State.POSTED
    assert fake.comments[comment.id].body == harness.expected(stage(1))
    verify_now(harness)
    await harness.step()
    assert "AutoModerator" in conversation(fake, Condition.COMMENT_FILTERED).messages[0].body


async def test_a_comment_a_moderator_removed_is_a_refused_write(harness: Harness) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    fake.remove_comment(harness.only_comment().id)
    verify_now(harness)
    await harness.step(stage(1))
    assert (await harness.row()).state == State.REMOVED
    (told,) = conversation(fake, Condition.WRITES_REFUSED).messages
    assert "was removed or deleted" in told.body
    assert "What to do" in told.body
    assert [c.subject for c in fake.modmail()] == [told_subject(Condition.WRITES_REFUSED)]


def told_subject(condition: Condition) -> str:
    return alerts.subject(Where("default", "default", "ClaudeAI"), condition)


async def test_a_write_reddit_forbids_is_told_once_and_its_recovery_once(
    harness: Harness,
) -> None:
    fake = harness.fake
    fake.fail_next("POST", "/api/comment", 403, count=2)
    await harness.step(stage(0))
    harness.expire_waits()
    await harness.step(stage(0))
    (told,) = conversation(fake, Condition.WRITES_REFUSED).messages
    assert "forbidden" in told.body
    harness.expire_waits()
    await harness.step(stage(0))
    assert len(harness.bot_comments()) == 1
    _, recovered = conversation(fake, Condition.WRITES_REFUSED).messages
    assert recovered.body.startswith("Recovered: Reddit accepts the bot's writes")


async def test_a_missing_megathread_is_told_and_its_return(harness: Harness) -> None:
    fake = harness.fake
    thread = fake.megathread  # type: ignore[attr-defined]
    fake.unsticky(thread.id)
    await harness.step(stage(0))
    (told,) = conversation(fake, Condition.MEGATHREAD_MISSING).messages
    assert "Pin the megathread" in told.body
    fake.set_sticky(thread.id, 1)
    await until_thread(harness)
    _, recovered = conversation(fake, Condition.MEGATHREAD_MISSING).messages
    assert "pinned again" in recovered.body
    assert len(harness.bot_comments()) == 1


async def until_thread(harness: Harness) -> None:
    for _ in range(50):
        await asyncio.sleep(0.05)
        await harness.step()
        if harness.bot_comments():
            return


async def test_an_alert_whose_answer_was_lost_is_found_in_its_conversation_not_sent_twice(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    fake.remove_comment(harness.only_comment().id)
    verify_now(harness)
    # Reddit stores the new conversation, then the answer is lost (a 503).
    fake.fail_next("POST", "/api/mod/conversations$", 503, when="after")
    await harness.step(stage(1))
    assert len(fake.modmail()) == 1
    harness.expire_waits()
    await harness.step()
    (conv,) = fake.modmail()
    assert len(conv.messages) == 1  # settled by its marker, not sent again
    (row,) = [r for r in await outbox_rows(harness) if r.channel is Channel.MODMAIL]
    assert row.state == "sent"


async def outbox_rows(harness: Harness) -> list[Any]:
    key = alerts.prefix(Where("default", "default", "ClaudeAI"), Condition.WRITES_REFUSED)
    row = await harness.app.store.last_message(key)
    return [row] if row is not None else []


async def test_alerts_off_sends_nothing(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    reddit.add_moderator("modbot", ["all"])
    values = reddit_settings(reddit) | {"alerts": False}
    settings = make_settings(statuspage_url=statuspage.url, **values)
    reddit.unsticky(reddit.megathread.id)  # type: ignore[attr-defined]
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        statuspage.set_incidents([stage(0)])
        await app.run_once()
    assert reddit.modmail() == []
    assert reddit.count(path_regex="/api/mod/") == 0


async def test_a_pause_and_its_end_are_told_whoever_paused(harness: Harness) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    await harness.app.operations.pause("u/alice")
    await harness.step(stage(1))
    (told,) = conversation(fake, Condition.PAUSED).messages
    assert "paused" in told.body
    assert "by u\\/alice" in told.body  # escaped: no ping
    assert "`!resume`" in told.body
    await harness.app.operations.resume("u/bob")
    await harness.step(stage(1))
    _, resumed = conversation(fake, Condition.PAUSED).messages
    assert resumed.body.startswith("Resumed: posting for **default** goes on")
    assert fake.comments[harness.only_comment().id].body == harness.expected(stage(1))


async def test_a_filter_matching_nothing_on_the_live_page_is_warned_once_and_told(
    reddit: FakeReddit, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    reddit.add_moderator("modbot", ["all"])
    async with FakeSite() as site:
        FakeIncidentio(site)  # Groq's captured summary: Production, Preview Models, ...
        values = reddit_settings(reddit) | {
            "statuspage_url": site.url,
            "source_kind": "incidentio",
            "components": ("Productoin", "whisper-large-v3"),
        }
        async with App(make_settings(**values), dry_run=False, out=io.StringIO()) as app:
            for _ in range(3):
                await app.run_once()
    warned = [r.getMessage() for r in caplog.records if "match none of the names" in r.getMessage()]
    assert len(warned) == 1
    assert "filter(s) 'Productoin' match none" in warned[0]  # whisper-large-v3 does match
    (told,) = conversation(reddit, Condition.FILTERS_UNMATCHED).messages
    assert "Productoin" in told.body
    assert "modbot check --connect" in told.body


async def test_an_alert_the_bot_cannot_send_is_refused_once_with_what_to_do(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reddit.add_moderator("modbot", ["posts"])  # a moderator, but without *mail*
    reddit.unsticky(reddit.megathread.id)  # type: ignore[attr-defined]
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        statuspage.set_incidents([stage(0)])
        for _ in range(3):
            await app.run_once()
        key = alerts.prefix(Where("default", "default", "ClaudeAI"), Condition.MEGATHREAD_MISSING)
        row = await app.store.last_message(key)
    assert row is not None
    assert row.state == "failed"
    assert reddit.modmail() == []
    assert reddit.count(path_regex="/api/mod/conversations") == 0
    refused = [
        r.getMessage() for r in caplog.records if "not a moderator with the mail" in r.getMessage()
    ]
    assert len(refused) == 1
    assert "MODBOT_ALERTS=off" in refused[0]
