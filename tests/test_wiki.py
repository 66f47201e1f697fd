"""Templates edited on the subreddit wiki: checked, used or refused, and one message to
the moderator who made each revision, through real asyncpraw and the fake Reddit."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from tests.conftest import reddit_settings
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

INCIDENT_PAGE = "modbot/incident"
GOOD_TEMPLATE = "## WIKI LOOK: {{ incident.name }}\n\n{{ incident.status_label }}\n"
BROKEN_TEMPLATE = "## {{ incident.name }\n\nunclosed\n"


def opened(incident_id: str = "inc1") -> dict[str, Any]:
    return incident(
        incident_id, "investigating", [update(f"{incident_id}u", "investigating", "Looking.", 1)]
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wiki_settings(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> Settings:
    reddit.add_moderator("alice", ["all"])
    reddit.add_moderator("bob", ["all"])
    statuspage.set_incidents([opened()])
    return make_settings(
        statuspage_url=statuspage.url, wiki_templates=True, **reddit_settings(reddit)
    )


def bot_comment(reddit: FakeReddit) -> str:
    (comment,) = [c for c in reddit.comments_by("modbot") if not c.deleted]
    return comment.body


def messages_to(reddit: FakeReddit, name: str) -> list[Any]:
    return [m for m in reddit.sent_messages if m.to.lower() == name.lower()]


async def test_a_good_edit_is_used_and_its_author_sees_the_comment_once(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        assert "WIKI LOOK" not in bot_comment(reddit)  # no page yet: the file template
        revision = reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
        clock.now += 301  # the next look at the wiki
        await app.run_once()
        assert bot_comment(reddit).startswith("## WIKI LOOK: ")  # re-rendered and edited
        status = (await app.store.health(app.watch)).templates
    (message,) = messages_to(reddit, "alice")
    assert message.subject == "modbot: your template edit is live"
    assert revision in message.body
    assert "## WIKI LOOK: " in message.body  # the comment as readers see it
    assert "#modbot-" not in message.body  # without the hidden marker
    assert f"rev {revision[:8]}" in status

    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()  # a restart: the same revision, judged before
        assert bot_comment(reddit).startswith("## WIKI LOOK: ")
    assert len(messages_to(reddit, "alice")) == 1


async def test_a_broken_edit_keeps_the_last_good_template_and_tells_its_author(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        before = bot_comment(reddit)
        assert before.startswith("## WIKI LOOK: ")
        broken = reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
        clock.now += 301
        await app.run_once()
        assert bot_comment(reddit) == before
    (message,) = messages_to(reddit, "bob")
    assert message.subject == "modbot: your template edit was not used"
    assert broken in message.body
    assert f"r/ClaudeAI/wiki/{INCIDENT_PAGE}, line 1" in message.body

    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()  # after a restart: still the good revision, no second message
        assert bot_comment(reddit) == before
    assert len(messages_to(reddit, "bob")) == 1
    assert len(messages_to(reddit, "alice")) == 1


async def test_an_edit_made_while_the_bot_was_down_is_judged_at_start(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")  # while stopped
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        assert bot_comment(reddit).startswith("## WIKI LOOK: ")
    assert len(messages_to(reddit, "alice")) == 1


async def test_the_wiki_is_read_at_most_once_per_page_every_five_minutes(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        for _ in range(5):
            await app.run_once()
            clock.now += 30
        reads = [c for c in reddit.calls if "/wiki/" in c.path]
        assert len(reads) == 4  # incident, manual, maintenance, early: once each
        clock.now += 300
        await app.run_once()
    assert len([c for c in reddit.calls if "/wiki/" in c.path]) == 8


async def test_deleting_the_page_goes_back_to_the_file(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        assert bot_comment(reddit).startswith("## WIKI LOOK: ")
        del reddit.wiki[("claudeai", INCIDENT_PAGE)]
        clock.now += 301
        await app.run_once()
        assert not bot_comment(reddit).startswith("## WIKI LOOK: ")
