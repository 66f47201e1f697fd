"""Real asyncpraw against ``FakeReddit``: shapes, state and every fault knob.

These tests pin what asyncpraw 8.0.3 / asyncprawcore 4.0.0 actually do with each answer
the fake can give, so a version bump that changes behaviour fails here first.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpraw
import asyncprawcore
import pytest
import pytest_asyncio
from asyncpraw.exceptions import RedditAPIException
from asyncpraw.models import Comment, ListingGenerator, Message, Submission
from asyncprawcore.sessions import FiniteRetryStrategy

from tests.fakes.reddit import FakeReddit

pytestmark = [
    pytest.mark.asyncio,
    # asyncprawcore 4.0.0 logs in with aiohttp's deprecated BasicAuth; not ours to fix.
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeReddit]:
    async with FakeReddit(
        subreddit="ClaudeAI",
        username="modbot",
        password="hunter2",
        client_id="cid",
        client_secret="csecret",
    ) as server:
        yield server


@pytest_asyncio.fixture
async def reddit(fake: FakeReddit) -> AsyncIterator[asyncpraw.Reddit]:
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs()) as client:
        yield client


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncprawcore sleeps 0-2 s and 2-4 s between its 5xx retries; skip the wait."""
    monkeypatch.setattr(FiniteRetryStrategy, "_sleep_seconds", lambda self: None)


@dataclass(frozen=True)
class NoRetryStrategy(FiniteRetryStrategy):
    """One attempt only: how a bot turns off asyncprawcore's hidden POST retry."""

    DEFAULT_RETRIES: ClassVar[int] = 0
    retries: int = 0


def top_level(submission: Submission) -> list[Comment]:
    """Top-level comments in listing order (the fake never sends "more" stubs)."""
    return [c for c in submission.comments.list() if isinstance(c, Comment) and c.is_root]


def core(reddit: asyncpraw.Reddit) -> Any:
    """asyncprawcore's session (asyncpraw types ``_core`` as None)."""
    return reddit._core


# --------------------------------------------------------------------------- happy paths


async def test_login_and_me(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    me = await reddit.user.me()

    assert me is not None
    assert me.name == "modbot"
    login = [c for c in fake.calls if c.route == "access_token"]
    assert len(login) == 1
    assert login[0].form["password"] == "***"
    assert login[0].form["username"] == "modbot"
    assert fake.count("GET", r"^/api/v1/me$") == 1


async def test_wrong_password_raises_oauth_exception(fake: FakeReddit) -> None:
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(password="nope")) as client:
        with pytest.raises(asyncprawcore.OAuthException, match="invalid_grant"):
            await client.user.me()


async def test_wrong_client_secret_raises_response_exception(fake: FakeReddit) -> None:
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(client_secret="nope")) as client:
        with pytest.raises(asyncprawcore.ResponseException) as info:
            await client.user.me()
    assert info.value.response.status == 401


async def test_subreddit_about_and_unknown_subreddit(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.add_moderator("modbot", perms=["posts", "mail"])
    subreddit = await reddit.subreddit("claudeai", fetch=True)
    assert subreddit.display_name == "ClaudeAI"
    assert subreddit.user_is_moderator is True

    with pytest.raises(asyncprawcore.Redirect) as info:
        await reddit.subreddit("NoSuchPlace", fetch=True)
    assert info.value.path == "/subreddits/search"


async def test_hot_lists_stickies_first(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    old = fake.add_submission("old")
    second = fake.add_submission("pinned second", sticky=2)
    first = fake.add_submission("pinned first", sticky=1)
    new = fake.add_submission("new")
    gone = fake.add_submission("deleted")
    fake.delete_submission(gone.id)

    subreddit = await reddit.subreddit("ClaudeAI")
    ids = [s.id async for s in subreddit.hot(limit=10)]

    assert ids == [first.id, second.id, new.id, old.id]


async def test_hot_pages_with_after(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    posts = [fake.add_submission(f"post {i}") for i in range(5)]
    pages = ListingGenerator(reddit, "r/ClaudeAI/hot", limit=5, request_limit=2)

    ids = [s.id async for s in pages]

    assert ids == [p.id for p in reversed(posts)]
    assert fake.count("GET", "/hot") == 3


async def test_sticky_follows_the_redirect(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread", sticky=1, locked=True)
    subreddit = await reddit.subreddit("ClaudeAI")

    sticky = await subreddit.sticky(number=1)

    assert sticky.id == post.id
    assert sticky.title == "Megathread"
    assert sticky.locked is True
    assert sticky.stickied is True
    assert [c.status for c in fake.calls if c.route == "sticky"] == [302]
    with pytest.raises(asyncprawcore.NotFound):
        await subreddit.sticky(number=2)


async def test_set_sticky_replaces_the_slot(fake: FakeReddit) -> None:
    first = fake.add_submission("first", sticky=1)
    second = fake.add_submission("second")
    fake.set_sticky(second.id, 1)
    assert (first.sticky, second.sticky) == (None, 1)
    fake.unsticky(second.id)
    assert second.sticky is None


async def test_reply_creates_comment(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id)

    comment = await submission.reply("status: investigating")

    assert isinstance(comment, Comment)
    stored = fake.comments_in(post.id)
    assert [(c.id, c.author, c.body, c.parent_id) for c in stored] == [
        (comment.id, "modbot", "status: investigating", post.fullname)
    ]
    assert stored[0].history == ["status: investigating"]
    assert comment.body == "status: investigating"
    assert comment.link_id == post.fullname
    assert comment.is_root


async def test_thread_tree_sort_and_replies(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    first = fake.add_comment(post.id, "first", author="alice")
    fake.add_comment(post.id, "reply", author="bob", parent_id=first.fullname)
    second = fake.add_comment(post.id, "second", author="carol")
    assert first.created_utc < second.created_utc

    submission = await reddit.submission(post.id, fetch=False)
    submission.comment_sort = "new"
    await submission.load()

    top = top_level(submission)
    assert [c.body for c in top] == ["second", "first"]
    assert [c.body for c in top[1].replies.list() if isinstance(c, Comment)] == ["reply"]
    assert len(submission.comments.list()) == 3


async def test_edit_updates_body_and_history(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    edited: list[str] = []
    fake.on_comment_edited = lambda c: edited.append(c.body)
    comment = await (await reddit.submission(post.id)).reply("v1")
    assert isinstance(comment, Comment)

    await comment.edit("v2")

    stored = fake.comments[comment.id]
    assert (stored.body, stored.history, edited) == ("v2", ["v1", "v2"], ["v2"])
    assert isinstance(stored.edited, float)
    assert comment.body == "v2"
    assert comment.edited == stored.edited


async def test_edit_someone_elses_comment_is_forbidden(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    theirs = fake.add_comment(post.id, "mine", author="alice")
    comment = await reddit.comment(theirs.id, fetch=False)
    with pytest.raises(asyncprawcore.Forbidden):
        await comment.edit("hijacked")


async def test_delete_comment(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    comment = await (await reddit.submission(post.id)).reply("oops")
    assert isinstance(comment, Comment)

    await comment.delete()

    assert fake.comments[comment.id].deleted
    assert fake.comments_in(post.id) == []
    assert fake.comments_by("modbot") == []
    [info] = [c async for c in reddit.info(fullnames=[comment.fullname])]
    assert (info.body, info.author) == ("[deleted]", None)
    with pytest.raises(RedditAPIException) as error:
        await comment.edit("back")
    assert error.value.items[0].error_type == "DELETED_COMMENT"


async def test_info_returns_comments_and_submissions(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    comment = fake.add_comment(post.id, "hello", author="alice")

    things = [t async for t in reddit.info(fullnames=[comment.fullname, post.fullname, "t1_zzz"])]

    assert [t.fullname for t in things] == [comment.fullname, post.fullname]
    assert things[0].body == "hello"
    assert things[1].title == "Megathread"
    assert fake.count("GET", "/api/info") == 1


async def test_redditor_comments_new(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id)
    await submission.reply("one")
    await submission.reply("two")
    fake.add_comment(post.id, "not mine", author="alice")

    redditor = await reddit.redditor("modbot")
    comments = [c async for c in redditor.comments.new(limit=10)]

    assert [c.body for c in comments] == ["two", "one"]
    assert comments[0].link_title == "Megathread"
    assert comments[0].submission.id == post.id


async def test_subreddit_moderators(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fake.add_moderator("modbot", perms=["posts", "mail"])
    fake.add_moderator("alice")
    subreddit = await reddit.subreddit("ClaudeAI")

    moderators = await subreddit.moderator()

    assert {m.name: m.mod_permissions for m in moderators} == {
        "modbot": ["posts", "mail"],
        "alice": ["all"],
    }
    fake.remove_moderator("alice")
    assert [m.name for m in await subreddit.moderator()] == ["modbot"]


async def test_inbox_unread_and_mark_read(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    message_id = fake.send_message("alice", "!status", subject="command")
    mention_id = fake.mention("bob", post.id, "u/modbot help")
    read: list[str] = []
    fake.on_message_read = lambda item: read.append(item.fullname)

    items = [i async for i in reddit.inbox.unread(limit=None)]

    assert [type(i) for i in items] == [Comment, Message]  # newest first
    mention, message = items
    assert (message.id, message.author, message.body) == (message_id, "alice", "!status")
    assert mention.id == mention_id
    assert mention.was_comment is True
    assert mention.subject == "username mention"
    assert mention.submission.id == post.id  # parsed from ``context``
    assert fake.comments_in(post.id)[0].id == mention_id  # the mention is a real comment

    await reddit.inbox.mark_read(items)

    assert not fake.messages[message_id].new
    assert not fake.mentions[mention_id].new
    assert sorted(read) == sorted([f"t4_{message_id}", f"t1_{mention_id}"])
    assert [i async for i in reddit.inbox.unread()] == []
    assert len([i async for i in reddit.inbox.all()]) == 2


async def test_message_reply_is_recorded(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    message_id = fake.send_message("alice", "!status")
    [message] = [i async for i in reddit.inbox.unread()]

    reply = await message.reply("all good")

    assert isinstance(reply, Message)
    assert fake.replies_to(message_id) == ["all good"]
    assert [i async for i in reddit.inbox.unread()] == [message]  # replies are not inbox items


async def test_distinguish_and_sticky_a_comment(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    earlier = fake.add_comment(post.id, "earlier", author="alice")
    comment = await (await reddit.submission(post.id)).reply("pinned status")
    assert isinstance(comment, Comment)

    with pytest.raises(asyncprawcore.Forbidden):
        await comment.mod.distinguish(how="yes", sticky=True)

    fake.add_moderator("modbot")
    await comment.mod.distinguish(how="yes", sticky=True)

    stored = fake.comments[comment.id]
    assert (stored.distinguished, stored.stickied) == ("moderator", True)
    submission = await reddit.submission(post.id)
    assert [c.id for c in top_level(submission)] == [comment.id, earlier.id]  # pinned first
    assert top_level(submission)[0].stickied is True


async def test_removed_comment_as_seen_by_non_mod_and_mod(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    comment = await (await reddit.submission(post.id)).reply("status")
    assert isinstance(comment, Comment)
    fake.remove_comment(comment.id)

    [seen] = [c async for c in reddit.info(fullnames=[comment.fullname])]
    assert (seen.body, seen.author) == ("[removed]", None)
    assert not hasattr(seen, "removed")

    fake.add_moderator("modbot")
    [seen] = [c async for c in reddit.info(fullnames=[comment.fullname])]
    assert (seen.body, seen.removed, seen.banned_by) == ("status", True, "a_moderator")

    await comment.edit("still editable")  # Reddit lets the author edit a removed comment
    assert fake.comments[comment.id].removed
    assert fake.comments_in(post.id) == []


# --------------------------------------------------------------------------- API errors


@pytest.mark.parametrize(
    ("setup", "error_type"),
    [
        (lambda fake, post_id: fake.lock(post_id), "THREAD_LOCKED"),
        (lambda fake, post_id: fake.archive(post_id), "TOO_OLD"),
        (lambda fake, post_id: fake.delete_submission(post_id), "DELETED_LINK"),
        (lambda fake, post_id: fake.remove_submission(post_id), "DELETED_LINK"),
    ],
)
async def test_reply_api_errors(
    fake: FakeReddit,
    reddit: asyncpraw.Reddit,
    setup: Callable[[FakeReddit, str], None],
    error_type: str,
) -> None:
    post = fake.add_submission("Megathread")
    setup(fake, post.id)
    submission = await reddit.submission(post.id, fetch=False)

    with pytest.raises(RedditAPIException) as info:
        await submission.reply("hello")

    assert info.value.items[0].error_type == error_type
    assert fake.comments_in(post.id) == []


async def test_locked_thread_accepts_moderator(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread", locked=True)
    fake.add_moderator("modbot")
    submission = await reddit.submission(post.id, fetch=False)
    assert await submission.reply("mods may") is not None


async def test_reply_to_deleted_comment_and_too_long(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    parent = fake.add_comment(post.id, "question", author="alice")
    parent.deleted = True
    comment = await reddit.comment(parent.id, fetch=False)

    with pytest.raises(RedditAPIException) as info:
        await comment.reply("answer")
    assert info.value.items[0].error_type == "DELETED_COMMENT"

    submission = await reddit.submission(post.id, fetch=False)
    with pytest.raises(RedditAPIException) as info:
        await submission.reply("x" * 10_001)
    assert info.value.items[0].error_type == "TOO_LONG"
    assert (await submission.reply("x" * 10_000)) is not None


async def test_edit_in_locked_thread(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    comment = await (await reddit.submission(post.id)).reply("v1")
    assert isinstance(comment, Comment)
    fake.lock(post.id)

    with pytest.raises(RedditAPIException) as info:
        await comment.edit("v2")

    assert info.value.items[0].error_type == "THREAD_LOCKED"
    assert fake.comments[comment.id].history == ["v1"]


async def test_ratelimit_error(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.ratelimit_next(minutes=5)

    with pytest.raises(RedditAPIException) as info:
        await submission.reply("hello")

    item = info.value.items[0]
    assert item.error_type == "RATELIMIT"
    assert item.message is not None
    assert "Take a break for 5 minutes" in item.message
    assert fake.comments_in(post.id) == []
    assert await submission.reply("hello") is not None  # consumed


async def test_short_ratelimit_is_retried_within_ratelimit_seconds(fake: FakeReddit) -> None:
    post = fake.add_submission("Megathread")
    fake.ratelimit_next(seconds=0)  # asyncpraw sleeps seconds + 1 when within its budget
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(ratelimit_seconds=1)) as client:
        submission = await client.submission(post.id, fetch=False)
        assert await submission.reply("hello") is not None
    assert fake.count("POST", "/api/comment") == 2


# --------------------------------------------------------------------------- HTTP faults


async def test_503_after_write_is_retried_into_a_hidden_duplicate(
    fake: FakeReddit, reddit: asyncpraw.Reddit, no_retry_sleep: None
) -> None:
    """Why the bot must turn off asyncprawcore's retry: the caller sees one success,
    Reddit holds two comments."""
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", r"^/api/comment/?$", 503, when="after")

    comment = await submission.reply("status")

    assert comment is not None
    assert [c.body for c in fake.comments_in(post.id)] == ["status", "status"]
    assert [c.status for c in fake.calls if c.route == "comment"] == [503, 200]


async def test_503_after_write_three_times_raises_server_error(
    fake: FakeReddit, reddit: asyncpraw.Reddit, no_retry_sleep: None
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", "/api/comment", 503, when="after", count=3)

    with pytest.raises(asyncprawcore.ServerError):
        await submission.reply("status")

    assert len(fake.comments_in(post.id)) == 3


async def test_503_after_write_with_retries_off_stores_exactly_one(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    core(reddit)._retry_strategy_class = NoRetryStrategy
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", "/api/comment", 502, when="after")

    with pytest.raises(asyncprawcore.ServerError):
        await submission.reply("status")

    assert len(fake.comments_in(post.id)) == 1  # stored: the caller must look before retrying


async def test_503_before_write_stores_nothing(
    fake: FakeReddit, reddit: asyncpraw.Reddit, no_retry_sleep: None
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", "/api/comment", 500, count=3)

    with pytest.raises(asyncprawcore.ServerError):
        await submission.reply("status")

    assert fake.comments_in(post.id) == []


async def test_outage(fake: FakeReddit, reddit: asyncpraw.Reddit, no_retry_sleep: None) -> None:
    await reddit.user.me()
    fake.down = True
    with pytest.raises(asyncprawcore.ServerError):
        await reddit.user.me(use_cache=False)
    fake.down = False
    assert await reddit.user.me(use_cache=False) is not None


async def test_429_raises_too_many_requests(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", "/api/comment", 429, headers={"Retry-After": "7"})
    fake.fail_next("POST", "/api/comment", 429)

    with pytest.raises(asyncprawcore.TooManyRequests) as info:
        await submission.reply("status")
    assert info.value.retry_after == "7"

    with pytest.raises(asyncprawcore.TooManyRequests) as info:
        await submission.reply("status")
    assert info.value.retry_after is None
    assert fake.comments_in(post.id) == []


async def test_expired_token_is_renewed_transparently(
    fake: FakeReddit, reddit: asyncpraw.Reddit, no_retry_sleep: None
) -> None:
    """The re-login goes through the 5xx retry machinery: it sleeps 0-2 s and uses up
    one of the three attempts."""
    await reddit.user.me()
    fake.expire_tokens()

    me = await reddit.user.me(use_cache=False)

    assert me is not None
    assert [c.status for c in fake.calls if c.route == "me"] == [200, 401, 200]
    assert fake.count("POST", "access_token") == 2

    fake.fail_next("GET", "/api/v1/me", 401)  # carries www-authenticate: invalid_token
    assert await reddit.user.me(use_cache=False) is not None
    assert fake.count("POST", "access_token") == 3


async def test_expired_token_with_retries_off_raises_invalid_token_once(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    """Without the retry loop the 401 surfaces; the token is dropped, so the next call
    logs in again."""
    core(reddit)._retry_strategy_class = NoRetryStrategy
    await reddit.user.me()
    fake.expire_tokens()

    with pytest.raises(asyncprawcore.InvalidToken):
        await reddit.user.me(use_cache=False)

    assert await reddit.user.me(use_cache=False) is not None
    assert fake.count("POST", "access_token") == 2


async def test_403_raises_forbidden(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fake.fail_next("GET", "/api/v1/me", 403)
    with pytest.raises(asyncprawcore.Forbidden):
        await reddit.user.me()


async def test_404_raises_not_found(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    with pytest.raises(asyncprawcore.NotFound):
        await reddit.submission("nope00")
    fake.fail_next("GET", "/api/v1/me", 404)
    with pytest.raises(asyncprawcore.NotFound):
        await reddit.user.me()


async def test_400_raises_bare_aiohttp_connection_error(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    """asyncpraw 8.0.3 reads the body of a BadRequest after asyncprawcore released it."""
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.fail_next("POST", "/api/comment", 400, body={"reason": "BAD", "explanation": "no"})

    with pytest.raises(aiohttp.ClientConnectionError) as info:
        await submission.reply("status")

    assert not isinstance(info.value, asyncprawcore.AsyncPrawcoreException)
    assert isinstance(info.value.__context__, asyncprawcore.BadRequest)


async def test_unknown_endpoint_is_recorded(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    with pytest.raises(asyncprawcore.NotFound):
        await reddit.get("/api/v1/me/karma")
    assert [c.path for c in fake.unexpected_calls] == ["/api/v1/me/karma"]


async def test_default_ratelimit_headers_never_delay(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    limiter = core(reddit).rate_limiter
    for _ in range(3):
        await reddit.user.me(use_cache=False)
        assert limiter.next_request_timestamp_ns <= time.monotonic_ns()
    assert (limiter.used, limiter.remaining) == (3, 997)  # the login is not counted

    fake.ratelimit_headers = (0, 1000, 42)
    await reddit.user.me(use_cache=False)
    wait_s = (limiter.next_request_timestamp_ns - time.monotonic_ns()) / 1e9
    assert 41 < wait_s <= 42
    limiter.next_request_timestamp_ns = None  # don't actually wait in the test


# --------------------------------------------------------------------------- timing knobs


async def test_delay_after_write_outlasts_client_timeout(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.delay_next("POST", "/api/comment", 5, when="after")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await submission.reply("status")

    assert [c.body for c in fake.comments_in(post.id)] == ["status"]


async def test_delay_before_write_then_hang_up_stores_nothing(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.delay_next("POST", "/api/comment", 0.3)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await submission.reply("status")
    await asyncio.sleep(0.4)  # let the delayed handler wake up and notice the hang-up

    assert fake.comments_in(post.id) == []
    assert await submission.reply("second try") is not None


async def test_a_late_write_lands_after_the_client_gave_up(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.land_late_next("POST", "/api/comment", 0.5, form={"thing_id": "^t3_"})

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await submission.reply("late")
    assert time.monotonic() - started < 0.4  # the fake did not keep the client waiting
    assert fake.comments_in(post.id) == []
    assert fake.late_pending == 1
    await asyncio.sleep(0.5)

    (comment,) = fake.comments_in(post.id)
    assert comment.body == "late"
    assert fake.late_landed == [comment.id]
    assert fake.late_pending == 0
    assert await submission.reply("next") is not None  # the fault was used up


async def test_a_late_write_can_be_stamped_when_it_was_sent(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id, fetch=False)
    fake.land_late_next("POST", "/api/comment", 0.4, stamp="request")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await submission.reply("sent first")
    second = await submission.reply("sent second")
    assert isinstance(second, Comment)
    await asyncio.sleep(0.5)

    first = next(c for c in fake.comments_in(post.id) if c.body == "sent first")
    assert first.created_utc < fake.comments[second.id].created_utc  # the older copy


async def test_a_late_edit_lands_after_a_newer_one(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    comment = fake.add_comment(post.id, "v1", author="modbot")
    handle = await reddit.comment(comment.id, fetch=False)
    fake.land_late_next("POST", "/api/editusertext", 0.3)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await handle.edit("v2")
    await handle.edit("v3")
    assert comment.body == "v3"
    await asyncio.sleep(0.4)

    assert comment.history == ["v1", "v3", "v2"]


async def test_a_late_fault_leaves_replies_to_messages_alone(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    message_id = fake.send_message("alice", "!status")
    fake.land_late_next("POST", "/api/comment", 0.2, form={"thing_id": "^t3_"})
    [message] = [i async for i in reddit.inbox.unread()]
    await message.reply("status: fine")
    assert fake.replies_to(message_id) == ["status: fine"]
    assert fake.late_pending == 0


async def test_listing_lag_hides_fresh_comments(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.add_submission("Megathread")
    submission = await reddit.submission(post.id)
    comment = await submission.reply("status")
    assert isinstance(comment, Comment)
    fake.listing_lag = 60

    redditor = await reddit.redditor("modbot")
    assert [c async for c in redditor.comments.new()] == []
    assert top_level(await reddit.submission(post.id)) == []
    assert [c.id async for c in reddit.info(fullnames=[comment.fullname])] == [comment.id]

    fake.listing_lag = 0
    assert [c.id async for c in redditor.comments.new()] == [comment.id]


async def test_on_comment_created_runs_before_the_answer(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    seen: list[tuple[str, int]] = []
    fake.on_comment_created = lambda c: seen.append((c.body, fake.calls[-1].status))

    await (await reddit.submission(post.id, fetch=False)).reply("status")

    assert seen == [("status", 0)]  # status 0: the HTTP answer was not written yet
    assert fake.calls[-1].status == 200


BOT_SCRIPT = """
import asyncio, json, sys
import asyncpraw

async def main():
    async with asyncpraw.Reddit(**json.loads(sys.argv[1])) as reddit:
        submission = await reddit.submission(sys.argv[2], fetch=False)
        await submission.reply("from another process")
        print("replied", flush=True)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_subprocess_killed_right_after_the_comment_is_stored(fake: FakeReddit) -> None:
    post = fake.add_submission("Megathread")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BOT_SCRIPT,
        json.dumps(fake.asyncpraw_kwargs()),
        post.id,
        stdout=asyncio.subprocess.PIPE,
    )
    fake.on_comment_created = lambda _: os.kill(proc.pid, signal.SIGKILL)

    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=20)

    assert proc.returncode == -signal.SIGKILL
    assert stdout == b""  # the bot never saw the answer
    assert [c.body for c in fake.comments_in(post.id)] == ["from another process"]


# --------------------------------------------------------------------------- OAuth grants

REDIRECT_URI = "http://localhost:8080/callback"


def code_from(callback_url: str) -> str:
    """The ``code`` of the URL Reddit redirects the browser to."""
    [code] = parse_qs(urlsplit(callback_url).query)["code"]
    return code


async def test_refresh_token_login_acts_as_its_user(fake: FakeReddit) -> None:
    fake.add_refresh_token("rt-alice", "alice", ["identity", "privatemessages"])
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(refresh_token="rt-alice")) as client:
        me = await client.user.me()
        assert me is not None
        assert me.name == "alice"
        assert await client.auth.scopes() == {"identity", "privatemessages"}
        redditor = await client.redditor("modbot", fetch=False)
        await redditor.message(subject="hi", message="from alice")

    [login] = [c for c in fake.calls if c.route == "access_token"]
    assert login.form == {"grant_type": "refresh_token", "refresh_token": "***"}
    assert "rt-alice" in fake.issued_refresh_tokens
    [message] = fake.sent_messages
    assert (message.author, message.to, message.new) == ("alice", "modbot", True)
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs()) as bot:
        [received] = [m async for m in bot.inbox.unread()]
    assert (received.author, received.body) == ("alice", "from alice")


async def test_unknown_refresh_token_raises_oauth_exception(fake: FakeReddit) -> None:
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(refresh_token="made-up")) as client:
        with pytest.raises(asyncprawcore.OAuthException) as info:
            await client.user.me()
    assert info.value.error == "invalid_grant"
    assert info.value.response.status == 200  # Reddit's token errors are 200s
    assert fake.count("GET", "/api/v1/me") == 0


async def test_revoked_refresh_token_fails_at_the_next_call(
    fake: FakeReddit, no_retry_sleep: None
) -> None:
    """The user removes the app in their preferences: the access token dies with the
    refresh token and asyncprawcore answers the 401 by refreshing, which is refused.
    That refusal happens inside the retried request, so it surfaces wrapped in a
    ``RequestException`` (what a bot may take for a network error); the next call
    refreshes up front and gets the bare ``OAuthException``."""
    fake.add_refresh_token("rt", "modbot", ["identity"])
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(refresh_token="rt")) as client:
        assert await client.user.me() is not None
        fake.revoke_refresh_token("rt")

        with pytest.raises(asyncprawcore.RequestException) as info:
            await client.user.me(use_cache=False)
        cause = info.value.original_exception
        assert isinstance(cause, asyncprawcore.OAuthException)
        assert cause.error == "invalid_grant"

        with pytest.raises(asyncprawcore.OAuthException) as again:
            await client.user.me(use_cache=False)
        assert again.value.error == "invalid_grant"
    assert [c.status for c in fake.calls if c.route == "me"] == [200, 401]
    assert fake.count("POST", "access_token") == 3


async def test_scopes_are_enforced(fake: FakeReddit) -> None:
    """A call outside the granted scopes is 403 + ``insufficient_scope``."""
    post = fake.add_submission("Megathread")
    fake.add_refresh_token("rt", "modbot", ["identity", "read"])
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(refresh_token="rt")) as client:
        submission = await client.submission(post.id)  # "read" is granted
        with pytest.raises(asyncprawcore.InsufficientScope) as info:
            await submission.reply("needs submit")
        assert info.value.response.status == 403
        with pytest.raises(asyncprawcore.InsufficientScope):
            [m async for m in client.inbox.unread()]  # needs privatemessages
    assert fake.comments_in(post.id) == []
    with pytest.raises(ValueError, match="invalid scope"):
        fake.add_refresh_token("typo", "modbot", ["privatemessage"])


async def test_authorization_code_flow_yields_a_refresh_token(fake: FakeReddit) -> None:
    scopes = ["identity", "read", "submit", "edit", "privatemessages", "wikiread"]
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(redirect_uri=REDIRECT_URI)) as client:
        url = client.auth.url(scopes=scopes, state="s-42", duration="permanent")
        callback = fake.approve_authorization(url, "modbot")  # the user clicks "Allow"
        assert callback.startswith(f"{REDIRECT_URI}?")
        assert callback.endswith("#_")  # Reddit's fragment, ignored by query parsers
        assert parse_qs(urlsplit(callback).query)["state"] == ["s-42"]

        refresh_token = await client.auth.authorize(code_from(callback))

        assert refresh_token is not None
        me = await client.user.me()
        assert me is not None
        assert me.name == "modbot"
        assert await client.auth.scopes() == set(scopes)
    [login] = [c for c in fake.calls if c.route == "access_token"]
    assert login.form == {
        "grant_type": "authorization_code",
        "code": "***",
        "redirect_uri": REDIRECT_URI,
    }
    assert fake.issued_refresh_tokens == [refresh_token]

    # The bot's next start-up logs in with the refresh token alone.
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(refresh_token=refresh_token)) as bot:
        me = await bot.user.me()
        assert me is not None
        assert me.name == "modbot"


async def test_authorization_code_is_single_use_and_bound_to_its_redirect_uri(
    fake: FakeReddit,
) -> None:
    code = fake.authorize("alice", ["identity"], REDIRECT_URI)
    other = fake.authorize("alice", ["identity"], "http://localhost:9999/")

    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(redirect_uri=REDIRECT_URI)) as client:
        assert await client.auth.authorize(code) is not None  # permanent by default
        with pytest.raises(asyncprawcore.OAuthException) as info:
            await client.auth.authorize(code)
        assert info.value.error == "invalid_grant"
        with pytest.raises(asyncprawcore.OAuthException) as info:
            await client.auth.authorize(other)
        assert info.value.error == "invalid_grant"
        with pytest.raises(asyncprawcore.OAuthException):
            await client.auth.authorize("never-issued")


async def test_temporary_authorization_has_no_refresh_token(fake: FakeReddit) -> None:
    code = fake.authorize("alice", ["identity"], REDIRECT_URI, duration="temporary")
    async with asyncpraw.Reddit(**fake.asyncpraw_kwargs(redirect_uri=REDIRECT_URI)) as client:
        assert await client.auth.authorize(code) is None
        me = await client.user.me()
        assert me is not None
        assert me.name == "alice"
    assert fake.issued_refresh_tokens == []


async def test_registered_redirect_uri_and_client_id_are_checked(fake: FakeReddit) -> None:
    fake.redirect_uri = REDIRECT_URI
    with pytest.raises(ValueError, match="redirect_uri"):
        fake.authorize("alice", ["identity"], "http://localhost:1/")
    async with asyncpraw.Reddit(
        **fake.asyncpraw_kwargs(redirect_uri=REDIRECT_URI, client_id="other-app")
    ) as client:
        url = client.auth.url(scopes=["identity"], state="s")
    with pytest.raises(ValueError, match="client id"):
        fake.approve_authorization(url, "alice")


# --------------------------------------------------------------------------- account and app knobs


async def test_suspended_app_answers_403_to_every_api_call(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    """The login still works; every API call is a plain 403 -> ``Forbidden``."""
    post = fake.add_submission("Megathread")
    fake.app_suspended = True

    with pytest.raises(asyncprawcore.Forbidden) as info:
        await reddit.user.me()
    assert info.value.response.status == 403
    with pytest.raises(asyncprawcore.Forbidden):
        await (await reddit.submission(post.id, fetch=False)).reply("status")
    assert [c.status for c in fake.calls if c.route == "access_token"] == [200]

    fake.app_suspended = False
    assert await reddit.user.me() is not None


async def test_suspended_bot_account_answers_403(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.suspend_account("modbot")
    with pytest.raises(asyncprawcore.Forbidden):
        await reddit.user.me()
    fake.suspend_account("modbot", suspended=False)
    assert await reddit.user.me() is not None


async def test_redditor_about(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fake.add_account("Alice")

    alice = await reddit.redditor("alice", fetch=True)  # names match in any case

    assert (alice.name, alice.id) == ("Alice", fake.accounts["Alice"].id)
    assert alice.created_utc == fake.accounts["Alice"].created_utc
    assert alice.comment_karma == 0
    assert not hasattr(alice, "is_suspended")  # Reddit sends it for suspended accounts only
    assert fake.count("GET", r"^/user/alice/about/?$") == 1
    with pytest.raises(asyncprawcore.NotFound):
        await reddit.redditor("nobody", fetch=True)


async def test_suspended_and_shadowbanned_redditors(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.suspend_account("alice")
    fake.shadowban_account("bob")

    alice = await reddit.redditor("alice", fetch=True)
    assert alice.is_suspended is True
    assert not hasattr(alice, "created_utc")  # a permanent suspension hides the rest

    with pytest.raises(asyncprawcore.NotFound):
        await reddit.redditor("bob", fetch=True)
    bob = await reddit.redditor("bob")
    with pytest.raises(asyncprawcore.NotFound):
        [c async for c in bob.comments.new()]

    fake.shadowban_account("modbot")  # a shadow-banned account still sees itself
    me = await reddit.redditor("modbot", fetch=True)
    assert me.name == "modbot"


async def test_banned_subreddit_raises_not_found(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    """404 with ``reason: banned``; asyncprawcore has released the body, so only the
    status tells a ban (404) from a private subreddit (403) or a missing one (302)."""
    post = fake.add_submission("Megathread", sticky=1)
    fake.ban_subreddit()

    with pytest.raises(asyncprawcore.NotFound) as info:
        await reddit.subreddit("ClaudeAI", fetch=True)
    assert info.value.response.status == 404
    with pytest.raises(aiohttp.ClientConnectionError):
        await info.value.response.json()
    subreddit = await reddit.subreddit("ClaudeAI")
    with pytest.raises(asyncprawcore.NotFound):
        await subreddit.sticky(number=1)
    with pytest.raises(asyncprawcore.NotFound):
        await reddit.submission(post.id)
    with pytest.raises(asyncprawcore.NotFound):
        await (await reddit.submission(post.id, fetch=False)).reply("status")
    about = [c for c in fake.calls if c.route == "subreddit_about"]
    assert [c.status for c in about] == [404]

    fake.ban_subreddit(banned=False)
    assert (await subreddit.sticky(number=1)).id == post.id


async def test_private_subreddit_raises_forbidden_unless_moderator(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.add_submission("Megathread")
    fake.add_subreddit("Other")
    fake.make_private()

    with pytest.raises(asyncprawcore.Forbidden) as info:
        await reddit.subreddit("ClaudeAI", fetch=True)
    assert not isinstance(info.value, asyncprawcore.InsufficientScope)
    with pytest.raises(asyncprawcore.Forbidden):
        await reddit.submission(post.id)
    assert (await reddit.subreddit("Other", fetch=True)).subreddit_type == "public"

    fake.add_moderator("modbot")
    subreddit = await reddit.subreddit("ClaudeAI", fetch=True)
    assert subreddit.subreddit_type == "private"
    assert (await reddit.submission(post.id)).id == post.id


# --------------------------------------------------------------------------- wiki


async def test_wiki_page_latest_and_old_revision(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    first = fake.set_wiki_page("modbot/incident", "v1", "alice", reason="start")
    second = fake.set_wiki_page("modbot/incident", "line one\n\n<b>two</b>", "bob")
    assert first != second
    assert len(second) == 36  # UUID-like, as Reddit's

    subreddit = await reddit.subreddit("ClaudeAI")
    page = await subreddit.wiki.get_page("modbot/incident")

    assert page.content_md == "line one\n\n<b>two</b>"
    assert "<p>line one</p>" in page.content_html
    assert "&lt;b&gt;two&lt;/b&gt;" in page.content_html
    assert page.revision_id == second
    assert page.revision_by.name == "bob"
    assert page.revision_date == int(fake.wiki_revisions("modbot/incident")[0].timestamp)
    assert page.may_revise is False
    assert page.reason is None
    assert fake.count("GET", r"^/r/ClaudeAI/wiki/modbot/incident$") == 1

    old = await page.revision(first)
    assert (old.content_md, old.revision_by.name, old.reason) == ("v1", "alice", "start")
    assert [c.query.get("v") for c in fake.calls if c.route == "wiki_page"] == [None, first]

    fake.add_moderator("modbot")
    assert (await subreddit.wiki.get_page("MODBOT/Incident")).may_revise is True


async def test_wiki_revisions_newest_first(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    ids = [fake.set_wiki_page("modbot/incident", f"v{i}", "alice") for i in range(3)]
    fake.set_wiki_page("modbot/incident", "elsewhere", "alice", subreddit="Other")
    subreddit = await reddit.subreddit("ClaudeAI")
    page = await subreddit.wiki.get_page("modbot/incident", fetch=False)

    revisions = [r async for r in page.revisions(limit=None, request_limit=2)]

    assert [r["id"] for r in revisions] == ids[::-1]
    assert revisions[0]["author"].name == "alice"
    assert revisions[0]["page"].name == "modbot/incident"
    assert (await revisions[-1]["page"].revision(ids[0])).content_md == "v0"
    assert fake.count("GET", "/wiki/revisions/modbot/incident") == 2  # two pages
    other = await reddit.subreddit("Other")
    assert (await other.wiki.get_page("modbot/incident")).content_md == "elsewhere"


async def test_missing_wiki_page_raises_not_found(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.set_wiki_page("modbot/incident", "v1", None)
    subreddit = await reddit.subreddit("ClaudeAI")

    with pytest.raises(asyncprawcore.NotFound):
        await subreddit.wiki.get_page("modbot/nothing")
    page = await subreddit.wiki.get_page("modbot/incident")
    assert page.revision_by is None
    with pytest.raises(asyncprawcore.NotFound):
        await page.revision("00000000-0000-0000-0000-000000000000")
    with pytest.raises(asyncprawcore.NotFound):
        [r async for r in (await subreddit.wiki.get_page("nope", fetch=False)).revisions()]
    assert fake.unexpected_calls == []


# --------------------------------------------------------------------------- messages sent


async def test_message_a_redditor(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fake.add_account("Alice")
    sent: list[str] = []
    fake.on_message_sent = lambda m: sent.append(m.body)
    redditor = await reddit.redditor("alice", fetch=False)

    await redditor.message(subject="Incident", message="resolved")  # returns None

    [message] = fake.sent_messages
    assert (message.to, message.subject, message.body) == ("Alice", "Incident", "resolved")
    assert (message.author, message.from_subreddit) == ("modbot", None)
    assert isinstance(message.time, float)
    assert sent == ["resolved"]
    [call] = [c for c in fake.calls if c.route == "compose"]
    assert call.path == "/api/compose/"
    assert call.form == {"api_type": "json", "subject": "Incident", "text": "resolved",
                         "to": "alice"}  # fmt: skip


async def test_message_errors(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    nobody = await reddit.redditor("nobody", fetch=False)
    with pytest.raises(RedditAPIException) as info:
        await nobody.message(subject="Incident", message="resolved")
    [item] = info.value.items
    assert (item.error_type, item.field) == ("USER_DOESNT_EXIST", "to")

    fake.add_account("alice")
    alice = await reddit.redditor("alice", fetch=False)
    with pytest.raises(RedditAPIException) as info:
        await alice.message(subject="x" * 101, message=" ")
    assert [(i.error_type, i.field) for i in info.value.items] == [
        ("TOO_LONG", "subject"),
        ("NO_TEXT", "text"),
    ]
    assert fake.sent_messages == []


async def test_sent_box_lists_messages_and_replies(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.add_account("alice")
    await (await reddit.redditor("alice", fetch=False)).message(subject="one", message="1")
    assert [m async for m in reddit.inbox.unread()] == []  # not in the sender's inbox
    fake.send_message("bob", "!status")
    [question] = [m async for m in reddit.inbox.unread()]
    await question.reply("all good")
    await (await reddit.subreddit("ClaudeAI")).message(subject="to mods", message="2")

    sent = [m async for m in reddit.inbox.sent()]

    assert [m.body for m in sent] == ["2", "all good", "1"]  # newest first
    assert all(isinstance(m, Message) and m.author == "modbot" for m in sent)
    assert [str(m.dest) for m in sent] == ["ClaudeAI", "bob", "alice"]
    assert sent[0].dest.__class__.__name__ == "Subreddit"
    assert [m.to for m in fake.sent_messages] == ["alice", "#ClaudeAI"]  # not the reply
    assert fake.count("GET", r"^/message/sent/$") == 1
