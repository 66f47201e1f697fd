"""Posting and editing for real: fake status page -> bot -> asyncpraw -> fake Reddit.

Every test checks the two promises: never a second comment for one incident in one
megathread, and once faults stop, the comment shows the latest state. Each runs on both
stores: the state is a SQLite file, or a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.machine import State
from modbot.core.markdown import marker_of
from modbot.core.records import DeliveryRow, Kind
from tests.conftest import StateLocation, expected_body, expire_waits_at, reddit_settings, until
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

STAGES = ["investigating", "identified", "monitoring", "resolved", "postmortem"]


def stage(step: int, incident_id: str = "inc1") -> dict[str, Any]:
    """The incident at stage ``step`` (0..4) of its life."""
    count = min(step, 3) + 1
    updates = [
        update(f"{incident_id}u{i}", STAGES[i], f"{STAGES[i]} text", 10 * i) for i in range(count)
    ]
    return incident(incident_id, STAGES[step], list(reversed(updates)))


class Harness:
    """One bot wired to both fakes; ``step`` is one ``run --once``."""

    def __init__(
        self, page: FakeStatuspage, fake: FakeReddit, settings: Settings, app: App
    ) -> None:
        self.page, self.fake, self.settings, self.app = page, fake, settings, app

    async def step(self, *incidents: dict[str, Any]) -> None:
        if incidents:
            self.page.set_incidents(list(incidents))
        await self.app.run_once()

    def bot_comments(self, thread_id: str | None = None) -> list[Comment]:
        thread = thread_id or self.fake.megathread.id  # type: ignore[attr-defined]
        return [c for c in self.fake.comments_by("modbot") if c.submission_id == thread]

    def only_comment(self, thread_id: str | None = None) -> Comment:
        found = self.bot_comments(thread_id)
        assert len(found) == 1, [c.body[:60] for c in found]
        return found[0]

    def expected(self, *incidents: dict[str, Any]) -> str:
        view = view_of(parse_incidents_object({"incidents": list(incidents)}).incidents[0])
        return expected_body(view, self.page.url, subreddit="ClaudeAI")

    async def row(self, incident_id: str = "inc1") -> DeliveryRow:
        rows = await self.app.store.deliveries(self.app.watch, Kind.INCIDENT, [incident_id])
        thread = self.fake.megathread.id  # type: ignore[attr-defined]
        (found,) = [r for r in rows if r.thread_id in (thread, None)]
        return found

    def expire_waits(self) -> None:
        """Pretend every backoff and rate-limit wait is over (time travel for the store)."""
        expire_waits_at(self.settings.database)
        session: Any = self.app.reddit
        session._cooldown_until = session._create_cooldown_until = 0.0


@pytest.fixture
def make_settings(
    make_settings: Callable[..., Settings], state_location: StateLocation
) -> Callable[..., Settings]:
    """conftest's ``make_settings``, with the state on each store in turn: every test of
    this module that builds settings runs on SQLite and on PostgreSQL."""

    def make(**overrides: Any) -> Settings:
        return make_settings(**({"database": state_location} | overrides))

    return make


@pytest.fixture
async def harness(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        yield Harness(statuspage, reddit, settings, app)


async def test_full_life_is_one_comment_edited_at_each_stage(harness: Harness) -> None:
    for step in range(5):
        await harness.step(stage(step))
    comment = harness.only_comment()
    assert len(comment.history) == 5  # posted once, edited four times
    assert comment.body == harness.expected(stage(4))
    assert marker_of(comment.body) == "inc-inc1"


@pytest.fixture
async def quiet_harness(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    """A harness whose megathread checks wait, as they do by default: counting calls
    must not depend on how long a step takes on a busy machine (the other tests check
    every 0.2 s)."""
    values = reddit_settings(reddit) | {"megathread_check_interval": 3600.0}
    settings = make_settings(statuspage_url=statuspage.url, **values)
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        yield Harness(statuspage, reddit, settings, app)


async def test_unchanged_polls_make_no_reddit_calls(quiet_harness: Harness) -> None:
    harness = quiet_harness
    await harness.step(stage(0))
    await harness.step(stage(1))
    before = harness.fake.count()
    for _ in range(5):
        await harness.step()
    assert harness.fake.count() == before


async def test_one_reddit_call_per_update_in_steady_state(quiet_harness: Harness) -> None:
    harness = quiet_harness
    await harness.step(stage(0))
    before = harness.fake.count()
    await harness.step(stage(1))
    await harness.step(stage(2))
    assert harness.fake.count() - before == 2


async def test_resolved_incidents_at_first_start_are_not_posted(harness: Harness) -> None:
    old = incident("old", "resolved", [update("o1", "resolved", "over", -900)])
    await harness.step(old, stage(0))
    assert [marker_of(c.body) for c in harness.bot_comments()] == ["inc-inc1"]


async def test_5xx_before_the_post_landed_posts_once_after_reconciling(harness: Harness) -> None:
    harness.fake.fail_next("POST", "/api/comment/", 503, when="before")
    await harness.step(stage(0))
    assert harness.bot_comments() == []
    assert (await harness.row()).state == State.POSTING
    harness.expire_waits()
    await harness.step()
    assert harness.only_comment().body == harness.expected(stage(0))


async def test_5xx_after_the_post_landed_adopts_it_instead_of_posting_again(
    harness: Harness,
) -> None:
    harness.fake.fail_next("POST", "/api/comment/", 503, when="after")
    await harness.step(stage(0))
    assert len(harness.bot_comments()) == 1  # asyncprawcore's hidden retry is off
    harness.expire_waits()
    await harness.step(stage(1))
    comment = harness.only_comment()
    assert comment.body == harness.expected(stage(1))
    assert (await harness.row()).comment_id == comment.id


async def test_timeout_after_the_post_landed_never_duplicates(harness: Harness) -> None:
    harness.fake.delay_next("POST", "/api/comment/", 5, when="after")
    await harness.step(stage(0))
    harness.expire_waits()
    await harness.step(stage(1))
    assert harness.only_comment().body == harness.expected(stage(1))


async def test_listing_lag_delays_the_repost_until_the_grace_has_passed(harness: Harness) -> None:
    harness.fake.fail_next("POST", "/api/comment/", 503, when="after")
    harness.fake.listing_lag = 3600
    await harness.step(stage(0))
    expire_waits_at(harness.settings.database, intent=False)
    await harness.step()  # reconcile sees nothing yet, but the grace has not passed
    assert len(harness.bot_comments()) == 1
    assert (await harness.row()).state == State.POSTING
    harness.fake.listing_lag = 0
    harness.expire_waits()
    await harness.step()
    assert (await harness.row()).state == State.POSTED
    assert len(harness.bot_comments()) == 1


async def test_429_waits_as_told_and_loses_nothing(harness: Harness) -> None:
    harness.fake.fail_next("POST", "/api/comment/", 429, headers={"Retry-After": "120"})
    await harness.step(stage(0))
    row = await harness.row()
    assert row.state == State.PENDING
    assert row.not_before > harness.app.clock() + 100
    await harness.step(stage(1))  # still waiting: nothing posted, update kept
    assert harness.bot_comments() == []
    harness.expire_waits()
    await harness.step()
    assert harness.only_comment().body == harness.expected(stage(1))


async def test_ratelimit_error_waits_the_minutes_reddit_names(harness: Harness) -> None:
    harness.fake.ratelimit_next("/api/comment/", minutes=3)
    await harness.step(stage(0))
    row = await harness.row()
    assert row.state == State.PENDING
    assert 170 < row.not_before - harness.app.clock() <= 181
    assert "RATELIMIT" in (row.last_error or "")
    harness.expire_waits()
    await harness.step()
    assert harness.only_comment().body == harness.expected(stage(0))


async def test_edits_are_retried_on_5xx(harness: Harness) -> None:
    await harness.step(stage(0))
    harness.fake.fail_next("POST", "/api/editusertext/", 502, when="before")
    await harness.step(stage(1))
    assert harness.only_comment().body == harness.expected(stage(1))


async def test_updates_during_a_reddit_outage_are_coalesced(harness: Harness) -> None:
    await harness.step(stage(0))
    harness.fake.down = True
    for step in (1, 2, 3):
        await harness.step(stage(step))
    harness.fake.down = False
    harness.expire_waits()
    await harness.step()
    comment = harness.only_comment()
    assert comment.body == harness.expected(stage(3))
    assert len(comment.history) == 2  # the outage's three updates became one edit


async def test_expired_token_is_renewed_once(harness: Harness) -> None:
    await harness.step(stage(0))
    harness.fake.expire_tokens()
    await harness.step(stage(1))
    assert harness.only_comment().body == harness.expected(stage(1))


async def test_403_is_one_clear_error_and_retried_slowly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.fake.fail_next("POST", "/api/comment/", 403)
    await harness.step(stage(0))
    row = await harness.row()
    assert row.state == State.PENDING
    assert row.not_before - harness.app.clock() > 300
    assert any("403" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    harness.expire_waits()
    await harness.step()
    assert len(harness.bot_comments()) == 1


async def test_http_400_is_a_refusal_not_a_crash(harness: Harness) -> None:
    harness.fake.fail_next(
        "POST", "/api/comment/", 400, body='{"message": "Bad Request", "error": 400}'
    )
    await harness.step(stage(0))
    assert (await harness.row()).state == State.PENDING
    assert "HTTP 400" in ((await harness.row()).last_error or "")


async def test_locked_megathread_holds_updates_until_a_new_one_is_pinned(harness: Harness) -> None:
    fake = harness.fake
    fake.lock(fake.megathread.id)  # type: ignore[attr-defined]
    await harness.step(stage(0))
    await harness.step(stage(1))
    assert fake.comments_by("modbot") == []
    fresh = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    harness.app.target.thread_suspect()
    await harness.step()
    assert harness.only_comment(fresh.id).body == harness.expected(stage(1))


async def test_thread_locked_while_posting_is_rechecked(harness: Harness) -> None:
    fake = harness.fake
    await harness.step(stage(0, "a"))
    fake.lock(fake.megathread.id)  # type: ignore[attr-defined]
    await harness.step(stage(1, "a"), stage(0, "b"))  # the bot still thinks the thread is fine
    assert len(fake.comments_by("modbot")) == 1
    fresh = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    harness.expire_waits()
    await harness.step()
    in_new = harness.bot_comments(fresh.id)
    assert sorted(marker_of(c.body) or "" for c in in_new) == ["inc-a", "inc-b"]


async def test_rotation_moves_open_incidents_and_points_the_old_comment(harness: Harness) -> None:
    fake = harness.fake
    old_thread = fake.megathread  # type: ignore[attr-defined]
    await harness.step(stage(0))
    new_thread = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    fake.megathread = new_thread  # type: ignore[attr-defined]
    harness.app.target.thread_suspect()
    await harness.step(stage(1))
    new_comment = harness.only_comment(new_thread.id)
    old_comment = harness.only_comment(old_thread.id)
    assert new_comment.body == harness.expected(stage(1))
    assert "now tracked in the current megathread" in old_comment.body
    assert new_comment.id in old_comment.body
    await harness.step(stage(2))
    assert harness.only_comment(new_thread.id).body == harness.expected(stage(2))
    assert len(harness.only_comment(old_thread.id).history) == 2  # posted, then the pointer


async def test_resolved_incident_stays_in_its_old_thread_after_rotation(harness: Harness) -> None:
    fake = harness.fake
    old_thread = fake.megathread  # type: ignore[attr-defined]
    await harness.step(stage(0))
    await harness.step(stage(3))
    fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    harness.app.target.thread_suspect()
    await harness.step(stage(4))
    assert len(fake.comments_by("modbot")) == 1
    assert harness.only_comment(old_thread.id).body == harness.expected(stage(4))


async def test_no_megathread_keeps_updates_and_warns(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeReddit(
        subreddit="ClaudeAI", username="modbot", password="pw", client_id="c", client_secret="s"
    ) as fake:
        values = reddit_settings(fake) | {
            "reddit_password": "pw",
            "reddit_client_id": "c",
            "reddit_client_secret": "s",
        }
        settings = make_settings(statuspage_url=statuspage.url, **values)
        async with App(settings, dry_run=False, out=io.StringIO()) as app:
            statuspage.set_incidents([stage(0)])
            await app.run_once()
            assert any("no usable pinned post" in r.getMessage() for r in caplog.records)
            thread = fake.add_submission("performance AND bugs megathread", sticky=2)
            app.target.thread_suspect()
            await app.run_once()
            assert [c.submission_id for c in fake.comments_by("modbot")] == [thread.id]


async def test_comment_removed_by_a_moderator_is_not_reposted(harness: Harness) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    fake.remove_comment(harness.only_comment().id)
    harness.app.deliverer._verified_at = -1e9  # the periodic check is due
    await harness.step(stage(1))
    assert (await harness.row()).state == State.REMOVED
    await harness.step(stage(2))
    assert len(fake.comments_by("modbot")) == 1


async def test_comment_deleted_on_reddit_is_not_reposted(harness: Harness) -> None:
    fake = harness.fake
    await harness.step(stage(0))
    fake.comments[harness.only_comment().id].deleted = True
    await harness.step(stage(1))  # the edit answers DELETED_COMMENT
    assert (await harness.row()).state == State.REMOVED
    await harness.step(stage(2))
    assert [c for c in fake.comments.values() if not c.deleted] == []


async def test_duplicates_are_healed_on_start_keeping_the_oldest(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    first = reddit.comments_by("modbot")[0]
    thread = reddit.megathread  # type: ignore[attr-defined]
    extra = reddit.add_comment(thread.id, first.body, author="modbot")  # e.g. a retried POST
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        statuspage.set_incidents([stage(1)])
        await app.run_once()
    assert reddit.comments[extra.id].deleted
    live = [c for c in reddit.comments_by("modbot") if not c.deleted]
    assert [c.id for c in live] == [first.id]
    assert live[0].body.startswith("### Elevated errors")
    assert "Identified" in live[0].body


async def test_duplicate_notices_are_healed_on_start_too(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        outcome = await app.operations.post_notice("Maintenance tonight.", source="cli")
    (first,) = reddit.comments_by("modbot")
    assert first.id in outcome.text
    extra = reddit.add_comment(first.submission_id, first.body, author="modbot")
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    assert reddit.comments[extra.id].deleted
    assert [c.id for c in reddit.comments_by("modbot") if not c.deleted] == [first.id]


async def test_a_burst_of_changes_costs_few_edits_and_ends_current(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url,
        poll_interval=0.02,
        min_edit_interval=0.5,
        **reddit_settings(reddit),
    )
    statuspage.set_incidents([stage(0)])
    stop = asyncio.Event()
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        task = asyncio.create_task(app.run(stop))
        await until(lambda: bool(reddit.comments_by("modbot")))
        for step in range(1, 5):
            statuspage.set_incidents([stage(step)])
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.2)
        stop.set()
        await task
    comment = reddit.comments_by("modbot")[0]
    assert len(reddit.comments_by("modbot")) == 1
    assert len(comment.history) <= 4  # 1 post + at most ~3 edits for 4 changes in 0.4 s
    view = view_of(parse_incidents_object({"incidents": [stage(4)]}).incidents[0])
    assert comment.body == expected_body(view, statuspage.url, subreddit="ClaudeAI")


async def test_distinguish_pins_the_newest_open_incident(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    reddit.add_moderator("modbot", ["posts"])
    settings = make_settings(
        statuspage_url=statuspage.url, distinguish=True, **reddit_settings(reddit)
    )
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        statuspage.set_incidents([stage(0, "a")])
        await app.run_once()
        statuspage.set_incidents([stage(0, "b"), stage(0, "a")])
        await app.run_once()
    by_marker = {marker_of(c.body): c for c in reddit.comments_by("modbot")}
    assert by_marker["inc-a"].distinguished == "moderator"
    assert by_marker["inc-b"].stickied
    assert not by_marker["inc-a"].stickied


@pytest.mark.parametrize("closing", ["archive", "delete_submission", "remove_submission"])
async def test_archived_or_deleted_megathread_counts_as_none(
    harness: Harness, closing: str
) -> None:
    fake = harness.fake
    getattr(fake, closing)(fake.megathread.id)  # type: ignore[attr-defined]
    await harness.step(stage(0))
    assert fake.comments_by("modbot") == []
    fresh = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=2)
    harness.app.target.thread_suspect()
    await harness.step()
    assert harness.only_comment(fresh.id).body == harness.expected(stage(0))


async def test_ratelimit_headers_slow_the_next_call_down(quiet_harness: Harness) -> None:
    harness = quiet_harness  # the 1 s wait must not also be a megathread check (every 0.2 s)
    await harness.step(stage(0))
    harness.fake.ratelimit_headers = (0, 600, 1)  # budget spent; resets in 1 s
    await harness.step(stage(1))  # this edit's answer says: no requests left
    harness.fake.ratelimit_headers = "auto"
    loop = asyncio.get_running_loop()
    before = harness.fake.count()
    started = loop.time()
    await harness.step(stage(2))
    assert loop.time() - started >= 0.9  # waited for the reset before the next edit
    assert harness.fake.count() - before == 1
    assert harness.only_comment().body == harness.expected(stage(2))


async def test_unknown_post_in_a_thread_locked_meanwhile_still_gets_delivered(
    harness: Harness,
) -> None:
    """Found by the model test: 5xx on the post, incident resolves, thread locked."""
    fake = harness.fake
    harness.fake.fail_next("POST", "/api/comment/", 503, when="before")
    await harness.step(stage(0))  # the post fails: outcome unknown
    assert (await harness.row()).state == State.POSTING
    await harness.step(stage(3))  # resolved before that is settled (still waiting)
    fake.lock(fake.megathread.id)  # type: ignore[attr-defined]
    fresh = fake.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
    harness.app.target.thread_suspect()
    harness.expire_waits()
    await harness.step()  # reconciled in the old thread: it never landed there
    await harness.step()
    assert harness.only_comment(fresh.id).body == harness.expected(stage(3))


class _Crash(BaseException):
    pass


async def test_adopted_comment_is_edited_at_once_when_our_clock_is_behind_reddits(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    """Found by the model test: adoption used Reddit's timestamp as our last delivery."""
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))

    def behind() -> float:
        return time.time() - 3600  # the bot's clock is an hour behind Reddit's

    def crash_after_answer(name: str) -> None:
        if name == "after-answer":
            raise _Crash(name)

    statuspage.set_incidents([stage(0)])
    with pytest.raises(_Crash):
        async with App(
            settings, dry_run=False, out=io.StringIO(), clock=behind, checkpoint=crash_after_answer
        ) as app:
            await app.run_once()
    statuspage.set_incidents([stage(1)])
    async with App(settings, dry_run=False, out=io.StringIO(), clock=behind) as app:
        await app.run_once()
    (comment,) = reddit.comments_by("modbot")
    assert "Identified" in comment.body


async def test_429_from_the_login_endpoint_is_a_rate_limit_not_a_refusal(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    """Found by the model test: asyncprawcore reports it as a bare 429 response."""
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    reddit.fail_next("POST", "/api/v1/access_token", 429, headers={"Retry-After": "30"})
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        assert "rate limited" in (await app.store.health(app.watch)).last_error
        app.reddit._cooldown_until = 0.0  # type: ignore[union-attr]
        await app.run_once()
    assert len(reddit.comments_by("modbot")) == 1


# --- a post whose answer was lost lands late ---------------------------------------------------

LATE = 1.5  # seconds from a post's request to Reddit storing it: well past timeout and grace
ON_POSTS = {"thing_id": "^t3_"}  # comments in a thread, not replies to messages


def late_settings(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> Settings:
    values = reddit_settings(reddit) | {"reddit_timeout": 0.3, "reconcile_grace": 0.5}
    return make_settings(statuspage_url=statuspage.url, **values)


@pytest.fixture
async def late_harness(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    """A bot that gives up on Reddit after 0.3 s and allows 0.5 s of listing lag; its
    moderator operations do not wait for a lost answer."""
    settings = late_settings(statuspage, reddit, make_settings)
    async with App(settings, dry_run=False, out=io.StringIO(), settle_timeout=0.0) as app:
        yield Harness(statuspage, reddit, settings, app)


async def rounds_until(app: App, condition: Callable[[], bool], timeout: float) -> None:
    """Let the bot poll and deliver, as its loop would, until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the bot did not get there in time"
        await app.run_once()
        await asyncio.sleep(0.05)


def live_with(fake: FakeReddit, marker: str) -> list[Comment]:
    return [c for c in fake.comments_by("modbot") if marker_of(c.body) == marker]


def landed_copy(fake: FakeReddit) -> Comment:
    """The one comment a late write created, live or already removed by the bot."""
    (copy_id,) = fake.late_landed
    return fake.comments[copy_id]


def oldest(comments: list[Comment]) -> Comment:
    return min(comments, key=lambda c: (c.created_utc, c.id))


@pytest.mark.parametrize("stamp", ["landing", "request"])
async def test_a_comment_landing_late_after_a_repost_is_removed_and_the_row_keeps_the_oldest(
    late_harness: Harness, stamp: str
) -> None:
    """Reported by an outside audit: the copy landed after the one clean-up a grace after
    the re-post, and stayed until the next start. Reddit may date the late copy when it
    lands (it is the newer one) or when it was sent (older than the re-post)."""
    harness, fake = late_harness, late_harness.fake
    fake.land_late_next("POST", "/api/comment", LATE, stamp=stamp, form=ON_POSTS)  # type: ignore[arg-type]
    await harness.step(stage(0))  # no answer within 0.3 s
    assert harness.bot_comments() == []
    harness.expire_waits()
    await harness.step()  # not there: posted again
    (again,) = harness.bot_comments()
    await rounds_until(harness.app, lambda: fake.late_pending == 0, timeout=5)
    # The lost post has landed now; the round it landed in may already have removed one.
    keep = oldest([again, landed_copy(fake)])

    await rounds_until(harness.app, lambda: len(live_with(fake, "inc-inc1")) == 1, timeout=5)
    assert [c.id for c in harness.bot_comments()] == [keep.id]
    assert (await harness.row()).comment_id == keep.id
    await harness.step(stage(1))
    assert harness.only_comment().body == harness.expected(stage(1))


async def test_a_notice_landing_late_after_a_repost_is_removed(late_harness: Harness) -> None:
    harness, fake = late_harness, late_harness.fake
    fake.land_late_next("POST", "/api/comment", LATE, form=ON_POSTS)
    await harness.step()
    outcome = await harness.app.operations.post_notice("Maintenance tonight.", source="cli")
    assert "did not confirm" in outcome.text
    harness.expire_waits()
    await harness.step()  # not there: posted again
    (notice,) = harness.bot_comments()
    marker = marker_of(notice.body)
    assert marker is not None
    assert marker.startswith("note-")
    await rounds_until(harness.app, lambda: fake.late_pending == 0, timeout=5)
    assert marker_of(landed_copy(fake).body) == marker

    await rounds_until(harness.app, lambda: len(live_with(fake, marker)) == 1, timeout=5)
    assert [c.id for c in harness.bot_comments()] == [notice.id]
    (row,) = await harness.app.store.deliveries(harness.app.watch, Kind.NOTE, [marker[5:]])
    assert row.comment_id == notice.id


async def test_the_look_for_a_late_copy_goes_on_after_a_restart(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    """The doubt is kept with the row: a new process (after a crash, or the next leader)
    keeps looking after its start-up clean-up found nothing yet."""
    settings = late_settings(statuspage, reddit, make_settings)
    reddit.land_late_next("POST", "/api/comment", 2.5, form=ON_POSTS)
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()  # no answer
        expire_waits_at(settings.database)
        await app.run_once()  # posted again
    (kept,) = reddit.comments_by("modbot")
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()  # the start-up clean-up
        assert reddit.late_pending == 1, "the copy landed before the new process looked"
        await rounds_until(app, lambda: reddit.late_pending == 0, timeout=5)
        # The copy has landed; the round it landed in may already have removed it.
        copy = landed_copy(reddit)
        await rounds_until(app, lambda: len(reddit.comments_by("modbot")) == 1, timeout=6)
    assert [c.id for c in reddit.comments_by("modbot")] == [kept.id]
    assert copy.id != kept.id
    assert copy.deleted


def _open(incident_id: str) -> dict[str, Any]:
    return incident(
        incident_id, "investigating", [update(f"{incident_id}u", "investigating", "Looking.", 1)]
    )


async def test_the_last_checked_line_moves_every_ten_minutes_never_alone_under_pressure(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    now = [1_800_000_000.0]  # 2027-01-15 08:00 UTC
    settings = make_settings(
        statuspage_url=statuspage.url, last_checked=True, **reddit_settings(reddit)
    )
    statuspage.set_incidents([_open("aaa")])

    def body(incident_id: str) -> str:
        (found,) = [c for c in reddit.comments_by("modbot") if f"inc-{incident_id}" in c.body]
        return found.body

    def edits() -> int:
        return len([c for c in reddit.calls if c.route == "edit"])

    async with App(settings, dry_run=False, out=io.StringIO(), clock=lambda: now[0]) as app:
        await app.run_once()
        assert "*Status page last checked 08:00 UTC.*" in body("aaa")
        now[0] += 300
        await app.run_once()
        assert edits() == 0  # five minutes on: the line stays
        now[0] += 300
        await app.run_once()
        assert "last checked 08:10 UTC" in body("aaa")
        assert edits() == 1

        # Under pressure (deliveries waiting: Reddit is down), the line alone makes no
        # edit; a real change shows the new time.
        reddit.down = True
        before = {r.incident_id: r.rendered_hash for r in await app.store.open_incidents(app.watch)}
        now[0] += 600
        statuspage.set_incidents([_open("aaa"), _open("bbb")])
        await app.run_once()
        after = {r.incident_id: r.rendered_hash for r in await app.store.open_incidents(app.watch)}
        assert after["aaa"] == before["aaa"]  # not re-rendered for the line alone
        reddit.down = False
        expire_waits_at(settings.database)
        await app.run_once()  # bbb goes out, with the new time
        assert "last checked 08:20 UTC" in body("bbb")
        assert "last checked 08:10 UTC" in body("aaa")
        await app.run_once()  # calm again: the line catches up
        assert "last checked 08:20 UTC" in body("aaa")

        statuspage.set_incidents([incident("aaa", "resolved", [update("r", "resolved", "Ok", 2)])])
        now[0] += 5
        await app.run_once()
        assert "last checked" not in body("aaa")  # a settled incident has no such line
