"""Getting in: refresh-token logins, ``modbot auth``'s code exchange, and ``check
--connect`` telling each way of being refused apart, through the fake Reddit."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.reddit.client import RedditClient
from tests.conftest import BOT, page_env, reddit_env, reddit_settings, run_cli, spawn
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

SCOPES = ["identity", "read", "history", "submit", "edit", "privatemessages", "modmail"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def token_env(reddit: FakeReddit, token: str) -> dict[str, str]:
    """The bot's settings with a refresh token instead of a username and password."""
    env = reddit_env(reddit)
    del env["MODBOT_REDDIT_USERNAME"], env["MODBOT_REDDIT_PASSWORD"]
    env["MODBOT_REDDIT_REFRESH_TOKEN"] = token
    return env


async def test_a_refresh_token_logs_in_without_username_or_password(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    reddit.add_refresh_token("tok-2fa-account", BOT["username"], SCOPES)
    values = reddit_settings(reddit)
    del values["reddit_username"], values["reddit_password"]
    settings = make_settings(
        statuspage_url=statuspage.url, reddit_refresh_token="tok-2fa-account", **values
    )
    assert settings.has_reddit_credentials
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        statuspage.set_incidents(
            [incident("inc1", "investigating", [update("u1", "investigating", "x", 1)])]
        )
        await app.run_once()
        assert app.reddit is not None
        assert app.reddit.username == BOT["username"]  # asked of Reddit
    (comment,) = reddit.comments_by(BOT["username"])
    assert comment.body.endswith("[](#modbot-inc-inc1)")
    grants = [c.form.get("grant_type") for c in reddit.calls if c.path == "/api/v1/access_token"]
    assert set(grants) == {"refresh_token"}


def test_a_password_and_a_refresh_token_together_are_refused(
    make_settings: Callable[..., Settings],
) -> None:
    from modbot.errors import ConfigError

    with pytest.raises(ConfigError, match="either MODBOT_REDDIT_PASSWORD or"):
        make_settings(
            subreddit="ClaudeAI",
            reddit_client_id="a",
            reddit_client_secret="b",
            reddit_username="u",
            reddit_password="p",
            reddit_refresh_token="t",
        )


@pytest.mark.slow
async def test_modbot_auth_exchanges_the_browser_code_for_a_refresh_token(
    reddit: FakeReddit, tmp_path: Path
) -> None:
    port = free_port()
    env = reddit_env(reddit)
    del env["MODBOT_REDDIT_USERNAME"], env["MODBOT_REDDIT_PASSWORD"]
    process = await spawn(
        "modbot", "auth", "--port", str(port), "--timeout", "20", env=env, cwd=tmp_path
    )
    assert process.stdout is not None
    printed = b""
    while b"/api/v1/authorize" not in printed:
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert line, (printed, await process.stderr.read() if process.stderr else b"")
        printed += line
    url = next(w for w in printed.decode().split() if "/api/v1/authorize" in w)
    query = parse_qs(urlsplit(url).query)
    assert query["duration"] == ["permanent"]
    assert query["redirect_uri"] == [f"http://localhost:{port}"]
    assert query["scope"][0].split() == SCOPES
    callback = reddit.approve_authorization(url, BOT["username"])  # "Allow", in a browser
    async with httpx.AsyncClient() as browser:
        landed = await browser.get(callback.replace("localhost", "127.0.0.1").split("#")[0])
    assert landed.status_code == 200
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    (token,) = reddit.issued_refresh_tokens
    text = (printed + out).decode()
    assert f"MODBOT_REDDIT_REFRESH_TOKEN={token}\n" in text
    assert text.count(token) == 1  # shown once, for the moderator to copy
    assert token not in err.decode()
    assert "u/modbot" in text


@pytest.mark.slow
async def test_modbot_auth_says_plainly_when_the_app_id_is_missing(tmp_path: Path) -> None:
    result = await run_cli("auth", env={}, cwd=tmp_path)
    assert result.code == 2
    assert "MODBOT_REDDIT_CLIENT_ID" in result.err
    assert result.err.count("\n") == 1


# --- check --connect: one line for each way in which Reddit refuses --------------------------

FAILURES: list[tuple[str, Callable[[FakeReddit, dict[str, str]], None], str]] = [
    (
        "wrong app secret",
        lambda fake, env: env.update(MODBOT_REDDIT_CLIENT_SECRET="wrong"),
        "the app's id or secret is wrong (HTTP 401",
    ),
    (
        "app not approved",
        lambda fake, env: setattr(fake, "app_suspended", True),
        "Reddit refused the app (HTTP 403): it is not approved for API access yet",
    ),
    (
        "wrong password or two-factor account",
        lambda fake, env: env.update(MODBOT_REDDIT_PASSWORD="wrong"),
        "Reddit refused the username and password (invalid_grant)",
    ),
    (
        "account suspended",
        lambda fake, env: fake.suspend_account(BOT["username"]),
        "Reddit refused the app (HTTP 403)",
    ),
    (
        "account shadow-banned",
        lambda fake, env: fake.shadowban_account(BOT["username"]),
        "u/modbot's profile answers 404: the account is shadow-banned",
    ),
    (
        "subreddit banned",
        lambda fake, env: fake.ban_subreddit(),
        "r/ClaudeAI is banned by Reddit",
    ),
    (
        "subreddit private",
        lambda fake, env: fake.make_private(),
        "r/ClaudeAI is private: make u/modbot an approved user or a moderator",
    ),
    (
        "not a moderator while distinguishing",
        lambda fake, env: env.update(MODBOT_DISTINGUISH="true"),
        "MODBOT_DISTINGUISH is on but u/modbot is not a moderator of r/ClaudeAI",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "break_it", "says"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_check_connect_names_each_failure_and_its_fix_in_one_line(  # noqa: PLR0917
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    tmp_path: Path,
    case: str,
    break_it: Callable[[FakeReddit, dict[str, str]], None],
    says: str,
) -> None:
    statuspage.set_incidents([])
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    break_it(reddit, env)
    result = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert result.code == 1, (case, result.out, result.err)
    failed = [line for line in result.out.splitlines() if "FAILED" in line]
    assert len(failed) == 1, result.out
    assert says in failed[0]
    assert "Traceback" not in result.out + result.err
    for secret in (BOT["password"], BOT["client_secret"]):
        assert secret not in result.out + result.err


@pytest.mark.slow
async def test_a_revoked_refresh_token_is_named_with_its_fix(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    statuspage.set_incidents([])
    env = page_env(statuspage, tmp_path, **token_env(reddit, "tok-revoked"))
    result = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "Reddit refused the refresh token (invalid_grant)" in result.out
    assert "run `modbot auth` again" in result.out
    assert "tok-revoked" not in result.out + result.err


@pytest.mark.slow
async def test_the_refresh_token_never_reaches_any_output_at_debug_level(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    token = "tok-secret-2fa-0123456789"
    reddit.add_refresh_token(token, BOT["username"], SCOPES)
    statuspage.set_incidents(
        [incident("inc1", "investigating", [update("u1", "investigating", "x", 1)])]
    )
    env = page_env(statuspage, tmp_path, **token_env(reddit, token), MODBOT_LOG_LEVEL="DEBUG")
    printed = ""
    for command in (("run", "--once"), ("status",), ("check", "--connect"), ("status", "--json")):
        result = await run_cli("-v", *command, env=env, cwd=tmp_path)
        assert result.code == 0, (command, result.out, result.err)
        printed += result.out + result.err
    assert "Fetching: POST" in printed  # asyncprawcore's DEBUG lines are there...
    assert reddit.comments_by(BOT["username"])
    for secret in (token, BOT["client_secret"], *reddit.issued_tokens):
        assert secret not in printed  # ...without the token


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00", "", None,
     "24:00", "not a time", 1e300],
)  # fmt: skip
def test_a_modmail_time_at_the_calendars_edge_is_a_number_never_an_error(value: object) -> None:
    """New modmail's ISO times come from outside: any value is a float (0 when none)."""
    from modbot.reddit.client import _iso_time

    assert isinstance(_iso_time(value), float)


@pytest.mark.slow
async def test_reads_a_quarter_minute_apart_keep_one_connection_to_reddit(
    reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    """aiohttp drops a connection idle for 15 s, and the bot reads every 15 to 30 s: each
    read would open a new connection (a TLS handshake, against Reddit). The account's
    session keeps it longer."""
    settings = make_settings(**reddit_settings(reddit))
    async with RedditClient(settings) as client:
        await client.unread()
        await asyncio.sleep(16.5)
        await client.unread()
    peers = [call.peer for call in reddit.calls if call.path.startswith("/message/unread")]
    assert len(peers) == 2
    assert peers[0] == peers[1]
