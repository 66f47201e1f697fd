"""Readers' reports for real: fake Reddit's listings -> the reader -> the store -> early
notices through the delivery machine -> fake Reddit, with the fake status page.

What issue 21 promises, end to end: a burst of readers' reports before the status page
changes makes one early notice within one reports interval of the threshold, the
official incident links it and says how far ahead readers were, nothing readers wrote
appears in any comment (checked with Reddit's own renderer), one author counts once,
young accounts not at all, a flood stays within the call budget and makes one notice,
and an idle read costs one call per listing.

Time is the harness's ``Clock``, shared by the bot and the fake Reddit, so a test can
let ten minutes pass at once.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.core.reading import SETTLE
from modbot.core.records import Kind
from modbot.shell.reports import SubredditReader
from tests.conftest import (
    BOT,
    MEGATHREAD_TITLE,
    page_env,
    reddit_env,
    reddit_settings,
    run_cli,
)
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import T0, FakeStatuspage, incident, update
from tests.snudown import Snudown
from tests.test_monitoring import free_port, samples

OLD = 400 * 86_400.0  # an account's age that always counts
# Readers' texts: each a report, each with markup, mentions or links, and a canary word
# that must never reach a comment.
HOSTILE = [
    "Is Claude down?? **529** [canaryone](https://evil.example/x) u/spez r/all",
    "API down for everyone, 500 Internal Server Error \u200b# canarytwo heading",
    "Claude is down for me too: 529 overloaded_error\n> canarythree quote",
    "claude.ai not working, 503\n\n| canaryfour | cell |\n|---|---|\n| a | b |",
    "Everything is down, 529 Overloaded ^(canaryfive) ~~strike~~ @mention",
]
REPORT = "Is Claude down? 529 overloaded for me"
HREF = re.compile(r'href="([^"]*)"')


class Clock:
    """Wall time, moved on by hand: the bot and the fake Reddit read the same one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def outage(
    incident_id: str,
    opened: float,
    status: str = "investigating",
    components: tuple[tuple[str, str], ...] = (("API", "partial_outage"),),
) -> dict[str, Any]:
    """An incident the page says it opened at ``opened`` (epoch seconds)."""
    minute = (opened - T0.timestamp()) / 60
    return incident(
        incident_id,
        status,
        [
            update(
                f"{incident_id}u1", status, "We are investigating.", minute, components=components
            )
        ],
        name="Elevated errors on the API",
        components=components,
    )


class Harness:
    """One bot wired to both fakes; readers post into the fake Reddit."""

    def __init__(self, page: FakeStatuspage, fake: FakeReddit, app: App, clock: Clock) -> None:
        self.page, self.fake, self.app, self.clock = page, fake, app, clock
        self.megathread = fake.megathread  # type: ignore[attr-defined]
        self.count = 0

    @property
    def reader(self) -> SubredditReader:
        (reader,) = self.app.readers
        return reader

    def author(self, name: str | None = None, *, age: float = OLD) -> str:
        self.count += 1
        name = name or f"reader{self.count}"
        self.fake.add_account(name, created_utc=self.clock() - age)
        return name

    def post(self, title: str = REPORT, *, author: str | None = None, age: float = OLD) -> str:
        """A reader's post; returns its id."""
        name = self.author(author, age=age)
        return self.fake.add_submission(title, author=name, created_utc=self.clock()).id

    def comment(
        self, body: str = REPORT, *, author: str | None = None, age: float = OLD
    ) -> Comment:
        """A reader's comment in the megathread."""
        name = self.author(author, age=age)
        return self.fake.add_comment(
            self.megathread.id, body, author=name, created_utc=self.clock()
        )

    async def read(self) -> None:
        await self.reader.read()

    async def run(self) -> None:
        """A poll and a delivery round, then a read (and deliver what it decided)."""
        await self.app.run_once()
        await self.read()
        await self.app.run_once()

    def bot_comments(self) -> list[Comment]:
        return [
            c
            for c in self.fake.comments_by(BOT["username"])
            if c.submission_id == self.megathread.id
        ]

    def early(self) -> list[Comment]:
        return [c for c in self.bot_comments() if (marker_of(c.body) or "").startswith("early-")]

    def incident_comment(self, incident_id: str) -> Comment:
        (found,) = [c for c in self.bot_comments() if marker_of(c.body) == f"inc-{incident_id}"]
        return found

    def listing_calls(self) -> int:
        return self.fake.count("GET", r"^/r/ClaudeAI/(new|comments)$")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeReddit]:
    async with FakeReddit(subreddit="ClaudeAI", clock=clock, **BOT) as reddit:
        reddit.megathread = reddit.add_submission(MEGATHREAD_TITLE, sticky=1)  # type: ignore[attr-defined]
        yield reddit


@pytest.fixture
def bot(
    statuspage: FakeStatuspage,
    fake: FakeReddit,
    make_settings: Callable[..., Settings],
    clock: Clock,
) -> Callable[..., Any]:
    """``async with bot(**settings) as harness``: a bot with both fakes, reading begun."""
    statuspage.set_incidents([])

    class Running:
        def __init__(self, **overrides: Any) -> None:
            values = {"reports_interval": 0.05, "megathread_check_interval": 3600.0}
            values |= overrides
            self.settings = make_settings(
                statuspage_url=statuspage.url, **(reddit_settings(fake) | values)
            )

        async def __aenter__(self) -> Harness:
            self.app = App(self.settings, dry_run=False, out=io.StringIO(), clock=clock)
            await self.app.__aenter__()
            await self.app.run_once()  # the page's baseline
            harness = Harness(statuspage, fake, self.app, clock)
            await harness.read()  # reading begins: older posts are not counted
            return harness

        async def __aexit__(self, *exc: object) -> None:
            await self.app.__aexit__(None, None, None)

    return Running


async def test_a_burst_before_the_page_makes_one_early_notice_the_incident_links(
    bot: Callable[..., Any], snudown: Snudown
) -> None:
    async with bot() as readers:
        for text in HOSTILE[:4]:
            readers.post(text)
        await readers.run()
        assert readers.early() == []  # four readers: no surge yet
        readers.comment(HOSTILE[4])
        await readers.run()  # the fifth: the threshold, and the notice within this read
        (notice,) = readers.early()
        assert "5 readers" in notice.body
        assert "shows nothing yet" in notice.body
        assert "`!quiet 2h`" in notice.body  # every notice names the command that holds them
        for _ in range(3):  # more reads of the same listings: still one notice
            await readers.run()
        assert len(readers.early()) == 1
        assert len(notice.history) == 1  # and nothing to edit
        # The vendor opens the incident (its page says five minutes after the first
        # reports): the notice is confirmed and links the incident's own comment.
        readers.page.set_incidents([outage("inc9", readers.clock() + 300)])
        await readers.run()
        await readers.run()
        comment = readers.incident_comment("inc9")
        (notice,) = readers.early()
        assert "confirms an incident" in notice.body
        assert comment.id in notice.body
        assert "first reports 5 min before the status page" in comment.body, comment.body
        assert "5 readers" in comment.body
        # Nothing readers wrote reaches a comment, in any version: labels and counts only.
        allowed = ("https://www.reddit.com/", "https://stspg.io", readers.page.url, "#modbot-")
        for body in (body for c in readers.bot_comments() for body in c.history):
            html = snudown.html(body)
            assert "canary" not in html.lower(), body
            for needle in ("spez", "<blockquote", "<table", "<del", "mention", "r/all"):
                assert needle not in html, (needle, body)
            for link in HREF.findall(html):
                assert link.startswith(allowed), link
        assert not readers.fake.unexpected_calls


async def test_an_idle_read_costs_one_call_per_listing_and_reads_from_a_cursor(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        readers.post("What is the best prompt for summaries?")
        readers.comment("Has anyone tried the new model?")
        readers.clock.advance(SETTLE + 1)  # both settle: the cursors move onto them
        await readers.read()
        before = readers.listing_calls()
        calls = len(readers.fake.calls)
        for _ in range(5):
            await readers.read()
        assert readers.listing_calls() - before == 10  # two listings, one call each
        assert len(readers.fake.calls) - calls == 10  # and nothing else
        cursors = [c.query.get("before") for c in readers.fake.calls[-10:]]
        assert all(cursor and cursor.startswith(("t3_", "t1_")) for cursor in cursors)


async def test_new_authors_ages_come_in_one_call_and_the_next_read_pays_for_it(
    bot: Callable[..., Any],
) -> None:
    async with bot(reports_interval=30.0) as readers:
        for _ in range(12):  # twelve new authors in one interval
            readers.post()
        readers.post(author="reader1")  # and one of them twice
        before = len(readers.fake.calls)
        wait = await readers.reader.step()
        calls = [c.route for c in readers.fake.calls[before:]]
        assert calls.count("user_data") == 1  # every age in one call
        assert calls.count("user_about") == 0
        # Two listings and the ages: the next read comes 1.5 intervals on, so reading
        # costs two calls an interval on average.
        assert sorted(calls) == ["new", "subreddit_comments", "user_data"]
        assert wait == pytest.approx(45.0)
        before = len(readers.fake.calls)
        readers.post(author="reader3")  # an author already known: no call for the age
        assert await readers.reader.step() == pytest.approx(30.0)
        assert "user_data" not in [c.route for c in readers.fake.calls[before:]]


async def test_a_read_pays_for_the_calls_it_made_retries_included(
    bot: Callable[..., Any],
) -> None:
    async with bot(reports_interval=30.0) as readers:
        for _ in range(3):
            readers.post()
        readers.fake.fail_next("GET", r"^/api/user_data_by_account_ids", 503, count=1)
        before = len(readers.fake.calls)
        wait = await readers.reader.step()
        calls = [c.route for c in readers.fake.calls[before:]]
        assert calls.count("user_data") == 2  # refused once, asked again
        assert wait == pytest.approx(60.0)  # four calls: the next read one interval later


async def test_an_author_the_listing_names_no_account_for_is_asked_by_name(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        readers.fake.account_fullnames = False  # listings without author_fullname
        readers.post(author="oldtimer")
        readers.post(author="newcomer", age=60.0)
        await readers.run()
        assert readers.fake.count("GET", r"^/user/(oldtimer|newcomer)/about/?$") == 2
        status = (await readers.app.first.operations.status()).text
        assert "1 reader in the last 10 min" in status, status


async def five_waiting_for_their_ages(readers: Harness) -> None:
    """Five readers' reports read while Reddit cannot say their authors' ages; Reddit
    answers again afterwards."""
    readers.fake.fail_next("GET", r"^/api/user_data_by_account_ids", 503, count=50)
    readers.fake.fail_next("GET", r"^/user/[^/]+/about", 503, count=50)
    for _ in range(5):
        readers.post()
    await readers.run()
    readers.fake.clear_faults()


async def test_reports_wait_while_reddit_cannot_say_their_authors_ages(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        await five_waiting_for_their_ages(readers)
        assert readers.early() == []  # not counted, not dropped: they wait
        await readers.run()
        (notice,) = readers.early()
        assert "5 readers" in notice.body


async def test_a_listing_that_cannot_be_read_loses_nothing_and_stops_nothing(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        await five_waiting_for_their_ages(readers)
        # The comments listing fails for a while: the posts are read and counted all
        # the same, with the reports that waited; the comment is read once it answers.
        readers.fake.fail_next("GET", r"^/r/ClaudeAI/comments", 403, count=1000)
        readers.post()
        readers.comment()
        for _ in range(3):
            await readers.run()
        (notice,) = readers.early()
        assert "6 readers" in notice.body
        readers.fake.clear_faults()
        await readers.run()
        status = (await readers.app.first.operations.status()).text
        assert "7 readers in the last 10 min" in status, status


async def test_a_batch_of_ages_that_keeps_failing_falls_back_to_asking_by_name(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        readers.fake.fail_next("GET", r"^/api/user_data_by_account_ids", 403, count=1000)
        for _ in range(5):
            readers.post()
        await readers.run()
        (notice,) = readers.early()  # counted all the same
        assert "5 readers" in notice.body
        assert readers.fake.count("GET", r"^/user/reader\d+/about/?$") == 5


async def test_one_author_counts_once_and_young_accounts_not_at_all(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        for _ in range(6):  # one reader, six reports
            readers.post(author="loud")
        for _ in range(3):  # three more readers
            readers.post()
        for _ in range(5):  # a brigade of accounts made an hour ago
            readers.post(age=3600)
        for _ in range(3):
            await readers.run()
        assert readers.early() == []  # four readers who count: no surge
        readers.post()  # a fifth reader with an account of some age
        await readers.run()
        (notice,) = readers.early()
        assert "5 readers" in notice.body


async def test_a_flood_stays_within_the_call_budget_and_makes_one_notice(
    bot: Callable[..., Any],
) -> None:
    async with bot(reddit_calls_per_minute=40) as readers:
        for number in range(450):  # readers and a brigade, all in one interval
            readers.post(author=f"flood{number}", age=OLD if number % 3 else 60.0)
        for _ in range(12):
            await readers.run()
        assert len(readers.early()) == 1
        times = sorted(c.time for c in readers.fake.calls if c.route != "access_token")
        busiest = max(sum(1 for t in times if start <= t < start + 60) for start in times)
        assert busiest <= 40
        # 450 authors' ages, a hundred a call.
        assert readers.fake.count("GET", r"^/api/user_data_by_account_ids$") <= 12 * 5


async def test_no_notice_while_an_incident_covers_what_readers_name(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        readers.page.set_incidents([outage("open1", readers.clock() - 600)])
        for _ in range(6):
            readers.post("API down for everyone, 529")
        await readers.run()
        await readers.run()
        assert readers.early() == []  # the incident's comment is the news
        comment = readers.incident_comment("open1")
        assert "6 readers" in comment.body  # and it shows the counts
        status = (await readers.app.first.operations.status()).text
        assert "no early notice (incident open1 is open)" in status, status


async def test_no_notice_in_count_mode(bot: Callable[..., Any]) -> None:
    async with bot(reports="count") as readers:
        for _ in range(6):
            readers.post()
        await readers.run()
        assert readers.early() == []
        status = (await readers.app.first.operations.status()).text
        assert "6 readers in the last 10 min" in status, status


async def test_quiet_holds_early_notices_then_lets_them_be(bot: Callable[..., Any]) -> None:
    async with bot() as readers:
        watch = readers.app.first
        await watch.operations.quiet(7200, "u/alice")
        for _ in range(6):
            readers.post()
        await readers.run()
        assert readers.early() == []
        status = (await watch.operations.status()).text
        assert "early notices held until" in status, status
        assert "no early notice (quiet (u/alice))" in status, status
        await watch.operations.quiet(0, "u/alice")
        readers.clock.advance(1300)  # the held surge ends: a new one gets its notice
        await readers.run()
        readers.clock.advance(700)
        await readers.run()
        for _ in range(5):
            readers.post()
        await readers.run()
        assert len(readers.early()) == 1


async def test_a_restart_mid_surge_posts_no_second_notice_and_reports_subside(
    bot: Callable[..., Any],
) -> None:
    async with bot() as readers:
        for _ in range(5):
            readers.post()
        await readers.run()
        assert len(readers.early()) == 1
    async with bot() as readers:  # a new process on the same state
        for _ in range(3):
            readers.post()
        await readers.run()
        await readers.run()
        (notice,) = readers.early()
        assert "subsided" not in notice.body
        readers.clock.advance(1300)  # ten quiet minutes, and ten more: it is over
        await readers.run()
        readers.clock.advance(700)
        await readers.run()
        (notice,) = readers.early()
        assert "subsided" in notice.body
        assert "never showed an incident" in notice.body


async def test_what_is_not_a_readers_report_is_not_counted(bot: Callable[..., Any]) -> None:
    async with bot() as readers:
        elsewhere = readers.fake.add_submission("Weekly chat", author="AutoModerator")
        for number in range(3):
            removed = readers.post()
            readers.fake.remove_submission(removed)
            readers.fake.add_comment(
                elsewhere.id, REPORT, author=readers.author(), created_utc=readers.clock()
            )
            readers.fake.add_submission(REPORT, author="AutoModerator")
            readers.post("Which plan should I buy?")
            del number
        readers.fake.add_submission(REPORT, author=BOT["username"])
        for _ in range(3):
            await readers.run()
        scope = readers.app.first.scope
        assert await readers.app.store.reports(scope, 0, readers.clock() + 1) == []
        assert readers.early() == []


async def test_the_store_keeps_no_name_and_no_text(bot: Callable[..., Any]) -> None:
    async with bot() as readers:
        readers.post("Claude down canaryword 529", author="visible_name")
        await readers.run()
        tables = await readers.app.store.export_rows()  # type: ignore[attr-defined]
        kept = repr(tables)
        assert "visible_name" not in kept
        assert "canaryword" not in kept
        (report,) = await readers.app.store.reports(readers.app.first.scope, 0, readers.clock())
        assert report.rule
        assert "529" in report.errors


async def test_a_moderator_quiets_early_notices_on_reddit(bot: Callable[..., Any]) -> None:
    async with bot() as readers:
        readers.fake.add_moderator("alice", ["posts"])
        readers.fake.add_moderator("carol", ["wiki"])
        refused = readers.fake.send_message("carol", "!quiet 2h")
        message = readers.fake.send_message("alice", "!quiet 2h")
        assert readers.app.inbox is not None
        await readers.app.inbox.check()
        assert "needs the 'posts'" in readers.fake.replies_to(refused)[0]
        (reply,) = readers.fake.replies_to(message)
        assert reply.startswith("early notices held until")
        signal = await readers.app.store.signal(readers.app.first.scope)
        assert signal is not None
        assert signal.quiet_by == "u/alice"
        assert signal.quiet_until > readers.clock() + 7100
        for _ in range(6):
            readers.post()
        await readers.run()
        assert readers.early() == []


async def test_modbot_quiet_and_status_from_the_command_line(
    bot: Callable[..., Any], tmp_path: Path
) -> None:
    async with bot() as readers:
        for _ in range(3):
            readers.post()
        await readers.run()
        env = {
            "MODBOT_DATABASE": str(readers.app.settings.database),
            "MODBOT_STATUSPAGE_URL": readers.page.url,
        } | reddit_env(readers.fake)
        held = await run_cli("quiet", "--for", "90m", env=env, cwd=tmp_path)
        assert held.code == 0, held.err
        assert held.out.startswith("early notices held until")
        status = await run_cli("status", env=env, cwd=tmp_path)
        assert "reports:     notice, read every 30 s; 3 readers in the last 10 min" in status.out
        assert "early notices held until" in status.out
        bad = await run_cli("quiet", "--for", "forever", env=env, cwd=tmp_path)
        assert bad.code == 2
        assert "--for takes a duration such as 30m, 2h or 1d, or off" in bad.err
        off = await run_cli("quiet", "--off", env=env, cwd=tmp_path)
        assert off.out == "early notices: no longer held\n"


# --- stray posts --------------------------------------------------------------------------


def replies_to(fake: FakeReddit, post_id: str) -> list[Comment]:
    """The bot's live replies on a post."""
    return [
        c for c in fake.comments_by(BOT["username"]) if c.submission_id == post_id and not c.removed
    ]


async def test_stray_report_posts_get_one_reply_each_pointing_to_the_notice(
    bot: Callable[..., Any], snudown: Snudown
) -> None:
    async with bot() as readers:
        readers.fake.add_moderator(BOT["username"], ["all"])
        readers.fake.add_moderator("mod_mia", ["all"])
        readers.fake.add_approved("trusted_tom")
        burst = [readers.post(text) for text in HOSTILE]  # the surge's own posts
        chat = readers.post("Which plan is best for long documents?")
        await readers.run()
        await readers.run()
        (notice,) = readers.early()
        later = readers.post("Claude down again? 529 everywhere")
        from_mod = readers.post("Claude is down, we know, 529", author="mod_mia")
        from_approved = readers.post("API down for me too, 500", author="trusted_tom")
        for _ in range(3):
            await readers.run()
        for post in [*burst, later]:
            (reply,) = replies_to(readers.fake, post)
            assert reply.distinguished == "moderator"
            assert notice.id in reply.body  # it points to the early notice's comment
            assert "canary" not in snudown.html(reply.body).lower()
        for post in (chat, from_mod, from_approved):
            assert replies_to(readers.fake, post) == []
        assert readers.fake.removals == {}  # the default only replies
        figures = readers.app.figures.watches["default"]
        assert figures.routed["reply"] == 6
    async with bot() as readers:  # a restart: nothing is answered twice
        for _ in range(3):
            await readers.run()
        for post in [*burst, later]:
            assert len(replies_to(readers.fake, post)) == 1


async def test_with_remove_the_post_is_removed_once_with_the_moderators_reason(
    bot: Callable[..., Any],
) -> None:
    async with bot(reports_action="remove", reports_removal_reason="Use the megathread") as readers:
        readers.fake.add_moderator(BOT["username"], ["all"])
        posts = [readers.post() for _ in range(5)]
        await readers.run()
        await readers.run()
        assert len(readers.early()) == 1
        for post in posts:
            assert len(replies_to(readers.fake, post)) == 1
            assert "was removed" in replies_to(readers.fake, post)[0].body
            assert readers.fake.submissions[post].removed_by_category == "moderator"
            assert readers.fake.removal_notes[post] == "Use the megathread"
        assert set(readers.fake.removals.values()) == {1}
        # A removal whose answer was lost before it was recorded (a crash in between):
        # the post is looked at, not removed again.
        await readers.app.store.set_removal(posts[0], "removing")
        await readers.run()
        assert readers.fake.removals[posts[0]] == 1
        (route,) = await readers.app.store.routes(readers.app.first.scope, [posts[0]])
        assert route.removal == "removed"


async def test_a_reply_whose_answer_was_lost_is_found_not_posted_again(
    bot: Callable[..., Any],
) -> None:
    async with bot(reconcile_grace=0.0) as readers:
        readers.fake.add_moderator(BOT["username"], ["all"])
        posts = [readers.post() for _ in range(5)]
        await readers.run()  # the early notice
        assert len(readers.early()) == 1
        # The first reply is stored, and its answer lost: the bot looks for it by its
        # marker in the post's thread before replying again.
        readers.fake.fail_next("POST", "/api/comment", 503, when="after", count=1)
        for _ in range(4):
            await readers.run()
            readers.clock.advance(5)  # a lost answer is looked for a little later
        for post in posts:
            assert len(replies_to(readers.fake, post)) == 1
        rows = await readers.app.store.deliveries(readers.app.first.scope, Kind.ROUTE, posts)
        assert {row.state for row in rows} == {"posted"}
        assert any(row.last_error is None and row.attempts == 0 for row in rows)


async def test_a_bot_that_moderates_nothing_leaves_stray_posts_alone(
    bot: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with bot() as readers:
        posts = [readers.post() for _ in range(5)]
        await readers.run()
        await readers.run()
        assert len(readers.early()) == 1
        assert all(replies_to(readers.fake, post) == [] for post in posts)
        assert "stray outage posts are left alone" in caplog.text


async def test_check_connect_says_whether_the_account_may_answer_or_remove_stray_posts(
    statuspage: FakeStatuspage, fake: FakeReddit, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(fake))
    statuspage.set_incidents([])
    replies = await run_cli("check", "--connect", env=env, cwd=tmp_path)
    assert replies.code == 0, replies.out
    assert "stray posts:  left alone: replying needs u/modbot to be a moderator" in replies.out
    removes = env | {"MODBOT_REPORTS_ACTION": "remove"}
    refused = await run_cli("check", "--connect", env=removes, cwd=tmp_path)
    assert refused.code == 1
    assert "MODBOT_REPORTS_ACTION=remove needs u/modbot to be a moderator" in refused.out
    fake.add_moderator(BOT["username"], ["posts"])
    allowed = await run_cli("check", "--connect", env=removes, cwd=tmp_path)
    assert allowed.code == 0, allowed.out
    assert "replies (distinguished) and removes them: u/modbot has the posts" in allowed.out


async def test_metrics_count_reports_early_notices_and_routed_posts(
    bot: Callable[..., Any],
) -> None:
    port = free_port()
    settings = {"metrics_port": port, "reports_action": "remove"}
    async with bot(**settings) as readers:
        readers.fake.add_moderator(BOT["username"], ["all"])
        posts = [readers.post() for _ in range(5)]
        readers.comment()  # a sixth reader, in the megathread: counted, not routed
        await readers.run()
        await readers.run()
        assert all(len(replies_to(readers.fake, post)) == 1 for post in posts)
        async with httpx.AsyncClient() as http:
            scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
    got = samples(scraped.text)
    watch = (("watch", "default"),)
    assert got[("modbot_reports_total", watch)] == 6
    assert got[("modbot_early_notices_total", watch)] == 1
    assert got[("modbot_routed_posts_total", (("action", "reply"), *watch))] == 5
    assert got[("modbot_routed_posts_total", (("action", "remove"), *watch))] == 5
