"""Crash-point loop: SIGKILL the real ``modbot run`` at every point that matters.

Each iteration starts from an empty state file, sends a moderator ``!post`` command,
has a wiki editor save a template revision that fails the checks (so the bot messages
its author), and drives a real incident timeline (from the samples) to its end while
the bot is killed with SIGKILL at one crash point, then restarted:

* in the bot (``MODBOT_CRASH_AT``): after the intent commit, after Reddit answered a
  post but before the id was saved, after an edit landed but before it was recorded,
  after a command ran but before its reply, after the reply but before the mark-read,
  after a message's intent (the reply, the wiki message), after Reddit took a message
  but before that was recorded;
* at the fake Reddit, before it answers: right after it stored a comment, right
  after it stored an edit, right after it stored a message (the reply, the wiki
  message), right after a message was marked read;
* at a random moment;
* as faults of the machine rather than of the process: the state file deleted
  (with its journal, as ``rm modbot.sqlite3*`` would) or emptied while the bot runs
  (it stops, is restarted and rebuilds from Reddit), and every write failing for a
  second, as on a full disk (the bot keeps running and catches up);
* and a fault of Reddit's, ``late-landing``: the first two comments the bot posts in
  the thread (the incident's, the notice) get no answer before the bot gives up, and
  Reddit stores them later (``harness.LATE_AFTER``), some long after the bot has
  posted again; the reply and the wiki message get no answer either and are stored
  within a second of the bot giving up (a message cannot be unsent, so the bot waits
  its grace after the call before sending one again); every other such iteration the
  bot is also killed while it waits.

Readers take part too: before the incident opens, five readers post outage reports (and
one posts about something else), so the bot posts an early notice, replies to each
report post and removes it, all before the page shows the incident
(``MODBOT_REPORTS_ACTION=remove``; the bot moderates). Their own crash points: after the
notice is decided, after a removal's intent, after Reddit removed a post; at the fake
Reddit, right after it stored a reply to a post and right after it removed one.

At the end, once every late write has landed and the bot has had the time its rule
gives it (``harness.late_settle_time``), it checks the fake Reddit: live duplicate
comments (two live bot comments with one marker in one thread), updates missing from
final comments (the comment is not the final state), commands executed twice (a
notice posted more than once) or never, replies and wiki messages sent twice or
never, early notices twice, replies and removals of readers' posts twice or never
(never: not counted where the state file was lost, which forgets the reports, by design).

    python -m bench.crashloop [--iterations 200] [--points all|readers]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import (
    BotProcess,
    Fakes,
    arm_late_landings,
    bot_env,
    expected_body,
    fakes,
    late_settle_time,
    live_comments,
    live_duplicates,
    real_timelines,
    retimed,
    without_readers,
)
from modbot.core.markdown import marker_of
from modbot.shell.crashpoints import CRASH_POINTS
from tests.conftest import BOT, reddit_settings
from tests.fakes.reddit import Comment, FakeReddit, Message

FAKE_POINTS = (
    "reddit-stored-comment",
    "reddit-stored-edit",
    "reddit-sent-message",
    "reddit-marked-read",
    "reddit-stored-reply",
    "reddit-removed-post",
)
FILE_FAULTS = ("state-deleted", "state-emptied", "disk-full")
REDDIT_FAULTS = ("late-landing",)
POINTS = (*CRASH_POINTS, *FAKE_POINTS, "random", *FILE_FAULTS, *REDDIT_FAULTS)
# The points of the steps that act on readers' reports (``bench.reports`` runs these).
READERS_POINTS = (
    "after-notice",
    "after-removal-intent",
    "after-removal",
    "reddit-stored-reply",
    "reddit-removed-post",
)
FULL_FOR = 1.0  # seconds every write fails in the disk-full fault
STEP_TIMEOUT = 20.0
# The inbox is read every 0.2 s here (every 15 s in real life): that alone is 300 calls a
# minute, so the budget is scaled up as in the soak, or a long wait (a late landing's)
# would starve the bot's other calls, as it never could at real speed.
FAST_BUDGET = {"MODBOT_REDDIT_CALLS_PER_MINUTE": "600"}
# A template revision that fails the checks: the bot keeps its templates (so comments
# stay as expected) and messages the revision's author once.
WIKI_PAGE, WIKI_EDITOR = "modbot/maintenance", "bob"
BROKEN_TEMPLATE = "{{ incident.name }\n"
MESSAGE_LATE_AFTER = (0.1, 1.0)  # after the bot gave up: within its grace after the call
READERS = {
    "MODBOT_REPORTS_INTERVAL": "1",
    "MODBOT_REPORTS_ACTION": "remove",
    "MODBOT_REPORTS_REMOVAL_REASON": "Crash loop: reports go in the megathread",
}
REPORTS = [
    "Is Claude down? 529 overloaded",
    "API down for everyone, 500 errors",
    "claude.ai is down, 503 Service Unavailable",
    "Everything is down, 529 Overloaded",
    "Claude is down for me too: overloaded_error",
]


@dataclass
class Tally:
    """What the loop saw."""

    iterations: int = 0
    kills: int = 0
    duplicates: int = 0
    duplicate_notices: int = 0
    missing_updates: int = 0
    commands_twice: int = 0
    commands_lost: int = 0
    replies_twice: int = 0
    replies_lost: int = 0
    wiki_messages_twice: int = 0
    wiki_messages_lost: int = 0
    late_landed: int = 0  # comments Reddit stored after the bot gave up on them
    late_second_copies: int = 0  # of those, copies of a comment the bot had posted again
    early_twice: int = 0  # live early notices beyond one per marker
    posts_answered_twice: int = 0  # readers' report posts answered more than once
    posts_answered_never: int = 0
    removals_twice: int = 0  # readers' posts the bot asked Reddit to remove more than once
    removals_never: int = 0
    readers_posts: int = 0
    kills_by_point: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


@dataclass
class Once:
    """A strike still to make, once."""

    armed: bool


async def iteration(number: int, point: str, timelines: list, tally: Tally, logs: Path) -> None:
    incident_id, documents = retimed(
        timelines[number % len(timelines)][1], f"n{number}", datetime.now(UTC)
    )
    notice = f"Crash loop notice {number}."
    with tempfile.TemporaryDirectory() as tmp:
        async with fakes() as both:
            env = bot_env(
                both,
                Path(tmp) / "state.sqlite3",
                MODBOT_WIKI_TEMPLATES="true",
                **FAST_BUDGET,
                **READERS,
            )
            if point in CRASH_POINTS:
                env["MODBOT_CRASH_AT"] = point
            both.reddit.add_moderator(BOT["username"], ["all"])
            bot = BotProcess(env, Path(tmp), logs / f"iteration-{number:03d}.log")
            # Only a moderator with the wiki permission has a revision judged (and told).
            both.reddit.add_moderator(WIKI_EDITOR, ["wiki"])
            both.reddit.set_wiki_page(WIKI_PAGE, BROKEN_TEMPLATE, WIKI_EDITOR)
            arm_fake(point, both, bot, tally)
            await bot.start()
            both.reddit.send_message("alice", f"!post {notice}")
            posts = await readers_report(bot, both, point, tally)
            # Before the page says anything: the early notice, then the posts' replies and
            # removals pointing to it (the incident, once open, confirms the notice).
            await readers_settle(bot, both, posts, point, tally)
            kill_waiting = Once(point == "late-landing" and (number // len(POINTS)) % 2 == 1)
            for document in documents:
                both.page.set_document(document)
                want = expected_body(document, incident_id, both.page.url)
                await drive(
                    bot, both, lambda w=want: current(both, incident_id, w), point, tally,
                    kill_waiting=kill_waiting,
                )  # fmt: skip
            await drive(bot, both, lambda: notice_done(both, notice), point, tally)
            await drive(bot, both, lambda: bool(wiki_messages(both)), point, tally)
            final = expected_body(documents[-1], incident_id, both.page.url)
            await settle(bot, both, lambda: current(both, incident_id, final), point, tally)
            check(both, incident_id, final, notice, number, tally)
            check_readers(both, posts, point, number, tally)
            await bot.stop()
        tally.late_landed += len(both.reddit.late_landed)
        tally.late_second_copies += second_copies(both)
    tally.iterations += 1


async def settle(
    bot: BotProcess, both: Fakes, shown: Callable[[], bool], point: str, tally: Tally
) -> None:
    """Let every late write land, then give the bot the time its rule allows to remove
    a copy (and, when it kept a late copy, to edit it to the latest state, which
    ``shown`` says): what is live after that counts."""
    await drive(bot, both, lambda: both.reddit.late_pending == 0, point, tally)
    with contextlib.suppress(TimeoutError):  # the check counts what is left
        await drive(
            bot, both, lambda: not live_duplicates(both.reddit) and shown(), point, tally,
            timeout=late_settle_time(),
        )  # fmt: skip


async def readers_report(bot: BotProcess, both: Fakes, point: str, tally: Tally) -> list[str]:
    """Five readers report an outage in posts (and one posts about something else) once
    the bot reads: an early notice, then a reply to each report post, and its removal."""
    await drive(bot, both, lambda: reading(both), point, tally)
    posts = []
    for number, text in enumerate(REPORTS):
        author = f"reader{number}"
        both.reddit.add_account(author, created_utc=time.time() - 400 * 86_400)
        posts.append(both.reddit.add_submission(text, author=author).id)
    both.reddit.add_submission("Which plan is best for long documents?", author="reader9")
    tally.readers_posts += len(posts)
    return posts


def reading(both: Fakes) -> bool:
    """The bot has read the subreddit once (later posts count)."""
    return both.reddit.count("GET", r"^/r/ClaudeAI/new$") > 0


async def readers_settle(
    bot: BotProcess, both: Fakes, posts: list[str], point: str, tally: Tally
) -> None:
    """Wait for every report post's reply and removal (where the state is kept)."""
    with contextlib.suppress(TimeoutError):  # the check counts what is missing
        await drive(bot, both, lambda: readers_done(both, posts), point, tally)


def readers_done(both: Fakes, posts: list[str]) -> bool:
    early = [
        c for c in live_comments(both.reddit) if (marker_of(c.body) or "").startswith("early-")
    ]
    return bool(early) and all(
        len(post_replies(both, post)) == 1 and both.reddit.removals[post] >= 1 for post in posts
    )


def post_replies(both: Fakes, post: str) -> list[Comment]:
    """The bot's live replies on a reader's post."""
    return [c for c in live_comments(both.reddit) if c.submission_id == post]


def check_readers(both: Fakes, posts: list[str], point: str, number: int, tally: Tally) -> None:
    early = Counter(
        (marker_of(c.body), c.link_id)
        for c in live_comments(both.reddit)
        if (marker_of(c.body) or "").startswith("early-")
    )
    twice = sum(n - 1 for n in early.values() if n > 1)
    tally.early_twice += twice
    lost = point in ("state-deleted", "state-emptied")  # reports forgotten, by design
    for post in posts:
        answered, removed = len(post_replies(both, post)), both.reddit.removals[post]
        tally.posts_answered_twice += answered > 1
        tally.removals_twice += removed > 1
        tally.posts_answered_never += answered == 0 and not lost
        tally.removals_never += removed == 0 and not lost
        if answered > 1 or removed > 1 or ((not answered or not removed) and not lost):
            tally.failures.append(
                f"iteration {number} ({point}): post {post} answered {answered}, "
                f"removed {removed} times"
            )
    if twice:
        tally.failures.append(f"iteration {number}: {twice} early notice(s) twice")


def second_copies(both: Fakes) -> int:
    """Second comments with one marker in one thread that Reddit stored late (live or
    since deleted): the fault made a duplicate for the bot to find."""
    late = set(both.reddit.late_landed)
    ever = Counter(
        (marker_of(c.body), c.link_id)
        for c in both.reddit.comments.values()
        if c.author == BOT["username"] and marker_of(c.body)
    )
    return sum(
        1
        for c in both.reddit.comments.values()
        if c.id in late and ever[(marker_of(c.body), c.link_id)] > 1
    )


def arm_fake(point: str, both: Fakes, bot: BotProcess, tally: Tally) -> None:
    """Make the fake Reddit kill the bot at ``point``, once, before answering."""

    def kill(_: object) -> None:
        if bot.alive:
            bot.kill()
            tally.kills += 1
            tally.kills_by_point[point] += 1
        both.reddit.on_comment_created = both.reddit.on_comment_edited = None
        both.reddit.on_message_read = both.reddit.on_message_sent = None
        both.reddit.on_post_removed = None

    def kill_on_reply(comment: Comment) -> None:
        if comment.submission_id in both.reddit.submissions and not _in_megathread(both, comment):
            kill(comment)

    if point == "reddit-stored-comment":
        both.reddit.on_comment_created = kill
    elif point == "reddit-stored-reply":
        both.reddit.on_comment_created = kill_on_reply
    elif point == "reddit-removed-post":
        both.reddit.on_post_removed = kill
    elif point == "reddit-stored-edit":
        both.reddit.on_comment_edited = kill
    elif point == "reddit-sent-message":
        both.reddit.on_message_sent = kill
    elif point == "reddit-marked-read":
        both.reddit.on_message_read = kill
    elif point == "late-landing":
        arm_late_landings(both.reddit)
        arm_late_messages(both.reddit)
        tally.kills_by_point[point] += 1  # the fault, struck when the bot posts


def _in_megathread(both: Fakes, comment: Comment) -> bool:
    return both.reddit.submissions[comment.submission_id].sticky is not None


def arm_late_messages(reddit: FakeReddit) -> None:
    """The reply to the command and the wiki message get no answer; Reddit stores them
    soon after the bot gave up (``MESSAGE_LATE_AFTER``)."""
    timeout = float(reddit_settings(reddit)["reddit_timeout"])
    for path, form in (("/api/comment", {"thing_id": "^t4_"}), ("/api/compose", None)):
        reddit.land_late_next(
            "POST",
            path,
            timeout + random.uniform(*MESSAGE_LATE_AFTER),
            stamp=random.choice(["landing", "request"]),
            form=form,
        )


async def drive(
    bot: BotProcess,
    both: Fakes,
    done: object,
    point: str,
    tally: Tally,
    *,
    timeout: float = STEP_TIMEOUT,
    kill_waiting: Once | None = None,
) -> None:
    """Wait for ``done()``, restarting the bot whenever it died; maybe strike at random,
    or (``kill_waiting``) kill it once while Reddit holds a late write's request."""
    assert callable(done)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    random_at = None
    if point == "random" or point in FILE_FAULTS:
        random_at = loop.time() + random.uniform(0.05, 1.0)
    while not done():
        if loop.time() > deadline:
            raise TimeoutError("the bot did not catch up")
        if random_at is not None and loop.time() >= random_at and bot.alive:
            await strike(bot, point)
            tally.kills += point == "random"
            tally.kills_by_point[point] += 1
            random_at = None
        if kill_waiting is not None and kill_waiting.armed and both.reddit.late_pending:
            kill_waiting.armed = False
            bot.kill()
            tally.kills += 1
        if not bot.alive:
            await bot.wait()
            if bot.process is not None and bot.process.returncode == -9 and point in CRASH_POINTS:
                tally.kills += 1
                tally.kills_by_point[point] += 1
            bot.env.pop("MODBOT_CRASH_AT", None)  # once per iteration, then carry on
            await bot.start()
        await asyncio.sleep(0.02)


async def strike(bot: BotProcess, point: str) -> None:
    """The random-moment faults: a kill, a lost or emptied state file, a full disk."""
    database = bot.database
    if point == "random":
        bot.kill()
    elif point == "state-deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    elif point == "state-emptied":
        database.write_bytes(b"")
    elif point == "disk-full":
        files = [Path(f"{database}{s}") for s in ("", "-wal", "-shm")]
        largest = max((f.stat().st_size for f in files if f.exists()), default=0)
        resource.prlimit(bot.pid, resource.RLIMIT_FSIZE, (largest, resource.RLIM_INFINITY))
        await asyncio.sleep(FULL_FOR)
        if bot.alive:
            resource.prlimit(bot.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)


def current(both: Fakes, incident_id: str, body: str) -> bool:
    return any(
        without_readers(c.body) == body
        for c in live_comments(both.reddit)
        if _incident(c) == incident_id
    )


def notice_done(both: Fakes, notice: str) -> bool:
    """The command was answered and marked read, and its notice is in the thread."""
    message = next(m for m in both.reddit.messages.values() if m.author == "alice")
    posted = any(notice in c.body for c in live_comments(both.reddit))
    return not message.new and posted


def wiki_messages(both: Fakes) -> list[Message]:
    """The bot's messages to the wiki editor."""
    return [
        m
        for m in both.reddit.messages.values()
        if m.author == BOT["username"] and m.dest == WIKI_EDITOR
    ]


def _incident(comment: object) -> str | None:
    found = [m for m in [marker_of(getattr(comment, "body", "")) or ""] if m.startswith("inc-")]
    return found[-1].removeprefix("inc-") if found else None


def check(  # noqa: PLR0917 - one iteration's whole outcome
    both: Fakes, incident_id: str, final: str, notice: str, number: int, tally: Tally
) -> None:
    live = live_comments(both.reddit)
    extra = live_duplicates(both.reddit)
    notes = sum(n for found, n in extra.items() if found.startswith("note-"))
    duplicates = sum(n for found, n in extra.items() if found.startswith("inc-"))
    tally.duplicates += duplicates
    tally.duplicate_notices += notes
    mine = [c for c in live if _incident(c) == incident_id]
    if not mine or without_readers(mine[0].body) != final:
        tally.missing_updates += 1
        tally.failures.append(f"iteration {number}: final comment is not the final state")
    notices = sum(notice in c.body for c in live)
    message = next(m for m in both.reddit.messages.values() if m.author == "alice")
    replies = len(both.reddit.replies_to(message.id))
    if notices > 1:
        tally.commands_twice += 1
        tally.failures.append(f"iteration {number}: {notices} notices")
    if notices == 0:
        tally.commands_lost += 1
        tally.failures.append(f"iteration {number}: the notice was never posted")
    if replies != 1:
        tally.replies_twice += replies > 1
        tally.replies_lost += replies == 0
        tally.failures.append(f"iteration {number}: {replies} replies to the command")
    told = len(wiki_messages(both))
    if told != 1:
        tally.wiki_messages_twice += told > 1
        tally.wiki_messages_lost += told == 0
        tally.failures.append(f"iteration {number}: {told} messages to the wiki editor")
    if duplicates or notes:
        tally.failures.append(f"iteration {number}: {duplicates + notes} duplicate comment(s)")


async def main(iterations: int, seed: int, points: Sequence[str] = POINTS) -> Tally:
    random.seed(seed)
    timelines = real_timelines(min_updates=2)
    tally = Tally()
    logs = Path(tempfile.mkdtemp(prefix="modbot-crashloop-"))
    started = time.monotonic()
    for number in range(iterations):
        point = points[number % len(points)]
        try:
            await iteration(number, point, timelines, tally, logs)
        except TimeoutError as exc:
            tally.failures.append(f"iteration {number} ({point}): {exc}; logs in {logs}")
    elapsed = time.monotonic() - started
    print(f"crash loop: {tally.iterations} of {iterations} iterations in {elapsed:.0f} s")
    print(f"({len(timelines)} real incident timelines; crash points: {', '.join(points)})")
    print(f"{'iterations':<40} {tally.iterations}")
    print(f"{'kills (SIGKILL)':<40} {tally.kills}")
    print(f"{'faults struck (kills and file faults)':<40} {sum(tally.kills_by_point.values())}")
    for point, count in sorted(tally.kills_by_point.items()):
        print(f"{'  at ' + point:<40} {count}")
    print(f"{'late writes landed (late-landing)':<40} {tally.late_landed}")
    print(f"{'  of them second copies, to be removed':<40} {tally.late_second_copies}")
    print(f"{'live duplicate incident comments at end':<40} {tally.duplicates}")
    print(f"{'live duplicate notices at end':<40} {tally.duplicate_notices}")
    print(f"{'updates missing from final comments':<40} {tally.missing_updates}")
    print(f"{'commands run twice':<40} {tally.commands_twice}")
    print(f"{'commands never executed':<40} {tally.commands_lost}")
    print(f"{'replies sent twice':<40} {tally.replies_twice}")
    print(f"{'replies never sent':<40} {tally.replies_lost}")
    print(f"{'wiki messages sent twice':<40} {tally.wiki_messages_twice}")
    print(f"{'wiki messages never sent':<40} {tally.wiki_messages_lost}")
    print(f"{'readers report posts':<40} {tally.readers_posts}")
    print(f"{'early notices posted twice':<40} {tally.early_twice}")
    print(f"{'report posts answered twice':<40} {tally.posts_answered_twice}")
    print(f"{'report posts removed twice':<40} {tally.removals_twice}")
    never = f"{tally.posts_answered_never} / {tally.removals_never}"
    print(f"{'report posts never answered / removed':<40} {never}")
    for failure in tally.failures:
        print(f"FAILED: {failure}")
    return tally


def succeeded(tally: Tally, iterations: int) -> bool:
    """True when every iteration finished and every count is zero."""
    counts = (
        tally.duplicates,
        tally.duplicate_notices,
        tally.missing_updates,
        tally.commands_twice,
        tally.commands_lost,
        tally.replies_twice,
        tally.replies_lost,
        tally.wiki_messages_twice,
        tally.wiki_messages_lost,
    )
    if isinstance(tally, Tally):  # the failover loop shares this verdict, without readers
        counts += (
            tally.early_twice,
            tally.posts_answered_twice,
            tally.removals_twice,
            tally.posts_answered_never,
            tally.removals_never,
        )
    return tally.iterations == iterations and not any(counts) and not tally.failures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--points",
        choices=("all", "readers"),
        default="all",
        help="every crash point, or only those of the steps acting on readers' reports",
    )
    args = parser.parse_args()
    points = READERS_POINTS if args.points == "readers" else POINTS
    result = asyncio.run(main(args.iterations, args.seed, points))
    raise SystemExit(0 if succeeded(result, args.iterations) else 1)
