"""``status`` and ``check --live`` read plain settings without pydantic (``config.quick``):
what they read is what the full settings say, and anything unusual is left to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modbot.config.quick import SETTING_NAMES, quick_settings
from modbot.config.settings import Settings, load_settings
from modbot.config.watches import load_watches
from tests.conftest import run_cli

CREDENTIALS = {
    "MODBOT_REDDIT_CLIENT_ID": "app",
    "MODBOT_REDDIT_CLIENT_SECRET": "shh-secret",
    "MODBOT_REDDIT_USERNAME": "bot",
    "MODBOT_REDDIT_PASSWORD": "pw-secret",
    "MODBOT_SUBREDDIT": "ClaudeAI",
}
WATCHES = """
[[watch]]
name = "claude"
provider = "anthropic"
subreddit = "ClaudeAI"

[[watch]]
name = "openai"
provider = "openai"
components = ["ChatGPT", "APIs"]
poll_interval = 30
move_threshold = 3

[[watch]]
name = "mirror"
url = "http://127.0.0.1:9"
kind = "statuspage"
subreddit = "OtherSub"
maintenance = true
"""
PLAIN: list[tuple[str, dict[str, str], str, str]] = [
    ("defaults", {}, "", ""),
    ("credentials", {**CREDENTIALS, "MODBOT_POLL_INTERVAL": "30"}, "", ""),
    ("provider", {"MODBOT_PROVIDER": "openai", "MODBOT_COMPONENTS": "ChatGPT, APIs"}, "", ""),
    (
        "a feed",
        {"MODBOT_STATUSPAGE_URL": "https://status.x.ai/feed.xml", "MODBOT_SOURCE_KIND": "atom"},
        "",
        "",
    ),
    (
        "everything read",
        {
            "MODBOT_DRY_RUN": "TRUE",
            "MODBOT_DEPLOYMENT": "two",
            "MODBOT_LEASE_INTERVAL": "10",
            "MODBOT_LOG_LEVEL": "DEBUG",
            "modbot_log_format": "json",
            "MODBOT_HEARTBEAT_URL": "https://hc.example/ping/tok-secret",
            "MODBOT_MAINTENANCE": "yes",
            "MODBOT_MOVE_THRESHOLD": "7",
        },
        "MODBOT_POLL_INTERVAL=20\nMODBOT_SUBREDDIT=fromfile\nMODBOT_LEASE_INTERVAL=99\n",
        "",
    ),
    ("a watches file", CREDENTIALS, "", WATCHES),
    (
        "a watches file, no subreddit",
        {"MODBOT_SUBREDDIT": "ClaudeAI"},
        "",
        WATCHES.replace('"OtherSub"', '""'),
    ),
    ("a database URL", {"MODBOT_DATABASE": "sqlite:///other.sqlite3"}, "", ""),
]
UNUSUAL: list[tuple[str, dict[str, str], str]] = [
    ("an unknown setting", {"modbot_subredit": "x"}, ""),
    ("a number that is not one", {"MODBOT_POLL_INTERVAL": "often"}, ""),
    ("an interval out of range", {"MODBOT_POLL_INTERVAL": "0.5"}, ""),
    ("a subreddit the checks tidy", {"MODBOT_SUBREDDIT": "r/ClaudeAI"}, ""),
    ("a URL the checks tidy", {"MODBOT_STATUSPAGE_URL": "https://status.claude.com/"}, ""),
    (
        "an API URL",
        {"MODBOT_STATUSPAGE_URL": "https://status.claude.com/api/v2/incidents.json"},
        "",
    ),
    ("incomplete credentials", {"MODBOT_REDDIT_CLIENT_ID": "app"}, ""),
    ("a flag that is not one", {"MODBOT_DRY_RUN": "maybe"}, ""),
    ("a level in lower case", {"MODBOT_LOG_LEVEL": "debug"}, ""),
    ("a threshold out of range", {"MODBOT_MOVE_THRESHOLD": "0"}, ""),
    (
        "an unknown key in the file",
        {},
        '[[watch]]\nname = "a"\nurl = "https://s.example"\ncolor = "red"\n',
    ),
    ("two watches of one name", {}, '[[watch]]\nname = "a"\nurl = "https://s.example"\n' * 2),
    ("an unknown provider", {"MODBOT_PROVIDER": "nobody"}, ""),
]


def test_the_quick_reader_knows_every_setting() -> None:
    from modbot.config import quick, settings

    assert set(Settings.model_fields) == SETTING_NAMES
    assert quick.NOT_SETTINGS == settings.NOT_SETTINGS
    # Its defaults are the settings' own (``Settings`` is where they are decided).
    assert Settings.model_validate(quick.DEFAULTS) == Settings.model_validate({})


@pytest.mark.parametrize(
    ("env", "dotenv", "watches"), [case[1:] for case in PLAIN], ids=[case[0] for case in PLAIN]
)
def test_plain_settings_read_quickly_are_what_the_full_checks_say(
    env: dict[str, str],
    dotenv: str,
    watches: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text(dotenv)
    if watches:
        (tmp_path / "modbot.toml").write_text(watches)
    quick = quick_settings(Path(".env"))
    full = load_settings(Path(".env"))
    assert quick is not None
    for name in ("database", "config", "deployment", "lease_interval", "dry_run"):
        assert getattr(quick, name) == getattr(full, name), name
    assert quick.has_reddit_credentials == full.has_reddit_credentials
    assert (quick.log_level, quick.log_format) == (full.log_level, full.log_format)
    assert sorted(quick.secret_values()) == sorted(full.secret_values())
    assert [_seen(w) for w in quick.watches] == [_seen(w) for w in load_watches(full)]


def _seen(watch: Any) -> tuple[Any, ...]:
    """What the read-only commands read of a watch."""
    return (
        watch.name,
        watch.url,
        watch.kind,
        watch.subreddit,
        watch.poll_interval,
        watch.components,
        watch.provider,
        watch.megathread_title,
        watch.maintenance,
        watch.wiki_templates,
        watch.move_threshold,
        watch.scope(True),
    )


@pytest.mark.parametrize(
    ("env", "watches"), [case[1:] for case in UNUSUAL], ids=[case[0] for case in UNUSUAL]
)
def test_anything_unusual_is_left_to_the_full_checks(
    env: dict[str, str], watches: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if watches:
        (tmp_path / "modbot.toml").write_text(watches)
    assert quick_settings(Path(".env")) is None


async def test_status_with_a_bad_setting_says_what_every_command_says(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3"), "MODBOT_POLL_INTERVAL": "often"}
    result = await run_cli("status", env=env, cwd=tmp_path)
    assert result.code == 2
    assert result.err.strip() == "modbot: invalid settings: MODBOT_POLL_INTERVAL: must be a number"
