"""Configuration mistakes caught before they cost a silent bot, each said in one line:
settings and their messages, the ``.env`` file, unknown ``MODBOT_`` names, database URLs
shown without their password, and errors that keep their causes for ``-v``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

# The store modules are being rewritten elsewhere; their raises are checked there.
NOT_CHECKED_HERE = {"store.py", "pgstore.py", "stores.py"}


# --- errors keep their causes ------------------------------------------------------------------


def test_every_dropped_cause_says_why() -> None:
    # ``raise ... from None`` hides the original error from ``-v`` for good: allowed only
    # with a comment on the lines just above that says why the cause is noise or unsafe.
    unexplained = []
    for path in sorted((ROOT / "modbot").rglob("*.py")):
        if path.name in NOT_CHECKED_HERE and path.parent.name == "modbot":
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not re.search(r"\bfrom None\b", line):
                continue
            start = number
            while start > 0 and not lines[start].lstrip().startswith(("raise", "except")):
                start -= 1  # the raise statement may span several lines
            above = lines[max(0, start - 4) : number + 1]
            if not any("#" in text for text in above):
                unexplained.append(f"{path.relative_to(ROOT)}:{number + 1}")
    assert unexplained == []


@pytest.mark.slow
async def test_an_error_is_one_line_and_with_v_its_cause_too(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    missing = str(tmp_path / "saved.json")
    plain = await run_cli("preview", "--feed", missing, env=env, cwd=tmp_path)
    assert plain.code == 1
    assert plain.err.count("\n") == 1
    assert "cannot read" in plain.err
    assert "Traceback" not in plain.err
    verbose = await run_cli("-v", "preview", "--feed", missing, env=env, cwd=tmp_path)
    assert verbose.code == 1
    assert "FileNotFoundError" in verbose.err  # the cause, kept by ``raise ... from exc``


# --- database URLs shown without their password ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@db.example.org:5432/modbot", "postgresql://u:***@db.example.org:5432/modbot"),
        ("postgresql://modbot:modbot@db/modbot", "postgresql://modbot:***@db/modbot"),
        ("postgres://u:p%40ss@db/m?sslmode=require&password=x", "postgres://u:***@db/m?sslmode=require&password=***"),
        ("postgresql://u:pa?ss@db/m", "postgresql://u:***@db/m"),
        ("postgresql://u@db/m?application_name=a@b", "postgresql://u@db/m?application_name=a@b"),
        ("postgresql://db/m", "postgresql://db/m"),
        ("mysql://root:pa/ss@db/m", "mysql://root:***@db/m"),
    ],
)  # fmt: skip
def test_a_database_url_is_shown_rebuilt_without_its_password(url: str, shown: str) -> None:
    from modbot.config.database import redact_url

    assert redact_url(url) == shown


def test_a_short_password_or_one_equal_to_the_user_hides_only_itself() -> None:
    from modbot.config.database import DatabaseURL, scrub

    url = "postgresql://p:p@db.example.org/modbot"
    assert str(DatabaseURL(url)) == "postgresql://p:***@db.example.org/modbot"
    said = f'connection to "{url}" failed: password authentication failed for user "p"'
    assert scrub(said, url) == (
        'connection to "postgresql://p:***@db.example.org/modbot" failed: '
        'password authentication failed for user "***"'  # in free text it may be either
    )
    long = "postgresql://modbot:hunter22@db/m"
    assert scrub(f"x {long}?password=hunter22 and hunter22 and hunter2200", long) == (
        "x postgresql://modbot:***@db/m?password=*** and *** and ***00"
    )


def test_a_password_with_a_space_is_refused_with_how_to_write_it() -> None:
    from modbot.config.database import DatabaseURL

    with pytest.raises(ValueError, match="a space is %20") as caught:
        DatabaseURL("postgresql://u:pass word@db/m")
    assert "pass word" not in str(caught.value)


# --- MODBOT_DATABASE in a folder that does not exist -----------------------------------------


def test_a_state_file_in_a_missing_folder_is_an_error_not_a_new_folder(tmp_path: Path) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    missing = tmp_path / "no-such-folder" / "state.sqlite3"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, database=str(missing))
    assert str(caught.value) == (
        f"invalid settings: MODBOT_DATABASE: the folder {missing.parent} does not exist: "
        "create it, or correct the path"
    )
    assert not missing.parent.exists()
    assert load_settings(None, database=str(tmp_path / "state.sqlite3")).database.exists() is False


@pytest.mark.slow
async def test_migrate_store_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    target = tmp_path / "no-such-folder" / "copy.sqlite3"
    result = await run_cli("migrate-store", "--to", str(target), env=env, cwd=tmp_path)
    assert result.code == 2
    assert result.err == (
        f"modbot: --to: the folder {target.parent} does not exist: create it, or correct the path\n"
    )
    assert not target.parent.exists()


# --- the settings' messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MODBOT_POLL_INTERVAL", "soon", "must be a number"),
        ("MODBOT_POLL_INTERVAL", "0.5", "must be at least 1 second"),
        ("MODBOT_POLL_INTERVAL", "-5", "must be greater than 0"),
        ("MODBOT_STATUSPAGE_URL", "status.claude.com", "must be an http(s) URL such as"),
        ("MODBOT_STATUSPAGE_URL", "https://x.example/api/v2", "give the page's base URL"),
        ("MODBOT_REDDIT_URL", "reddit", "must be an http:// or https:// URL"),
        ("MODBOT_DATABASE", "mysql://root@db/m", "give a file path, a sqlite:///path URL or"),
        ("MODBOT_SOURCE_KIND", "rss", "must be one of auto, statuspage, incidentio, atom or"),
        ("MODBOT_MAINTENANCE", "maybe", "must be true or false"),
        ("MODBOT_REDDIT_CALLS_PER_MINUTE", "1000", "must be at most 600"),
        ("MODBOT_SUBREDDIT", "Claude AI", "not a subreddit name"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_named_once_then_what_is_wrong(name: str, value: str, says: str) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(None, **{name.removeprefix("MODBOT_").lower(): value})
    message = str(caught.value)
    assert message.startswith(f"invalid settings: {name}: {says}")
    assert message.count(name) == 1


def test_credentials_without_a_subreddit_name_the_setting_like_the_others() -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    logins = {"reddit_client_id": "i", "reddit_client_secret": "s", "reddit_username": "u"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, reddit_password="pw-secret", **logins)
    assert str(caught.value) == (
        "invalid settings: MODBOT_SUBREDDIT: required when Reddit credentials are set"
    )


# --- subreddit names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("ClaudeAI", "ClaudeAI"),
        ("r/ClaudeAI", "ClaudeAI"),
        ("/r/ChatGPT/", "ChatGPT"),
        ("R/OpenAI", "OpenAI"),
        ("a_b", "a_b"),
        ("x" * 21, "x" * 21),
        ("de", "de"),  # a two-letter language subreddit, older than the 3-letter rule
        ("", None),
    ],
)
def test_a_subreddit_name_may_come_with_r_slash(given: str, name: str | None) -> None:
    from modbot.config.settings import load_settings

    assert load_settings(None, subreddit=given).subreddit == name


@pytest.mark.parametrize("bad", ["a", "ab_", "_abc", "x" * 22, "Claude AI", "Claude-AI", "r/a"])
def test_a_name_reddit_would_not_allow_is_refused(bad: str) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    if bad == "ab_":  # three characters: allowed
        assert load_settings(None, subreddit=bad).subreddit == "ab_"
        return
    with pytest.raises(ConfigError, match="MODBOT_SUBREDDIT: not a subreddit name"):
        load_settings(None, subreddit=bad)
