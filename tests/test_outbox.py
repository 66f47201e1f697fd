"""The outbox through real asyncpraw and the fake Reddit: a reply to a command goes out
exactly once whatever is lost on the way (the request, the answer, the process), found
by its hidden marker before it is ever sent again; a reply that is a comment and was
sent twice (a late copy landed) is healed to one. The tests of lost answers run on
both stores (they ask for ``state_location``)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.core.records import MessageRow
from modbot.shell.inbox import Inbox
from tests.conftest import StateLocation, reddit_settings, until
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage

GRACE = 30.0
TIMEOUT = 2.0  # reddit_settings' timeout: a message's grace counts from after its call


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Bot:
    """An in-process bot on this test's state, its clock and its inbox."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self.app: App | None = None

    async def start(self, checkpoint: Callable[[str], None] | None = None) -> Inbox:
        self.app = App(
            self.settings, dry_run=False, out=io.StringIO(), clock=self.clock, checkpoint=checkpoint
        )
        await self.app.__aenter__()
        assert self.app.inbox is not None
        return self.app.inbox

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.__aexit__(None, None, None)
            self.app = None

    async def message(self, key: str) -> MessageRow | None:
        assert self.app is not None
        return await self.app.store.message(key)


@pytest.fixture
async def bot(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Bot]:
    reddit.add_moderator("alice", ["all"])
    statuspage.set_incidents([])
    state: dict[str, Any] = {}
    if "state_location" in request.fixturenames:
        state["database"] = request.getfixturevalue("state_location")
    settings = make_settings(
        statuspage_url=statuspage.url,
        reconcile_grace=GRACE,
        **reddit_settings(reddit),
        **state,
    )
    made = Bot(settings, Clock())
    try:
        yield made
    finally:
        await made.stop()


class _Crash(BaseException):
    """The process dies here; only the state survives."""


def crash_at(point: str) -> Callable[[str], None]:
    def checkpoint(name: str) -> None:
        if name == point:
            raise _Crash(name)

    return checkpoint


async def test_a_reply_whose_request_never_reached_reddit_is_sent_after_the_grace(
    bot: Bot, reddit: FakeReddit
) -> None:
    """It was at most once: a reply whose request failed stayed ``sending`` for good."""
    inbox = await bot.start()
    message = reddit.send_message("alice", "!status")
    reddit.fail_next("POST", "/api/comment/", 503, when="before")
    await inbox.check()
    assert reddit.replies_to(message) == []
    assert reddit.messages[message].new  # kept in view until its reply is settled
    row = await bot.message(f"reply-t4_{message}")
    assert row is not None
    assert row.state == "sending"
    bot.clock.now += 5
    await inbox.check()  # not in the sent box, but listings may lag: not yet
    assert reddit.replies_to(message) == []
    bot.clock.now += GRACE + TIMEOUT
    await inbox.check()
    (reply,) = reddit.replies_to(message)
    assert "megathread:" in reply
    assert marker_of(reply) == f"msg-reply-t4_{message}"
    assert not reddit.messages[message].new
    await inbox.check()
    assert len(reddit.replies_to(message)) == 1


async def test_a_reply_whose_answer_was_lost_is_found_by_its_marker_not_sent_again(
    bot: Bot, reddit: FakeReddit, state_location: StateLocation
) -> None:
    inbox = await bot.start()
    message = reddit.send_message("alice", "!status")
    reddit.fail_next("POST", "/api/comment/", 503, when="after")  # stored, answer lost
    await inbox.check()
    assert len(reddit.replies_to(message)) == 1
    bot.clock.now += 5
    await inbox.check()  # found at once in the sent box
    row = await bot.message(f"reply-t4_{message}")
    assert row is not None
    assert (row.state, row.attempts) == ("sent", 0)
    assert row.sent_id is not None
    assert row.sent_id in reddit.messages
    assert len(reddit.replies_to(message)) == 1
    assert not reddit.messages[message].new


@pytest.mark.parametrize("point", ["after-message-intent", "after-message-answer"])
async def test_a_crash_around_the_send_leaves_one_reply(
    bot: Bot, reddit: FakeReddit, state_location: StateLocation, point: str
) -> None:
    message = reddit.send_message("alice", "!pause")
    inbox = await bot.start(crash_at(point))
    with pytest.raises(_Crash):
        await inbox.check()
    await bot.stop()  # only the state survives
    sent_before = len(reddit.replies_to(message))
    assert sent_before == (1 if point == "after-message-answer" else 0)
    inbox = await bot.start()
    await inbox.check()  # looked for at once: a new process has nothing in flight
    bot.clock.now += GRACE + TIMEOUT + 1
    await inbox.check()
    (reply,) = reddit.replies_to(message)
    assert "paused" in reply
    assert not reddit.messages[message].new


def replies_to_comment(reddit: FakeReddit, comment_id: str) -> list[Comment]:
    return [
        c
        for c in reddit.comments_by("modbot")
        if c.parent_id == f"t1_{comment_id}" and not c.deleted
    ]


@pytest.mark.parametrize("stamp", ["landing", "request"])
async def test_a_late_copy_of_a_reply_to_a_mention_is_deleted_keeping_the_oldest(
    bot: Bot, reddit: FakeReddit, stamp: str
) -> None:
    thread = reddit.megathread  # type: ignore[attr-defined]
    inbox = await bot.start()
    mention = reddit.mention("alice", thread.id, "u/modbot !status")
    # Reddit stores the reply a second after the bot gave up on it (a 503): by then the
    # bot has found nothing after the grace and replied again.
    reddit.land_late_next(
        "POST",
        "/api/comment",
        1.0,
        hold=0.05,
        stamp=stamp,
        form={"thing_id": "^t1_"},  # type: ignore[arg-type]
    )
    await inbox.check()
    assert replies_to_comment(reddit, mention) == []
    bot.clock.now += GRACE + TIMEOUT + 1
    await inbox.check()  # not there: sent again, and a late copy is now in doubt
    (again,) = replies_to_comment(reddit, mention)
    row = await bot.message(f"reply-t1_{mention}")
    assert row is not None
    assert (row.state, row.sent_id) == ("sent", again.id)
    assert row.heal_at is not None
    await until(lambda: reddit.late_pending == 0)
    assert len(replies_to_comment(reddit, mention)) == 2
    bot.clock.now += GRACE + TIMEOUT + 1
    await inbox.check()  # the look for late copies: the oldest is kept
    (kept,) = replies_to_comment(reddit, mention)
    row = await bot.message(f"reply-t1_{mention}")
    assert row is not None
    assert row.sent_id == kept.id
    assert kept.id == (again.id if stamp == "landing" else reddit.late_landed[0])
    assert row.heal_at is not None  # it keeps looking for a while, at growing gaps


async def test_a_command_run_again_on_a_new_state_finds_its_reply_already_out(
    bot: Bot, reddit: FakeReddit, tmp_path: Path
) -> None:
    message = reddit.send_message("alice", "!status")
    inbox = await bot.start(crash_at("after-reply"))  # replied; not marked read yet
    with pytest.raises(_Crash):
        await inbox.check()
    await bot.stop()
    assert len(reddit.replies_to(message)) == 1
    bot.settings = bot.settings.model_copy(update={"database": tmp_path / "fresh.sqlite3"})
    inbox = await bot.start()  # the state file was lost: the command runs again
    await inbox.check()
    assert len(reddit.replies_to(message)) == 1
    row = await bot.message(f"reply-t4_{message}")
    assert row is not None
    assert row.state == "sent"
    assert not reddit.messages[message].new
