"""The real ``modbot`` process against both fakes: crashes, signals, ``check``, secrets.
The crash and signal tests run on both stores (a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.records import DeliveryRow, Kind
from modbot.store import open_store
from tests.conftest import (
    BOT,
    StateLocation,
    expected_body,
    page_env,
    reddit_env,
    run_cli,
    start_bot,
    until,
)
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage
from tests.test_reddit_delivery import stage

pytestmark = pytest.mark.slow


def bot_env(page: FakeStatuspage, fake: FakeReddit, tmp_path: Path, **extra: str) -> dict[str, str]:
    """``MODBOT_*`` settings for a bot subprocess posting to the fake Reddit."""
    return page_env(page, tmp_path, **reddit_env(fake), **extra)


def expected(step: int, home: str) -> str:
    view = view_of(parse_incidents_object({"incidents": [stage(step)]}).incidents[0])
    return expected_body(view, home, subreddit="ClaudeAI")


async def incident_rows(database: StateLocation, incident_id: str = "inc1") -> list[DeliveryRow]:
    """The delivery rows of one incident, read from the state as another process."""
    store = await open_store(database)
    try:
        assert await store.integrity_problems() == []
        return await store.deliveries("default", Kind.INCIDENT, [incident_id])
    finally:
        await store.close()


def live(fake: FakeReddit) -> list[Comment]:
    return [c for c in fake.comments_by("modbot") if not c.deleted]


async def test_sigkill_between_posted_and_saved_never_double_posts(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path, state_location: StateLocation
) -> None:
    env = bot_env(statuspage, reddit, tmp_path, MODBOT_DATABASE=str(state_location))
    statuspage.set_incidents([stage(0)])
    bot = await start_bot(env, tmp_path)
    killed = asyncio.Event()

    def kill(_: Comment) -> None:
        os.kill(bot.pid, signal.SIGKILL)  # Reddit stored the comment; the bot never hears back
        reddit.on_comment_created = None
        killed.set()

    reddit.on_comment_created = kill
    await asyncio.wait_for(killed.wait(), 30)
    await asyncio.wait_for(bot.wait(), 10)
    assert bot.returncode == -signal.SIGKILL
    assert len(live(reddit)) == 1
    assert [r.state for r in await incident_rows(state_location)] == ["posting"]

    restarted = await start_bot(env, tmp_path)
    statuspage.set_incidents([stage(1)])
    await until(lambda: live(reddit)[0].body == expected(1, statuspage.url))
    restarted.send_signal(signal.SIGTERM)
    await asyncio.wait_for(restarted.wait(), 5)
    assert restarted.returncode == 0
    assert len(live(reddit)) == 1
    assert len(live(reddit)[0].history) == 2  # the original post and one edit


async def test_sigterm_during_a_run_stops_within_seconds_with_state_consistent(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path, state_location: StateLocation
) -> None:
    env = bot_env(statuspage, reddit, tmp_path, MODBOT_DATABASE=str(state_location))
    statuspage.set_incidents([stage(0)])
    bot = await start_bot(env, tmp_path)
    await until(lambda: len(live(reddit)) == 1)
    statuspage.set_incidents([stage(1)])
    reddit.delay_next("POST", "/api/editusertext/", 30, when="before")  # stop mid-call
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    bot.send_signal(signal.SIGTERM)
    await asyncio.wait_for(bot.wait(), 20)
    assert loop.time() - started < 10  # bounded (a few seconds' grace), not the call's 30 s
    assert bot.returncode == 0
    assert bot.stderr is not None
    assert "Traceback" not in (await bot.stderr.read()).decode()
    (row,) = await incident_rows(state_location)
    assert row.state == "posted"
    assert row.comment_id == live(reddit)[0].id
    reddit.clear_faults()
    again = await start_bot(env, tmp_path)
    await until(lambda: live(reddit)[0].body == expected(1, statuspage.url))
    again.send_signal(signal.SIGTERM)
    await asyncio.wait_for(again.wait(), 5)
    assert len(live(reddit)) == 1


async def test_check_reports_account_subreddit_moderation_and_megathread(
    reddit: FakeReddit, tmp_path: Path
) -> None:
    reddit.add_moderator("modbot", ["posts", "mail"])
    env = {**reddit_env(reddit), "MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    result = await run_cli("check", env=env, cwd=tmp_path)
    assert result.code == 0, result.out + result.err
    assert "logged in as u/modbot" in result.out
    assert "r/ClaudeAI exists" in result.out
    assert "permissions: posts, mail" in result.out
    assert "Performance and Bugs Megathread (week 47)" in result.out


async def test_check_fails_without_a_megathread(reddit: FakeReddit, tmp_path: Path) -> None:
    reddit.unsticky(reddit.megathread.id)  # type: ignore[attr-defined]
    result = await run_cli("check", env=reddit_env(reddit), cwd=tmp_path)
    assert result.code == 1
    assert "megathread:" in result.out
    assert "NONE" in result.out


@pytest.mark.parametrize("broken", ["MODBOT_REDDIT_PASSWORD", "MODBOT_REDDIT_CLIENT_SECRET"])
async def test_check_fails_on_bad_credentials_without_printing_them(
    reddit: FakeReddit, tmp_path: Path, broken: str
) -> None:
    env = {**reddit_env(reddit), broken: "wrong-value-xyz"}
    result = await run_cli("-v", "check", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "login" in result.out
    assert "FAILED" in result.out
    assert_no_secrets(result.out + result.err, "wrong-value-xyz")


async def test_no_secret_reaches_any_output_at_debug_level(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    statuspage.set_incidents([stage(0)])
    env = bot_env(statuspage, reddit, tmp_path, MODBOT_LOG_LEVEL="DEBUG")
    result = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Fetching: POST" in result.err  # asyncprawcore's DEBUG lines are there...
    assert len(live(reddit)) == 1
    assert reddit.issued_tokens
    assert_no_secrets(result.out + result.err, *reddit.issued_tokens)  # ...without secrets


def assert_no_secrets(text: str, *extra: str) -> None:
    for secret in (BOT["password"], BOT["client_secret"], *extra):
        assert secret not in text
