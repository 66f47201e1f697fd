"""Moderator commands: parsing, the CLI commands, and commands sent on Reddit.

The tests of notices' delivery (lost answers, interrupted commands, crashes after the
intent) run on both stores: they ask for ``state_location``."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from modbot import default_templates_dir
from modbot.app import App
from modbot.config.database import DatabaseURL
from modbot.config.settings import Settings
from modbot.core.commands import Command, help_text, parse
from modbot.core.markdown import marker_of
from modbot.core.records import DeliveryRow, Kind
from modbot.errors import CommandError
from modbot.shell.inbox import Inbox
from tests.conftest import (
    StateLocation,
    expire_waits_at,
    reddit_settings,
    run_cli,
    start_bot,
    until,
)
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage
from tests.snudown import Snudown
from tests.test_reddit_delivery import stage
from tests.test_reddit_process import bot_env

# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!status", Command("status")),
        ("  !STATUS  ", Command("status")),
        ("!post Hello\nsecond line", Command("post", "Hello\nsecond line")),
        ("u/modbot !refresh abc123", Command("refresh", "abc123")),
        ("/u/ModBot: !pause", Command("pause")),
        ("!refresh", Command("refresh")),
        ("thanks for the bot!", None),
        ("hello u/modbot !status", None),
        ("", None),
    ],
)
def test_parse(text: str, expected: Command | None) -> None:
    assert parse(text, "modbot") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("!post", "needs the text"),
        ("!launch rockets", "unknown command !launch"),
        ("!refresh a b", "at most one incident id"),
        ("! status", "a command is ! followed by its name"),
    ],
)
def test_malformed_commands_say_why(text: str, problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        parse(text, "modbot")


WATCHES = ("claude", "openai")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!post @claude is slow today", Command("post", "is slow today", "claude")),
        ("!post is slow today\nwatch: openai", Command("post", "is slow today", "openai")),
        ("!post Slow.\n  Watch: claude  \nMore.", Command("post", "Slow.\nMore.", "claude")),
        ("!pause openai", Command("pause", "", "openai")),  # a bare name, as before
        ("!refresh @claude abc123", Command("refresh", "abc123", "claude")),
        ("!status", Command("status")),  # about every watch
    ],
)
def test_a_command_names_its_watch(text: str, expected: Command) -> None:
    assert parse(text, "modbot", WATCHES) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # The first word of a notice is text, not a watch: "claude is slow today".
        ("!post claude is slow today", "!post needs the watch .* !post @NAME TEXT"),
        ("!post the API is slow", "or add a line 'watch: NAME'"),
        ("!post @gemini is slow", "no watch is called 'gemini'"),
        ("!post @claude", "needs the text"),
    ],
)
def test_a_post_among_several_watches_must_name_one(text: str, problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        parse(text, "modbot", WATCHES)


@pytest.mark.parametrize(
    "text", ["!post claude is slow today", "!post @everyone the API is slow", "!post watch: x"]
)
def test_with_one_watch_a_post_needs_no_name_and_keeps_its_text(text: str) -> None:
    parsed = parse(text, "modbot", ("default",))
    assert parsed == Command("post", text.removeprefix("!post "))
    assert parse("!post @default hello", "modbot", ("default",)) == Command(
        "post", "hello", "default"
    )


def test_the_help_says_how_to_name_a_watch_for_a_post() -> None:
    assert "!post @claude TEXT" in help_text(["ClaudeAI"], list(WATCHES))
    assert "@NAME" not in help_text(["ClaudeAI"], ["default"])


# --- shared set-up --------------------------------------------------------------------


def bot_comments(fake: FakeReddit) -> list[Comment]:
    return [c for c in fake.comments_by("modbot") if not c.deleted]


def notices(fake: FakeReddit) -> list[Comment]:
    return [c for c in bot_comments(fake) if (marker_of(c.body) or "").startswith("note-")]


class Moderated:
    """An in-process bot with its inbox, both fakes, and a moderator account."""

    def __init__(
        self, page: FakeStatuspage, fake: FakeReddit, app: App, settings: Settings
    ) -> None:
        self.page, self.fake, self.app, self.settings = page, fake, app, settings
        assert app.inbox is not None
        self.inbox: Inbox = app.inbox
        self.target: Any = app.target
        self.session: Any = app.reddit

    async def paused(self) -> bool:
        return (await self.app.store.health(self.app.watch)).paused

    async def note_rows(self) -> list[DeliveryRow]:
        notes = await self.app.store.recent_notes(self.app.watch, 10)
        return await self.app.store.deliveries(
            self.app.watch, Kind.NOTE, [n.note_id for n in notes]
        )

    def message(self, body: str, author: str = "alice") -> str:
        return self.fake.send_message(author, body)

    def replies(self, message_id: str) -> list[str]:
        return self.fake.replies_to(message_id)

    def unread(self, message_id: str) -> bool:
        return self.fake.messages[message_id].new


@pytest.fixture
async def moderated(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Moderated]:
    """The bot on a SQLite file; on each store in turn for a test that asks for
    ``state_location``."""
    reddit.add_moderator("alice", ["all"])
    reddit.add_moderator("wikimod", ["wiki"])
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    state: dict[str, Any] = {}
    if "state_location" in request.fixturenames:
        state["database"] = request.getfixturevalue("state_location")
    settings = make_settings(
        statuspage_url=statuspage.url, templates_dir=folder, **reddit_settings(reddit), **state
    )
    async with App(settings, dry_run=False, out=io.StringIO(), settle_timeout=1.0) as app:
        yield Moderated(statuspage, reddit, app, settings)


# --- commands on Reddit ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["cli", "reddit"])
async def test_a_bare_carriage_return_in_a_notice_is_a_line_break_not_a_heading(
    moderated: Moderated, snudown: Snudown, how: str
) -> None:
    """Reddit reads a lone CR as a line break: "hello\\r=====" was a heading."""
    text = "hello\r=====\rworld\r\r# big\r---"
    if how == "cli":
        await moderated.app.operations.post_notice(text, source="cli")
    else:
        moderated.message(f"!post {text}")
        assert await moderated.inbox.check() == 1
    (notice,) = notices(moderated.fake)
    html = snudown.html(notice.body)
    assert not re.search(r"<h\d>", html), notice.body
    assert html.count("<hr/>") == 1, notice.body  # the template's own, above its footer
    assert "\r" not in notice.body


async def test_a_lone_surrogate_in_a_command_costs_that_character_not_the_inbox(
    moderated: Moderated,
) -> None:
    """JSON may write "\\ud800", which no store and no Reddit call can carry."""
    message = moderated.message("!post Slow \ud800 today")
    assert await moderated.inbox.check() == 1
    (notice,) = notices(moderated.fake)
    assert "Slow \ufffd today" in notice.body
    assert moderated.replies(message)
    assert not moderated.unread(message)
    assert await moderated.inbox.check() == 0


async def test_post_from_a_moderator_is_posted_once_answered_and_marked_read(
    moderated: Moderated, state_location: StateLocation
) -> None:
    message = moderated.message("!post Maintenance tonight at 22:00 UTC, see u/spez {{ 7*7 }}")
    assert await moderated.inbox.check() == 1
    (notice,) = notices(moderated.fake)
    assert r"u\/spez" in notice.body
    assert r"{{ 7\*7 }}" in notice.body
    (reply,) = moderated.replies(message)
    assert notice.id in reply
    assert not moderated.unread(message)
    assert await moderated.inbox.check() == 0  # read now: nothing runs twice
    assert len(notices(moderated.fake)) == 1


async def test_mention_in_a_thread_is_a_command_too(moderated: Moderated) -> None:
    thread = moderated.fake.megathread  # type: ignore[attr-defined]
    mention = moderated.fake.mention("alice", thread.id, "u/modbot !status")
    await moderated.inbox.check()
    replies = [c for c in bot_comments(moderated.fake) if c.parent_id == f"t1_{mention}"]
    assert len(replies) == 1
    assert "paused:" in replies[0].body
    assert not moderated.fake.mentions[mention].new


async def test_status_pause_resume_and_help(moderated: Moderated) -> None:
    status = moderated.message("!status")
    pause = moderated.message("!pause")
    await moderated.inbox.check()
    assert "megathread:" in moderated.replies(status)[0]
    assert "paused" in moderated.replies(pause)[0]
    assert await moderated.paused()
    resume = moderated.message("!resume")
    helped = moderated.message("!help")
    await moderated.inbox.check()
    assert not await moderated.paused()
    assert "resumed" in moderated.replies(resume)[0]
    assert "!post TEXT" in moderated.replies(helped)[0]


async def test_refresh_from_reddit_applies_a_template_change(moderated: Moderated) -> None:
    moderated.page.set_incidents([stage(1)])
    await moderated.app.run_once()
    template = moderated.settings.templates_path / "incident.md.j2"
    template.write_text(template.read_text().replace("Affected:", "Components hit:"))
    message = moderated.message("!refresh")
    await moderated.inbox.check()
    (comment,) = [c for c in bot_comments(moderated.fake) if marker_of(c.body) == "inc-inc1"]
    assert "Components hit:" in comment.body
    assert "1 comment(s) changed" in moderated.replies(message)[0]


async def test_non_moderator_gets_one_polite_reply_and_nothing_runs(
    moderated: Moderated, caplog: pytest.LogCaptureFixture
) -> None:
    message = moderated.message("!pause", author="mallory")
    await moderated.inbox.check()
    await moderated.inbox.check()
    assert not await moderated.paused()
    (reply,) = moderated.replies(message)
    assert "only moderators" in reply
    assert not moderated.unread(message)
    assert any("mallory" in r.getMessage() for r in caplog.records)


async def test_moderator_without_posts_permission_cannot_post(moderated: Moderated) -> None:
    message = moderated.message("!post hi", author="wikimod")
    await moderated.inbox.check()
    assert notices(moderated.fake) == []
    assert "permission" in moderated.replies(message)[0]


async def test_plain_messages_are_left_alone(moderated: Moderated) -> None:
    message = moderated.message("thanks for running this bot!")
    assert await moderated.inbox.check() == 0
    assert moderated.unread(message)
    assert moderated.replies(message) == []


async def test_malformed_command_gets_the_help_text(moderated: Moderated) -> None:
    message = moderated.message("!post")
    await moderated.inbox.check()
    reply = moderated.replies(message)[0]
    assert "needs the text" in reply
    assert "!refresh" in reply
    assert notices(moderated.fake) == []


async def test_post_without_a_megathread_says_so(moderated: Moderated) -> None:
    moderated.fake.unsticky(moderated.fake.megathread.id)  # type: ignore[attr-defined]
    moderated.target.thread_suspect()
    message = moderated.message("!post hello")
    await moderated.inbox.check()
    assert "queued (no megathread right now)" in moderated.replies(message)[0]


async def test_reddit_refusing_the_notice_is_reported(moderated: Moderated) -> None:
    moderated.fake.ratelimit_next("/api/comment/", minutes=2)
    message = moderated.message("!post hello")
    await moderated.inbox.check()
    assert moderated.replies(message) == []  # replying is rate limited too: later
    assert moderated.unread(message)
    moderated.session._create_cooldown_until = 0.0  # two minutes pass
    expire_waits_at(moderated.settings.database, intent=False)
    await moderated.inbox.check()
    (reply,) = moderated.replies(message)
    assert "RATELIMIT" in reply
    assert notices(moderated.fake) == []
    assert not moderated.unread(message)


async def test_notice_whose_answer_was_lost_is_adopted_not_posted_twice(
    moderated: Moderated, state_location: StateLocation
) -> None:
    message = moderated.message("!post only once")
    moderated.fake.fail_next("POST", "/api/comment/", 503, when="after")  # stored, answer lost
    await moderated.inbox.check()
    assert "did not confirm" in moderated.replies(message)[0]
    expire_waits_at(moderated.settings.database)  # the grace has passed
    await moderated.app.deliverer.round()
    (note,) = await moderated.note_rows()
    assert note.state == "posted"
    assert len(notices(moderated.fake)) == 1
    assert note.comment_id == notices(moderated.fake)[0].id


def unrecord_the_result(database: Path | DatabaseURL, message_id: str) -> None:
    """As if the process had died before recording a command's result: running,
    unanswered (no reply recorded), unread. Written by a connection of its own, as
    another process would."""
    statements = [
        "UPDATE commands SET state = 'running', result = NULL WHERE message_id = {}",
        "DELETE FROM messages WHERE key = 'reply-' || {}",
    ]
    if isinstance(database, Path):
        raw = sqlite3.connect(database)
        for statement in statements:
            raw.execute(statement.format("?"), (message_id,))
        raw.commit()
        raw.close()
        return
    with psycopg.connect(database.url, autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement.format("%s"), (message_id,))


async def test_rerun_of_an_interrupted_post_command_adopts_the_notice(
    moderated: Moderated, state_location: StateLocation
) -> None:
    message = moderated.message("!post only once")
    moderated.fake.fail_next("POST", "/api/comment/", 503, when="after")
    await moderated.inbox.check()
    unrecord_the_result(moderated.settings.database, f"t4_{message}")
    expire_waits_at(moderated.settings.database)
    moderated.fake.messages[message].new = True
    moderated.fake.replies_to(message).clear()
    await moderated.inbox.check()
    assert len(notices(moderated.fake)) == 1
    assert "posted notice" in moderated.replies(message)[-1]


# --- CLI commands -----------------------------------------------------------------------


@pytest.mark.slow
async def test_cli_post_edit_and_post_from_file(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = bot_env(statuspage, reddit, tmp_path)
    posted = await run_cli(
        "post",
        "Known issue: **logins** fail for u/someone [x](http://e.vil)",
        env=env,
        cwd=tmp_path,
    )
    assert posted.code == 0, posted.err
    (notice,) = notices(reddit)
    assert notice.id in posted.out
    assert r"\*\*logins\*\*" in notice.body
    assert "[x](" not in notice.body
    edited = await run_cli("post", "--edit", notice.id, "Fixed now.", env=env, cwd=tmp_path)
    assert edited.code == 0, edited.err
    assert "Fixed now." in reddit.comments[notice.id].body
    assert marker_of(reddit.comments[notice.id].body) == marker_of(notice.body)
    (tmp_path / "notice.md").write_text("From a file.\n\nSecond paragraph.")
    from_file = await run_cli("post", "--file", str(tmp_path / "notice.md"), env=env, cwd=tmp_path)
    assert from_file.code == 0
    assert len(notices(reddit)) == 2
    unknown = await run_cli("post", "--edit", "zzz999", "x", env=env, cwd=tmp_path)
    assert unknown.code == 1
    assert "not a notice this bot posted" in unknown.err


@pytest.mark.slow
async def test_cli_without_credentials_shows_what_it_would_post(tmp_path: Path) -> None:
    result = await run_cli(
        "post", "Heads up", env={"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}, cwd=tmp_path
    )
    assert result.code == 0
    assert result.out.splitlines()[0].startswith("modbot 0.1.0: DRY-RUN")
    assert "Heads up" in result.out
    assert "[](#modbot-note-" in result.out


@pytest.mark.slow
async def test_cli_post_incident_refresh_and_status(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = bot_env(statuspage, reddit, tmp_path)
    statuspage.set_incidents([stage(1)])
    first = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    (comment,) = bot_comments(reddit)
    forced = await run_cli("post", "--incident", "inc1", env=env, cwd=tmp_path)
    assert forced.code == 0, forced.err
    assert len(reddit.comments[comment.id].history) == 2  # edited although it was current
    assert "comment is current" in forced.out

    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    (folder / "incident.md.j2").write_text("NEW LOOK {{ incident.name }} {{ incident.status }}\n")
    env["MODBOT_TEMPLATES_DIR"] = str(folder)
    refreshed = await run_cli("refresh", env=env, cwd=tmp_path)
    assert refreshed.code == 0, refreshed.err
    assert reddit.comments[comment.id].body.startswith("NEW LOOK")
    assert "1 comment(s) changed" in refreshed.out

    reddit.down = True
    statuspage.set_incidents([stage(2)])
    await run_cli("run", "--once", env=env, cwd=tmp_path)
    status = await run_cli("status", env=env, cwd=tmp_path)
    assert status.code == 0, status.err
    for expected in (
        "Performance and Bugs Megathread (week 47)",
        "inc1",
        "monitoring",
        comment.id,
        "an edit is pending",
        "Reddit error 503",
        "last poll:",
        "paused:      no",
    ):
        assert expected in status.out, expected


@pytest.mark.slow
async def test_pause_and_resume_steer_a_running_bot(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = bot_env(statuspage, reddit, tmp_path)
    statuspage.set_incidents([stage(0)])
    bot = await start_bot(env, tmp_path)
    try:
        await until(lambda: len(bot_comments(reddit)) == 1)
        comment = bot_comments(reddit)[0]
        paused = await run_cli("pause", env=env, cwd=tmp_path)
        assert paused.code == 0
        await asyncio.sleep(0.3)  # a few poll intervals: the bot has seen the flag
        for step in (1, 2, 3):
            statuspage.set_incidents([stage(step)])
            await asyncio.sleep(0.3)
        assert len(reddit.comments[comment.id].history) == 1  # nothing sent while paused
        resumed = await run_cli("resume", env=env, cwd=tmp_path)
        assert resumed.code == 0
        await until(lambda: "Resolved" in reddit.comments[comment.id].body)
        assert len(reddit.comments[comment.id].history) == 2  # one coalesced edit
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 5)


@pytest.mark.slow
async def test_crash_between_running_a_command_and_marking_it_read(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path, state_location: StateLocation
) -> None:
    reddit.add_moderator("alice", ["all"])
    env = bot_env(statuspage, reddit, tmp_path, MODBOT_DATABASE=str(state_location))
    env |= {"MODBOT_INBOX_INTERVAL": "0.1"}
    message = reddit.send_message("alice", "!post Exactly once, please.")
    bot = await start_bot(env, tmp_path)
    killed = asyncio.Event()

    def kill(_: object) -> None:
        os.kill(bot.pid, signal.SIGKILL)  # the notice is posted and answered; not yet read
        reddit.on_message_read = None
        killed.set()

    reddit.on_message_read = kill
    await asyncio.wait_for(killed.wait(), 30)
    await bot.wait()
    reddit.messages[message].new = True  # the mark-read never completed
    again = await start_bot(env, tmp_path)
    try:
        await until(lambda: not reddit.messages[message].new)
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.wait(), 5)
    assert len(notices(reddit)) == 1
    assert len(reddit.replies_to(message)) == 1


async def test_inbox_that_cannot_be_read_is_retried_next_pass(moderated: Moderated) -> None:
    """Found by the model test: a rate-limited inbox read escaped Inbox.check."""
    message = moderated.message("!status")
    moderated.fake.fail_next("GET", "/message/unread", 429, headers={"Retry-After": "20"})
    assert await moderated.inbox.check() == 0  # logged, not raised
    moderated.session._cooldown_until = 0.0  # the 20 s pass
    assert await moderated.inbox.check() == 1
    assert len(moderated.replies(message)) == 1


async def test_unconfirmed_notice_waits_for_a_megathread_without_blocking_incidents(
    moderated: Moderated, state_location: StateLocation
) -> None:
    """Found by the model test: NoMegathread escaped the notice reconciliation."""
    fake, app = moderated.fake, moderated.app
    fake.fail_next("POST", "/api/comment/", 503, when="before")
    moderated.message("!post Wait for me.")
    await moderated.inbox.check()  # the post's outcome is unknown
    expire_waits_at(moderated.settings.database)
    fake.lock(fake.megathread.id)  # type: ignore[attr-defined]
    moderated.target.thread_suspect()
    moderated.page.set_incidents([stage(0)])
    await app.run_once()  # must not raise
    (note,) = await moderated.note_rows()
    assert note.state == "pending"
    fresh = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    moderated.target.thread_suspect()
    await app.run_once()
    assert [c.submission_id for c in notices(fake)] == [fresh.id]
    assert any(marker_of(c.body) == "inc-inc1" for c in bot_comments(fake))


async def test_refresh_of_one_incident_replies_with_its_comment_link(moderated: Moderated) -> None:
    moderated.page.set_incidents([stage(1)])
    await moderated.app.run_once()
    (comment,) = bot_comments(moderated.fake)
    message = moderated.message("!refresh inc1")
    await moderated.inbox.check()
    reply = moderated.replies(message)[0]
    assert "re-rendered 1 incident(s)" in reply
    assert comment.id in reply


@pytest.mark.slow
async def test_cli_post_exits_1_when_reddit_does_not_confirm(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = bot_env(statuspage, reddit, tmp_path)
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    reddit.fail_next("POST", "/api/comment/", 503, when="after")
    adopted = await run_cli("post", "Is this up?", env=env, cwd=tmp_path)
    assert adopted.code == 0, adopted.out + adopted.err  # it looked, found it, adopted it
    (notice,) = notices(reddit)
    assert notice.id in adopted.out
    reddit.fail_next("POST", "/api/comment/", 503, when="after")
    reddit.listing_lag = 3600  # and now the listings do not show it yet
    unconfirmed = await run_cli("post", "Is this up, again?", env=env, cwd=tmp_path)
    assert unconfirmed.code == 1
    assert "did not confirm" in unconfirmed.out
    assert len(notices(reddit)) == 2  # it did land; the running bot will adopt it


class _Crash(BaseException):
    """The process dies here; only the state survives."""


async def test_a_post_command_interrupted_after_its_intent_posts_one_notice(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    state_location: StateLocation,
) -> None:
    """The race the crash loop found: after a crash right after the notice's intent was
    committed, the restarted inbox re-runs the command while the deliverer reconciles
    the same notice. One notice, one reply."""
    reddit.add_moderator("alice", ["all"])
    settings = make_settings(
        statuspage_url=statuspage.url, database=state_location, **reddit_settings(reddit)
    )
    statuspage.set_incidents([])
    message = reddit.send_message("alice", "!post Exactly one of me.")

    def crash(name: str) -> None:
        if name == "after-intent":
            raise _Crash(name)

    async def first_life() -> None:
        async with App(settings, dry_run=False, out=io.StringIO(), checkpoint=crash) as app:
            assert app.inbox is not None
            await app.inbox.check()

    with pytest.raises(_Crash):
        await first_life()
    assert notices(reddit) == []  # it died before the post reached Reddit
    async with App(settings, dry_run=False, out=io.StringIO(), settle_timeout=1.0) as app:
        assert app.inbox is not None
        await app.inbox.check()  # the re-run: the intent is there already
        await app.run_once()  # the deliverer's own round
        expire_waits_at(settings.database)
        await app.run_once()
        await app.inbox.check()
    assert len(notices(reddit)) == 1
    (reply,) = reddit.replies_to(message)
    assert notices(reddit)[0].id in reply


# --- commands by modmail ----------------------------------------------------------------


async def test_commands_by_modmail_run_once_and_are_answered_in_their_conversation(
    moderated: Moderated,
) -> None:
    fake = moderated.fake
    fake.add_moderator(fake.username, ["all"])  # the bot reads the subreddit's modmail
    pause = fake.send_modmail("alice", "!pause")
    stranger = fake.send_modmail("mallory", "!resume")  # not a moderator
    chat = fake.send_modmail("bob", "Hello mods, is the status bot down?")
    assert await moderated.inbox.check() == 2
    assert await moderated.paused()
    (reply,) = fake.modmail_replies(pause)
    assert "paused" in reply
    (refusal,) = fake.modmail_replies(stranger)
    assert "only moderators" in refusal
    assert fake.modmail_replies(chat) == []  # not a command: left to the moderators
    # Read for the bot's account once every command in it is settled.
    assert not any(c.unread for c in fake.conversations.values())

    fake.modmail_conversation_of(pause).unread = True  # someone marks it unread again
    assert await moderated.inbox.check() == 0  # answered: never run twice
    assert len(fake.modmail_replies(pause)) == 1

    conversation = fake.modmail_conversation_of(pause).id
    resume = fake.send_modmail("alice", "!resume", conversation=conversation)
    assert await moderated.inbox.check() == 1
    assert not await moderated.paused()
    (reply,) = fake.modmail_replies(resume)
    assert "resumed" in reply


async def test_a_post_by_modmail_whose_reply_answer_was_lost_is_answered_once(
    moderated: Moderated,
) -> None:
    fake = moderated.fake
    fake.add_moderator(fake.username, ["all"])
    post = fake.send_modmail("alice", "!post Maintenance at 22:00 UTC")
    # The reply lands in the conversation but Reddit's answer is lost.
    fake.fail_next("POST", r"/api/mod/conversations/[a-z0-9]+", 500, when="after")
    await moderated.inbox.check()
    (notice,) = notices(fake)
    assert "Maintenance at 22:00 UTC" in notice.body
    expire_waits_at(moderated.settings.database)  # the grace has passed
    await moderated.inbox.check()
    await moderated.inbox.check()
    (reply,) = fake.modmail_replies(post)  # found by its marker, not sent again
    assert notice.id in reply
    assert len(notices(fake)) == 1
