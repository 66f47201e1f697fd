"""Running the bot in production: health check, call budget, logs that keep secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from modbot.app import App
from modbot.cli import logs
from modbot.config.settings import Settings
from modbot.core.machine import State
from modbot.core.records import Kind
from tests.conftest import BOT, page_env, reddit_env, reddit_settings, run_cli, start_bot, until
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage
from tests.test_reddit_delivery import stage

SECRETS = (BOT["password"], BOT["client_secret"])


def age_heartbeat(database: Path, seconds: float, column: str = "last_good_poll_at") -> None:
    """Make the bot's last good poll (or Reddit call) ``seconds`` older, as time would."""
    raw = sqlite3.connect(database)
    raw.execute(f"UPDATE health SET {column} = {column} - ?", (seconds,))
    raw.commit()
    raw.close()


@pytest.mark.slow
async def test_check_live_means_the_bot_is_running_and_current(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    database = tmp_path / "state.sqlite3"
    no_state = await run_cli("check", "--live", env=env, cwd=tmp_path)
    assert no_state.code == 1
    assert "does not exist" in no_state.out
    statuspage.set_incidents([stage(0)])
    bot = await start_bot(env, tmp_path)
    try:
        await until(lambda: len(reddit.comments_by("modbot")) == 1)
        healthy = await run_cli("check", "--live", env=env, cwd=tmp_path)
        assert healthy.code == 0, healthy.out
        assert "polling:" in healthy.out
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 5)
    calls, requests = reddit.count(), statuspage.count()
    assert (await run_cli("check", "--live", env=env, cwd=tmp_path)).code == 0  # just stopped
    assert (reddit.count(), statuspage.count()) == (calls, requests)  # it asked nobody
    age_heartbeat(database, 120)  # the bot stopped two minutes ago
    stale = await run_cli("check", "--live", env=env, cwd=tmp_path)
    assert stale.code == 1
    assert "is the bot running?" in stale.out


@pytest.mark.slow
async def test_check_live_fails_when_deliveries_wait_and_reddit_is_silent(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    statuspage.set_incidents([stage(0)])
    reddit.down = True
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    result = await run_cli("check", "--live", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "deliveries waiting" in result.out
    assert "503" in result.out


@pytest.mark.slow
async def test_check_connect_tests_the_page_and_reddit_from_here(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    healthy = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert healthy.code == 0, healthy.out
    assert "feed:" in healthy.out
    statuspage.misbehave("html200", count=None)
    html = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert html.code == 1
    assert "HTML" in html.out
    statuspage.heal()
    reddit.unsticky(reddit.megathread.id)  # type: ignore[attr-defined]
    assert (await run_cli("check", "--connect", env=env, cwd=tmp_path)).code == 1


@pytest.mark.slow
async def test_check_connect_without_credentials_fails(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path)
    result = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "no credentials" in result.out


@pytest.mark.slow
async def test_status_json_is_the_health_record(statuspage: FakeStatuspage, tmp_path: Path) -> None:
    env = page_env(statuspage, tmp_path)
    statuspage.set_incidents([stage(0)])
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    result = await run_cli("status", "--json", env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["watch"] == "dry-run:default"
    assert record["last_poll_ok"] is True
    assert record["open_incidents"] == 1


async def test_call_budget_reschedules_instead_of_bursting(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, reddit_calls_per_minute=3, **reddit_settings(reddit)
    )
    statuspage.set_incidents([stage(0, f"i{n}") for n in range(5)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        calls = [c for c in reddit.calls if c.path != "/api/v1/access_token"]
        assert len(calls) == 3  # the megathread lookup and two posts; the rest wait
        rows = await app.store.deliveries(app.watch, Kind.INCIDENT, [f"i{n}" for n in range(5)])
        waiting = [r for r in rows if r.state == State.PENDING]
        assert waiting
        assert all(r.not_before > app.clock() + 30 for r in waiting)
        assert all("budget" in (r.last_error or "") for r in waiting)


def test_json_logs_are_one_object_per_line() -> None:
    stream = io.StringIO()
    logs.setup("INFO", "json", stream=stream)
    logging.getLogger("modbot.test").info("hello %s", "world")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("modbot.test").exception("it broke")
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["message"] == "hello world"
    assert records[0]["level"] == "INFO"
    assert "ValueError: boom" in records[1]["traceback"]


def test_secrets_and_tokens_are_redacted_everywhere_at_debug() -> None:
    stream = io.StringIO()
    logs.setup("DEBUG", "text", secrets=SECRETS, stream=stream)
    log = logging.getLogger("asyncprawcore")
    log.debug("Data: %s", [("grant_type", "password"), ("password", BOT["password"])])
    log.debug("headers {'Authorization': 'bearer abcdefghijklmnop1234'}")
    log.debug("refresh_token=rt-1234567890abc&access_token=at-abcdef123456")
    try:
        raise RuntimeError(f"login failed with secret {BOT['client_secret']}")
    except RuntimeError:
        logging.getLogger("modbot").exception("unexpected error")
    text = stream.getvalue()
    for secret in (*SECRETS, "abcdefghijklmnop1234", "rt-1234567890abc", "at-abcdef123456"):
        assert secret not in text
    assert "Traceback" in text
    assert text.count("***") >= 5


@pytest.mark.slow
async def test_settings_error_never_echoes_secrets(tmp_path: Path) -> None:
    env = {
        "MODBOT_REDDIT_CLIENT_ID": "cid",
        "MODBOT_REDDIT_CLIENT_SECRET": BOT["client_secret"],
        "MODBOT_REDDIT_USERNAME": "modbot",
        "MODBOT_REDDIT_PASSWORD": BOT["password"],
        "MODBOT_POLL_INTERVAL": "-1",
        "MODBOT_LOG_LEVEL": "DEBUG",
    }
    result = await run_cli("-v", "run", "--once", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "MODBOT_POLL_INTERVAL" in result.err
    for secret in SECRETS:
        assert secret not in result.out + result.err


async def test_check_live_says_the_page_fails_and_since_when(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path)
    statuspage.misbehave("status", count=None)  # 503, every time
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 1
    result = await run_cli("check", "--live", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "FAILED: default: the page fails since " in result.out
    assert "server error 503" in result.out
    assert "is the bot running?" not in result.out
    status = await run_cli("status", env=env, cwd=tmp_path)
    assert "dry-run" in status.out
    assert "Reddit call" not in status.out  # a dry run makes none: nothing to claim
