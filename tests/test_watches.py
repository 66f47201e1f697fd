"""Many watches in one process: the watches file, its errors, several pages into one
megathread and into two subreddits through real asyncpraw and httpx, Reddit commands
that name a watch, and the upgrade from a single-watch state file."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings, load_settings
from modbot.config.watches import load_watches
from modbot.core.markdown import marker_of
from modbot.errors import ConfigError
from modbot.store.sqlite_legacy import LEGACY_SCHEMAS
from tests.conftest import BOT, MEGATHREAD_TITLE, page_env, reddit_env, reddit_settings, run_cli
from tests.fakes.incidentio import COMPAT, FakeIncidentio
from tests.fakes.reddit import FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update
from tests.test_incidentio import reopened


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modbot.toml"
    path.write_text(text)
    return path


def opened(incident_id: str) -> dict[str, Any]:
    return incident(
        incident_id, "investigating", [update(f"{incident_id}u", "investigating", "x", 1)]
    )


# --- the watches file ----------------------------------------------------------------------


def _watch(name: str, url: str = "https://s.example", **keys: str) -> str:
    lines = ["[[watch]]", f'name = "{name}"'] + ([f'url = "{url}"'] if url else [])
    return "\n".join(lines + [f'{key} = "{value}"' for key, value in keys.items()]) + "\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (_watch("a", colour="red"), "watch 'a': colour: unknown key"),
        (_watch("a") + _watch("a", "https://t.example"), "watch 'a': name: used by more than one"),
        (_watch("a", ""), "watch 'a': url: required"),
        (_watch("a", kind="rss"), "watch 'a': kind: 'rss' is not one of"),
        (_watch("Big Name"), "watch 'Big Name': name: lower-case letters"),
        (_watch("a", "https://s.example/api/v2/incidents.json"), "url: give the page's base URL"),
        (_watch("g", "https://status.cloud.google.com", kind="gcloud"), "components: required"),
        ("[[watch]\n", "not valid TOML"),
        ('title = "x"\n', "unknown key 'title'"),
        (_watch("a") + "components = []\n", "components: an empty list matches no component"),
        (_watch("a", subreddit="r/a_"), "subreddit: not a subreddit name: 3 to 21 letters"),
        (_watch("a") + 'poll_interval = "30"\n', "watch 'a': poll_interval: must be a number"),
        ("watch = [1]\n", "watch #1: not a table"),
    ],
)
def test_a_bad_watches_file_is_one_line_naming_file_watch_and_key(
    tmp_path: Path, text: str, says: str
) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_watches(load_settings(None, config=path))
    assert str(caught.value).startswith(str(path))
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subreddit", "Claude AI"),
        ("timezone", "Mars/Olympus"),
        ("megathread_title", "(unclosed"),
        ("templates_dir", "/no/such/folder"),
        ("url", "status.claude.com"),
    ],
)
def test_a_watch_key_and_its_setting_say_the_same_about_one_value(
    tmp_path: Path, key: str, value: str
) -> None:
    # One check for both: the settings' validators are the watch model's.
    setting = "statuspage_url" if key == "url" else key
    with pytest.raises(ConfigError) as from_settings:
        load_settings(None, **{setting: value})
    path = config(tmp_path, _watch("a", **({key: value} if key != "url" else {})))
    if key == "url":
        path.write_text(_watch("a", value))
    with pytest.raises(ConfigError) as from_file:
        load_watches(load_settings(None, config=path))
    said_by_settings = str(from_settings.value).split(f"MODBOT_{setting.upper()}: ", 1)[1]
    assert str(from_file.value) == f"{path}: watch 'a': {key}: {said_by_settings}"


def test_the_settings_are_every_watchs_defaults(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        '[[watch]]\nname = "claude"\nurl = "https://status.claude.com"\n'
        '[[watch]]\nname = "openai"\nurl = "https://status.openai.com"\nkind = "incidentio"\n'
        'components = ["ChatGPT"]\nsubreddit = "ChatGPT"\npoll_interval = 30\n',
    )
    settings = load_settings(None, config=path, subreddit="ClaudeAI", timezone="Europe/Paris")
    claude, openai = load_watches(settings)
    assert (claude.name, claude.kind, claude.subreddit, claude.poll_interval) == (
        "claude",
        "auto",
        "ClaudeAI",
        15.0,
    )
    assert (openai.kind, openai.subreddit, openai.components, openai.poll_interval) == (
        "incidentio",
        "ChatGPT",
        ("ChatGPT",),
        30.0,
    )
    assert claude.timezone == openai.timezone == "Europe/Paris"


def test_without_a_file_there_is_one_watch_named_default() -> None:
    (watch,) = load_watches(load_settings(None, statuspage_url="https://status.claude.com"))
    assert (watch.name, watch.url, watch.kind) == ("default", "https://status.claude.com", "auto")


@pytest.mark.slow
async def test_a_bad_file_stops_start_up_with_one_line(tmp_path: Path) -> None:
    config(tmp_path, '[[watch]]\nname = "a"\nurl = "https://s.example"\nkind = "nope"\n')
    result = await run_cli("run", "--once", env={}, cwd=tmp_path)
    assert result.code == 2
    # The same form as a bad setting's: no log time or level before it.
    assert result.err.startswith("modbot: modbot.toml: watch 'a': kind:")
    assert result.err.count("\n") == 1


# --- several watches, one Reddit ----------------------------------------------------------------


@pytest.fixture
async def openai_page() -> AsyncIterator[FakeIncidentio]:
    async with FakeSite() as site:
        page = FakeIncidentio(site)
        page.set([])
        yield page


async def test_two_watches_share_one_megathread_without_colliding(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    path = config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\nkind = "statuspage"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nkind = "incidentio"\n',
    )
    # The lookups are counted below: a slow machine must not outlast the thread's check
    # interval between the rounds and make the count a race.
    values = {**reddit_settings(reddit), "megathread_check_interval": 300.0}
    settings = make_settings(config=path, **values)
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        # The same id on both pages: their comments must never be taken for each other.
        same = "01AAAAAAAAAAAAAAAAAAAAAAAA"
        statuspage.set_incidents([opened(same)])
        openai_page.set([reopened(COMPAT["incidents"][0], same)])
        await app.run_once()
        await app.run_once()
    comments = [c for c in reddit.comments_by(BOT["username"]) if not c.deleted]
    thread = reddit.megathread.id  # type: ignore[attr-defined]
    assert {c.submission_id for c in comments} == {thread}
    assert sorted(marker_of(c.body) or "" for c in comments) == [
        f"claude_inc-{same}",
        f"openai_inc-{same}",
    ]
    # One thread lookup and one look for the bot's own comments serve both watches.
    paths = [c.path.rstrip("/") for c in reddit.calls]
    assert paths.count("/r/ClaudeAI/hot") == 1
    assert paths.count(f"/user/{BOT['username']}/comments") == 1


async def test_two_watches_post_into_two_subreddits_through_one_session(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    other = reddit.add_subreddit("ChatGPT")
    gpt_thread = reddit.add_submission(MEGATHREAD_TITLE, sticky=1, subreddit="ChatGPT")
    path = config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nsubreddit = "ChatGPT"\n',
    )
    settings = make_settings(config=path, **reddit_settings(reddit))
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        statuspage.set_incidents([opened("abc123def456")])
        openai_page.set([reopened(COMPAT["incidents"][0], "01BBBBBBBBBBBBBBBBBBBBBBBB")])
        await app.run_once()
    by_thread = {c.submission_id: marker_of(c.body) for c in reddit.comments_by(BOT["username"])}
    assert by_thread == {
        reddit.megathread.id: "claude_inc-abc123def456",  # type: ignore[attr-defined]
        gpt_thread.id: "openai_inc-01BBBBBBBBBBBBBBBBBBBBBBBB",
    }
    assert other is not None


async def test_reddit_commands_name_a_watch_and_need_its_subreddit(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    reddit.add_subreddit("ChatGPT")
    reddit.add_submission(MEGATHREAD_TITLE, sticky=1, subreddit="ChatGPT")
    reddit.add_moderator("alice", ["all"])  # of r/ClaudeAI only
    path = config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nsubreddit = "ChatGPT"\n',
    )
    settings = make_settings(config=path, **reddit_settings(reddit))
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        assert app.inbox is not None
        own = reddit.send_message("alice", "!pause claude")
        other = reddit.send_message("alice", "!pause openai")
        await app.inbox.check()
        claude = await app.store.health(app.runtime("claude").scope)
        openai = await app.store.health(app.runtime("openai").scope)
    assert claude.paused
    assert not openai.paused
    assert "paused" in reddit.replies_to(own)[0]
    assert "only moderators of" in reddit.replies_to(other)[0]


async def test_a_state_file_of_one_watch_keeps_its_comments_after_the_upgrade(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    """A release-2 state file and its comment: recognised, edited, never posted again."""
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    thread = reddit.megathread  # type: ignore[attr-defined]
    item = opened("abc123def456")
    old = reddit.add_comment(thread.id, "old body\n\n[](#modbot-inc-abc123def456)", author="modbot")
    raw = sqlite3.connect(settings.database)
    for script in LEGACY_SCHEMAS:
        for statement in script.split(";"):
            if statement.strip():
                raw.execute(statement)
    raw.execute("INSERT INTO pages VALUES (?, '2026-01-01T00:00:00+00:00')", (statuspage.url,))
    raw.execute(
        "INSERT INTO incidents (page, incident_id, view, announce, is_open, rendered, "
        "rendered_hash, first_seen, changed_at, name, status) "
        "VALUES (?, 'abc123def456', ?, 1, 1, 'old body', 'h-old', 1, 1, 'x', 'investigating')",
        (
            statuspage.url,
            '{"id":"abc123def456","name":"x","status":"investigating","impact":"none","shortlink":null,"created_at":null,"resolved_at":null,"components":[],"updates":[]}',
        ),
    )
    raw.execute(
        "INSERT INTO comments (page, incident_id, thread_id, state, comment_id, permalink, "
        "delivered_hash, delivered_at) VALUES (?, 'abc123def456', ?, 'posted', ?, 'p', 'h-old', 1)",
        (statuspage.url, thread.id, old.id),
    )
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    statuspage.set_incidents([item])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    live = [c for c in reddit.comments_by("modbot") if not c.deleted]
    assert [c.id for c in live] == [old.id]
    assert live[0].body != "old body\n\n[](#modbot-inc-abc123def456)"  # edited to the new state


@pytest.mark.slow
async def test_the_cli_names_watches_and_refuses_to_guess(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    tmp_path: Path,
) -> None:
    """Driven only through the CLI, the environment and modbot.toml in the directory."""
    reddit.add_subreddit("OpenAI")
    reddit.add_submission(MEGATHREAD_TITLE, sticky=1, subreddit="OpenAI")
    config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\nsubreddit = "ClaudeAI"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nkind = "incidentio"\n'
        'subreddit = "OpenAI"\n',
    )
    statuspage.set_incidents([])
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    ran = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert ran.code == 0, ran.err

    status = await run_cli("status", env=env, cwd=tmp_path)
    assert status.code == 0, status.err
    for expected in (
        "claude",
        "auto: statuspage",
        "r/ClaudeAI",
        "openai",
        "incidentio",
        "r/OpenAI",
    ):
        assert expected in status.out

    guess = await run_cli("pause", env=env, cwd=tmp_path)
    assert guess.code == 2
    assert guess.err.strip().endswith(
        "there are several watches: name one with --watch (claude, openai)"
    )
    unknown = await run_cli("resume", "--watch", "gemini", env=env, cwd=tmp_path)
    assert unknown.code == 2
    assert "no watch named 'gemini'" in unknown.err

    paused = await run_cli("pause", "--watch", "openai", env=env, cwd=tmp_path)
    assert paused.code == 0, paused.err
    health = await run_cli("status", "--json", env=env, cwd=tmp_path)
    watches = {w["name"]: w for w in json.loads(health.out)}
    assert watches["openai"]["paused"] is True
    assert watches["claude"]["paused"] is False

    which = await run_cli("post", "Back soon.", env=env, cwd=tmp_path)
    assert which.code == 2
    assert "--subreddit" in which.err
    posted = await run_cli("post", "Back soon.", "--subreddit", "ClaudeAI", env=env, cwd=tmp_path)
    assert posted.code == 0, posted.err
    notices = [c for c in reddit.comments_by(BOT["username"]) if "Back soon." in c.body]
    assert len(notices) == 1
    assert notices[0].submission_id == reddit.megathread.id  # type: ignore[attr-defined]


async def test_a_post_among_several_watches_names_its_watch_or_is_refused(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    reddit.add_subreddit("ChatGPT")
    gpt_thread = reddit.add_submission(MEGATHREAD_TITLE, sticky=1, subreddit="ChatGPT")
    reddit.add_moderator("alice", ["all"])
    reddit.add_moderator("alice", ["all"], subreddit="ChatGPT")
    path = config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nsubreddit = "ChatGPT"\n',
    )
    settings = make_settings(config=path, **reddit_settings(reddit))
    async with App(settings, dry_run=False, out=io.StringIO(), settle_timeout=1.0) as app:
        assert app.inbox is not None
        await app.run_once()
        vague = reddit.send_message("alice", "!post claude is slow today")
        await app.inbox.check()
        (refusal,) = reddit.replies_to(vague)
        assert reddit.comments_by(BOT["username"]) == []  # nothing posted anywhere
        assert "!post @NAME TEXT" in refusal
        assert "watch: NAME" in refusal
        named = reddit.send_message("alice", "!post @claude is slow today")
        lined = reddit.send_message("alice", "!post Slow answers.\nwatch: openai")
        await app.inbox.check()
    by_thread = {c.submission_id: c.body for c in reddit.comments_by(BOT["username"])}
    claude_thread = reddit.megathread  # type: ignore[attr-defined]
    assert "\n\nis slow today\n\n" in by_thread[claude_thread.id]  # all of it, no watch
    assert "\n\nSlow answers.\n\n" in by_thread[gpt_thread.id]
    assert "watch:" not in by_thread[gpt_thread.id]
    assert len(reddit.replies_to(named)) == len(reddit.replies_to(lined)) == 1


def test_the_last_checked_line_is_a_setting_and_a_watch_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    assert load_watches(make_settings())[0].last_checked is False  # off by default
    assert load_watches(make_settings(last_checked=True))[0].last_checked is True
    path = config(
        tmp_path,
        '[[watch]]\nname = "a"\nprovider = "openai"\nlast_checked = true\n'
        '[[watch]]\nname = "b"\nprovider = "anthropic"\n',
    )
    first, second = load_watches(make_settings(config=path))
    assert (first.last_checked, second.last_checked) == (True, False)


async def test_watches_on_one_subreddit_read_it_once_each_with_its_own_report_keys(
    statuspage: FakeStatuspage,
    openai_page: FakeIncidentio,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    path = config(
        tmp_path,
        f'[[watch]]\nname = "claude"\nurl = "{statuspage.url}"\n'
        f'[[watch]]\nname = "openai"\nurl = "{openai_page.site.url}"\nkind = "incidentio"\n'
        'reports = "count"\nreports_min_authors = 3\nreports_window = 300\n'
        'reports_factor = 2.5\nreports_action = "off"\n'
        '[watch.report_rules.error-name]\nremove = ["Something went wrong"]\n',
    )
    settings = make_settings(
        config=path, reports_min_authors=7, reports_interval=1.0, **reddit_settings(reddit)
    )
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        claude, openai = app.runtime("claude").watch, app.runtime("openai").watch
        assert (claude.reports.mode, claude.reports.surge.min_authors) == ("notice", 7)
        assert (claude.reports.surge.window, claude.reports.action) == (600.0, "reply")
        assert (openai.reports.mode, openai.reports.surge.min_authors) == ("count", 3)
        assert (openai.reports.surge.window, openai.reports.surge.factor) == (300.0, 2.5)
        assert openai.reports.action == "off"
        assert openai.reports.rules is not None
        assert claude.reports.rules is None
        (reader,) = app.readers  # one reader for r/ClaudeAI, serving both watches
        assert [w.watch.name for w in reader.watches] == ["claude", "openai"]
        before = len(reddit.calls)
        await reader.read()
    paths = [c.path.rstrip("/") for c in reddit.calls[before:]]
    assert paths.count("/r/ClaudeAI/new") == 1
    assert paths.count("/r/ClaudeAI/comments") == 1
