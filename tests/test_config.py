"""Configuration mistakes caught before they cost a silent bot, each said in one line:
settings and their messages, the ``.env`` file, unknown ``MODBOT_`` names, database URLs
shown without their password, and errors that keep their causes for ``-v``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from modbot.cli.main import COMMANDS, build_parser
from modbot.config.settings import Settings
from modbot.shell.crashpoints import CRASH_POINTS
from tests.conftest import ROOT, run_cli

# --- errors keep their causes ------------------------------------------------------------------


def test_every_dropped_cause_says_why() -> None:
    # ``raise ... from None`` hides the original error from ``-v`` for good: allowed only
    # with a comment on the lines just above that says why the cause is noise or unsafe.
    unexplained = []
    for path in sorted((ROOT / "modbot").rglob("*.py")):
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


@pytest.mark.slow
async def test_with_v_a_failed_poll_shows_what_the_network_library_said(tmp_path: Path) -> None:
    env = {
        "MODBOT_STATUSPAGE_URL": "http://127.0.0.1:9",
        "MODBOT_DATABASE": str(tmp_path / "s.sqlite3"),
        "MODBOT_HTTP_TIMEOUT": "2",
    }
    result = await run_cli("run", "--once", "-v", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "httpx.ConnectError" in result.err


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
        ("MODBOT_SOURCE_KIND", "rss", "must be one of auto, statuspage, incidentio, atom, gcloud,"),
        ("MODBOT_MAINTENANCE", "maybe", "must be true or false"),
        ("MODBOT_REDDIT_CALLS_PER_MINUTE", "1000", "must be at most 600"),
        ("MODBOT_SUBREDDIT", "Claude AI", "not a subreddit name"),
        ("MODBOT_REPORTS", "loud", "must be one of notice, count or off"),
        ("MODBOT_REPORTS_INTERVAL", "5", "must be at least 10 seconds"),
        ("MODBOT_REPORTS_MIN_AUTHORS", "0", "must be at least 1"),
        ("MODBOT_REPORTS_WINDOW", "30", "must be at least 60"),
        ("MODBOT_REPORTS_FACTOR", "0.5", "must be at least 1"),
        ("MODBOT_REPORTS_MIN_ACCOUNT_AGE", "-1", "must be at least 0"),
        ("MODBOT_REPORTS_LINK_WINDOW", "soon", "must be a number"),
        ("MODBOT_REPORTS_ACTION", "ban", "must be one of reply, remove or off"),
        ("MODBOT_REPORTS_REMOVAL_REASON", "x" * 101, "one line of at most 100 characters"),
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


def test_the_reports_interval_floor_is_lifted_by_test_fast_as_the_polls_is() -> None:
    from modbot.config.settings import load_settings

    assert load_settings(None, reports_interval="2", test_fast="true").reports_interval == 2.0
    assert load_settings(None).reports_interval == 30.0


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


# --- unknown MODBOT_ names --------------------------------------------------------------------


def test_a_misspelt_setting_in_the_environment_names_the_nearest_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    monkeypatch.setenv("MODBOT_SUBREDIT", "ClaudeAI")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert str(caught.value) == (
        "invalid settings: MODBOT_SUBREDIT: unknown setting; did you mean MODBOT_SUBREDDIT?"
    )
    monkeypatch.delenv("MODBOT_SUBREDIT")
    monkeypatch.setenv("MODBOT_XYZZY", "1")
    with pytest.raises(ConfigError, match=r"MODBOT_XYZZY: unknown setting \(.env.example lists"):
        load_settings(None)


def test_a_misspelt_setting_in_the_env_file_names_its_line(tmp_path: Path) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    env = tmp_path / ".env"
    env.write_text("# mine\nMODBOT_SUBREDDIT=ClaudeAI\n\nMODBOT_POLL_INTERVALL=30\nOTHER_TOOL=x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value) == (
        f"invalid settings: {env}, line 4: MODBOT_POLL_INTERVALL: unknown setting; "
        "did you mean MODBOT_POLL_INTERVAL?"
    )


def test_names_the_tests_and_benchmarks_read_are_not_taken_for_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modbot.config.settings import NOT_SETTINGS, load_settings

    for name in NOT_SETTINGS:
        monkeypatch.setenv(name, "x")
    assert load_settings(None).subreddit is None


def test_every_modbot_name_in_the_project_is_a_setting_or_allowed() -> None:
    # Whatever reads or sets a MODBOT_ variable that is not a setting (code, tests,
    # benchmarks, CI, deployment files) must be on the allow-list, or a developer who sets
    # it could not start the bot. The README's examples of mistakes are not looked at.
    from modbot.config.settings import NOT_SETTINGS, Settings, env_name

    known = {env_name(field) for field in Settings.model_fields} | NOT_SETTINGS
    constants = {"MODBOT_TABLES"}  # a Python name in the store modules, not a variable
    found: dict[str, str] = {}
    places = [ROOT / name for name in ("modbot", "tests", "bench", "deploy", ".ci")]
    files = [path for place in places for path in place.rglob("*") if path.is_file()]
    for path in files:
        if {"node_modules", "__pycache__"} & set(path.parts) or path == Path(__file__):
            continue  # this file misspells names on purpose
        for name in re.findall(r"\bMODBOT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    unexplained = {name: where for name, where in found.items() if name not in known | constants}
    assert unexplained == {}


# --- the .env file ------------------------------------------------------------------------------


def test_env_file_values_quotes_comments_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modbot.config.settings import load_settings

    folder = tmp_path / "state"
    folder.mkdir()
    env = tmp_path / ".env"
    env.write_text(
        "export MODBOT_SUBREDDIT=ClaudeAI   # the sub\n"
        "MODBOT_MEGATHREAD_TITLE='Bugs # and ${NOT_EXPANDED}'\n"
        'MODBOT_REDDIT_USER_AGENT="python:modbot:1 (by u/\\"me\\")"\n'
        "STATE=${HOME_OF_TEST}/state\n"
        "MODBOT_DATABASE=${STATE}/s.sqlite3\n"
        "MODBOT_POLL_INTERVAL=30\n"
    )
    monkeypatch.setenv("HOME_OF_TEST", str(tmp_path))
    monkeypatch.setenv("MODBOT_POLL_INTERVAL", "20")  # the environment wins over the file
    settings = load_settings(env)
    assert settings.subreddit == "ClaudeAI"
    assert settings.megathread_title == "Bugs # and ${NOT_EXPANDED}"
    assert settings.reddit_user_agent == 'python:modbot:1 (by u/"me")'
    assert settings.database == folder / "s.sqlite3"
    assert settings.poll_interval == 20


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("MODBOT_SUBREDDIT=ClaudeAI\nMODBOT_TIMEZONE\n", "line 2: not a NAME=value line"),
        ("\n\nMODBOT_SUBREDDIT='Claude\n", "line 3: MODBOT_SUBREDDIT: the ' is not closed"),
        ('MODBOT_SUBREDDIT="ClaudeAI" AI\n', "line 1: MODBOT_SUBREDDIT: text after the closing"),
        ("MODBOT SUBREDDIT=ClaudeAI\n", "line 1: not a NAME=value line"),
    ],
)
def test_a_line_that_cannot_be_read_is_an_error_with_its_number(
    tmp_path: Path, text: str, says: str
) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    env = tmp_path / ".env"
    env.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(f"invalid settings: {env}, {says}")


@pytest.mark.parametrize(
    ("encoded", "says"),
    [
        ("MODBOT_SUBREDDIT=ClaudeAI\n".encode("utf-16"), ": the file is UTF-16 text, not UTF-8"),
        ("MODBOT_SUBREDDIT=ClaudeAI\n".encode("utf-16-le"), ": the file is UTF-16 text, not UTF-8"),
        ("# x\nMODBOT_TIMEZONE=Europe/Zürich\n".encode("latin-1"), ", line 2: not UTF-8 text"),
    ],
)
def test_an_env_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, encoded: bytes, says: str
) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    env = tmp_path / ".env"
    env.write_bytes(encoded)
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(f"invalid settings: {env}{says}: save it as UTF-8")
    assert "\n" not in str(caught.value)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    from modbot.config.settings import load_settings

    env = tmp_path / ".env"
    env.write_bytes("MODBOT_SUBREDDIT=ClaudeAI\n".encode("utf-8-sig"))
    assert load_settings(env).subreddit == "ClaudeAI"


@pytest.mark.slow
async def test_check_stops_on_a_misspelt_setting_and_on_a_utf16_env_file(tmp_path: Path) -> None:
    misspelt = await run_cli("check", env={"MODBOT_SUBREDIT": "ClaudeAI"}, cwd=tmp_path)
    assert misspelt.code == 2
    assert misspelt.err == (
        "modbot: invalid settings: MODBOT_SUBREDIT: unknown setting; "
        "did you mean MODBOT_SUBREDDIT?\n"
    )
    (tmp_path / ".env").write_bytes("MODBOT_SUBREDDIT=ClaudeAI\r\n".encode("utf-16"))
    utf16 = await run_cli("run", "--once", env={}, cwd=tmp_path)
    assert utf16.code == 2
    assert utf16.err.count("\n") == 1
    assert "Traceback" not in utf16.err
    assert ".env: the file is UTF-16 text, not UTF-8" in utf16.err


# --- --help ends with an example --------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_ends_with_one_example(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert lines[-1].startswith(f"example: modbot {command}")  # on one line, to copy
    assert sum(line.startswith("example:") for line in lines) == 1


def test_the_crash_setting_takes_every_named_crash_point_and_no_other() -> None:
    annotation = Settings.model_fields["crash_at"].annotation
    literal = next(arg for arg in get_args(annotation) if arg is not type(None))
    assert set(get_args(literal)) == set(CRASH_POINTS)


def test_values_given_win_then_the_environment_in_any_case_then_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order pydantic-settings kept (``load_settings`` reads the sources itself)."""
    from modbot.config.settings import load_settings

    env = tmp_path / ".env"
    env.write_text("MODBOT_POLL_INTERVAL=30\nMODBOT_INBOX_INTERVAL=40\nMODBOT_HTTP_TIMEOUT=50\n")
    monkeypatch.setenv("modbot_poll_interval", "20")
    monkeypatch.setenv("MODBOT_INBOX_INTERVAL", "25")
    settings = load_settings(env, inbox_interval=12)
    assert (settings.poll_interval, settings.inbox_interval, settings.http_timeout) == (20, 12, 50)
