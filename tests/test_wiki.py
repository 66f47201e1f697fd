"""Templates edited on the subreddit wiki: checked, used or refused, and one message to
the moderator who made each revision, through real asyncpraw and the fake Reddit."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modbot import default_templates_dir
from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.errors import StoreError
from modbot.ports import Store
from modbot.rendering.files import read_templates
from modbot.shell.statusview import status_text
from modbot.shell.wiki import PAGES, WikiPages, WikiTemplates
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
    assert "#modbot-inc-" not in message.body  # without the comment's hidden marker
    assert marker_of(message.body) == f"msg-wiki-default-incident-{revision}"  # its own
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


async def test_a_broken_edit_is_told_to_the_moderators_too(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    reddit.add_moderator("modbot", ["all"])  # new modmail is for moderators
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        broken = reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
        clock.now += 301
        await app.run_once()
    assert len(messages_to(reddit, "bob")) == 1  # its author, as before
    (conversation,) = reddit.modmail()
    assert conversation.subject == "modbot alert: default: wiki template revision rejected"
    (told,) = conversation.messages
    assert broken in told.body
    assert "u\\/bob" in told.body
    assert "line 1" in told.body
    assert "What to do" in told.body


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
        assert len(reads) == 5  # incident, manual, maintenance, early, reply: once each
        clock.now += 300
        await app.run_once()
    assert len([c for c in reddit.calls if "/wiki/" in c.path]) == 10


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


async def test_the_poller_never_talks_to_reddit_the_inbox_reads_the_wiki(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    revision = reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        before = len(reddit.calls)
        await app.poller.poll()
        assert reddit.calls[before:] == []  # the page is read, judged from the store
        assert app.inbox is not None
        await app.inbox.read_pages()
        assert len([c for c in reddit.calls if "/wiki/" in c.path]) == len(PAGES)
        assert messages_to(reddit, "alice") == []
        before = len(reddit.calls)
        await app.poller.poll()  # judged now: used, and its author's message recorded
        assert reddit.calls[before:] == []
        (told,) = await app.store.outbox()
        assert (told.recipient, told.state) == ("alice", "pending")
        await app.inbox.send_messages()
    (message,) = messages_to(reddit, "alice")
    assert revision in message.body


async def test_a_message_whose_request_failed_is_sent_once_after_the_grace(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    """It was at most once: a message whose request failed was never sent."""
    reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
    reddit.fail_next("POST", "/api/compose", 503, when="before")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        assert messages_to(reddit, "bob") == []
        clock.now += 33  # the grace after the call: not in the sent box, so it did not go out
        await app.run_once()
        await app.run_once()
    (message,) = messages_to(reddit, "bob")
    assert message.subject == "modbot: your template edit was not used"


async def test_a_message_whose_answer_was_lost_is_found_not_sent_twice(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    reddit.fail_next("POST", "/api/compose", 503, when="after")  # sent, answer lost
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        clock.now += 33
        await app.run_once()  # a restart: found in the sent box by its marker
        rows = (await app.store.export_rows())["messages"]
        (row,) = [r for r in rows if r["channel"] != "modmail"]  # the author's message
        assert row["state"] == "sent"
    assert len(messages_to(reddit, "alice")) == 1


async def test_a_lost_state_file_does_not_message_an_author_twice(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock, tmp_path: Path
) -> None:
    reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
    assert len(messages_to(reddit, "bob")) == 1
    fresh = wiki_settings.model_copy(update={"database": tmp_path / "fresh.sqlite3"})
    async with App(fresh, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()  # judged again, and its message found already out
        rows = (await app.store.export_rows())["messages"]
        (row,) = [r for r in rows if r["channel"] != "modmail"]  # the author's message
        assert row["state"] == "sent"
    assert len(messages_to(reddit, "bob")) == 1


async def test_a_message_reddit_refuses_for_good_is_dropped_and_said_once(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        assert app.inbox is not None
        await app.inbox.read_pages()
        await app.poller.poll()  # judged: bob is to be told
        del reddit.accounts["bob"]  # the author deleted their account since
        await app.inbox.send_messages()
        for _ in range(3):
            clock.now += 600
            await app.run_once()
        rows = (await app.store.export_rows())["messages"]
        (row,) = [r for r in rows if r["channel"] != "modmail"]  # the author's message
    assert row["state"] == "failed"
    assert "USER_DOESNT_EXIST" in row["last_error"]
    assert len([c for c in reddit.calls if c.path.startswith("/api/compose")]) == 1
    refused = [r.getMessage() for r in caplog.records if "refused it" in r.getMessage()]
    refused = [m for m in refused if m.startswith("message to u/bob")]  # not the alert
    assert len(refused) == 1


class FailingOnce:
    """A store whose next call of ``method`` fails as a full disk makes writes fail (the
    fault is the store's; everything else is the real store)."""

    def __init__(self, store: Store, method: str) -> None:
        self.store, self.method, self.armed = store, method, True

    def __getattr__(self, name: str) -> Any:
        if name == self.method and self.armed:

            async def failing(*_: object, **__: object) -> None:
                self.armed = False
                raise StoreError("state file cannot be written (disk I/O error)")

            return failing
        return getattr(self.store, name)


async def test_pages_that_could_not_be_recorded_are_read_again_at_the_next_pass(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    """Found by the crash loop: a full disk during the write put the next read five
    minutes off, and the editor's message with it."""
    revision = reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        failing: Any = FailingOnce(app.store, "record_wiki_pages")
        pages = WikiPages(
            subreddits=["ClaudeAI"],
            wiki=app.reddit,
            mailbox=app.reddit,
            store=failing,
            clock=clock,
        )
        with pytest.raises(StoreError):
            await pages.read()
        await pages.read()  # at once, not in five minutes
        read = await app.store.wiki_pages("ClaudeAI")
    assert read["incident"] is not None
    assert read["incident"].revision_id == revision


async def test_a_verdict_that_could_not_be_recorded_is_judged_again(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock
) -> None:
    """Found by the crash loop: a verdict whose write failed was taken as judged, and
    its author was never told."""
    reddit.set_wiki_page(INCIDENT_PAGE, BROKEN_TEMPLATE, "bob")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        assert app.inbox is not None
        await app.inbox.read_pages()
        failing: Any = FailingOnce(app.store, "record_wiki")
        wiki = WikiTemplates(scope=app.watch, subreddit="ClaudeAI", store=failing, clock=clock)
        files = read_templates(default_templates_dir())
        bodies = app.first.bodies
        found = await wiki.changes()
        assert found is not None
        with pytest.raises(StoreError):
            await wiki.apply(files, *found, bodies, lambda: None)
        again = await wiki.changes()  # not taken as judged: its verdict is not written
        assert again == found
        await wiki.apply(files, *again, bodies, lambda: None)
        assert await wiki.changes() is None
        assert [r.outcome for r in await app.store.wiki_rows(app.watch)] == ["broken"]
        (told,) = await app.store.outbox()
    assert told.recipient == "bob"


VANDAL_TEMPLATE = "## VANDALISED {{ incident.name }}\n"


def ignored_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The wiki's own lines about an ignored revision (the HTTP library's debug lines
    carry the alert's text too)."""
    return [
        r
        for r in caplog.records
        if r.name == "modbot.shell.wiki" and "not a moderator" in r.getMessage()
    ]


async def test_a_revision_by_anyone_but_a_wiki_moderator_is_never_used(
    wiki_settings: Settings, reddit: FakeReddit, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    reddit.add_moderator("carol", ["posts"])  # a moderator, but not of the wiki
    reddit.add_moderator("dave", ["wiki"])
    reddit.add_moderator("modbot", ["all"])  # new modmail is for moderators
    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE, "alice")
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        before = bot_comment(reddit)
        assert before.startswith("## WIKI LOOK: ")
        ignored = []
        for author in ("mallory", "carol"):  # the wiki let them edit; the bot does not
            ignored.append(reddit.set_wiki_page(INCIDENT_PAGE, VANDAL_TEMPLATE, author))
            clock.now += 301
            await app.run_once()
            assert bot_comment(reddit) == before  # the last good template stays
        screen = await status_text(
            app.store, app.watch, url="u", subreddit="ClaudeAI", dry_run=False, now=clock.now
        )
        verdicts = [(r.author, r.outcome) for r in await app.store.wiki_rows(app.watch)]
    assert verdicts[-2:] == [("mallory", "not a moderator"), ("carol", "not a moderator")]
    assert f"ignored modbot/incident revision {ignored[-1][:8]} by u/carol" in screen
    assert "not a moderator with the wiki permission" in screen
    assert messages_to(reddit, "mallory") == messages_to(reddit, "carol") == []
    logged = ignored_lines(caplog)
    assert len(logged) == 2  # once per revision
    (conversation,) = reddit.modmail()  # the moderators are told, at most once an hour
    (told,) = conversation.messages
    assert ignored[0] in told.body
    assert "not a moderator with the wiki permission" in told.body

    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()  # a restart judges nothing again and still ignores it
        assert bot_comment(reddit) == before
    assert len(ignored_lines(caplog)) == 2

    reddit.set_wiki_page(INCIDENT_PAGE, GOOD_TEMPLATE.replace("WIKI", "DAVE'S"), "dave")
    clock.now += 60
    async with App(wiki_settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()  # a wiki moderator's revision is used again
        assert bot_comment(reddit).startswith("## DAVE'S LOOK: ")
        screen = await status_text(
            app.store, app.watch, url="u", subreddit="ClaudeAI", dry_run=False, now=clock.now
        )
    assert "ignored" not in screen
