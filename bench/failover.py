"""Failover loop: two real ``modbot run`` processes on one PostgreSQL, the leader struck.

Each iteration starts from an empty database, the fake status page and the fake
Reddit, with two bot processes of one deployment (one leads, one follows). A
moderator sends ``!post``, a wiki editor saves a broken template (the bot messages
them), and a real incident timeline (from the samples) is driven to its end while the
leader is struck once, at a random update, in one of these ways:

* ``kill``: SIGKILL (a power cut); systemd would restart it, so the loop does;
* ``freeze``: SIGSTOP, then its database sessions are cut (a network partition, a
  long pause), and SIGCONT a random 0.5-3 s later: it wakes as a deposed leader;
* ``kill-mid-post`` and ``freeze-mid-post``: the same, at the moment the fake Reddit
  has stored the leader's new comment (or its edit) but not yet answered it;
* ``hang``: SIGSTOP alone, its sessions alive (a hung process): the follower deposes
  it once it has missed three lease proofs; SIGCONT a random 4-8 s later;
* ``late-landing``: the first two comments posted in the thread get no answer, and
  Reddit stores them later (``harness.LATE_AFTER``); the leader is frozen (as in
  ``freeze``), or in every other such iteration killed, while Reddit holds the first:
  the next leader posts again, and the deposed leader's comment lands after that.

At the end, once every late write has landed and the bots have had the time their
rule gives them (``harness.late_settle_time``), it checks the fake Reddit: live
duplicate comments (two live bot comments with one marker in one thread), second
comments ever posted (even if deleted since; late landings apart, which are Reddit's
doing), updates missing from the final comments, commands run twice (a notice posted more
than once), replies and wiki messages sent twice or never; and it times each takeover of the plain
``kill`` and ``freeze`` strikes, from the strike to the next leader's first comment or
edit on Reddit (the next update is published at the strike).

    python -m bench.failover [--iterations 100] [--seed N]

It needs PostgreSQL: ``MODBOT_TEST_POSTGRES_URL`` (a user that may create databases),
or the server binaries (``initdb``, ``pg_ctl``) to start a throw-away cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import crashloop
from bench.crashloop import check, current, notice_done, second_copies
from bench.harness import (
    BotProcess,
    Fakes,
    arm_late_landings,
    bot_env,
    expected_body,
    fakes,
    late_settle_time,
    live_duplicates,
    real_timelines,
    retimed,
)
from modbot.core.markdown import marker_of
from tests.conftest import BOT
from tests.pg import GIVEN_URL, Cluster, bin_dir, fresh_database

MODES = ("kill", "freeze", "kill-mid-post", "freeze-mid-post", "hang", "late-landing")
LEASE_INTERVAL = 0.5
POLL_INTERVAL = 0.2
STEP_TIMEOUT = 30.0


@dataclass
class Tally:
    """What the loop saw."""

    iterations: int = 0
    takeovers: int = 0
    duplicates: int = 0
    duplicate_notices: int = 0
    missing_updates: int = 0
    commands_twice: int = 0
    commands_lost: int = 0
    replies_twice: int = 0
    replies_lost: int = 0
    wiki_messages_twice: int = 0
    wiki_messages_lost: int = 0
    posted_twice: int = 0  # second comments ever created, even if deleted later
    late_landed: int = 0  # comments Reddit stored after the bot gave up on them
    late_second_copies: int = 0  # of those, copies of a comment posted again meanwhile
    takeover_seconds: list[float] = field(default_factory=list)
    hang_seconds: list[float] = field(default_factory=list)
    strikes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class Pair:
    """The two bot processes of one iteration, and the database they share."""

    def __init__(self, both: Fakes, url: str, folder: Path, logs: Path, number: int) -> None:
        self.url = url
        self.bots = {}
        for name in ("bot-a", "bot-b"):
            # Each process names its sessions, so a strike can cut exactly its own.
            database = f"{url}?application_name={name}"
            env = bot_env(
                both,
                folder / "unused.sqlite3",
                MODBOT_DATABASE=database,
                MODBOT_LEASE_INTERVAL=str(LEASE_INTERVAL),
                MODBOT_POLL_INTERVAL=str(POLL_INTERVAL),
                MODBOT_LOG_LEVEL="INFO",
                MODBOT_WIKI_TEMPLATES="true",
                **crashloop.FAST_BUDGET,
            )
            self.bots[name] = BotProcess(env, folder, logs / f"iteration-{number:03d}-{name}.log")
        self.frozen: set[str] = set()

    async def start(self) -> None:
        for bot in self.bots.values():
            await bot.start()

    def leader(self) -> str | None:
        """The name of the process that leads now, from the database."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT pid FROM leadership WHERE host IS NOT NULL").fetchone()
        except psycopg.errors.UndefinedTable:
            return None  # the bots have not created their schema yet
        if row is None:
            return None
        return next((n for n, b in self.bots.items() if b.alive and b.pid == row[0]), None)

    def cut(self, name: str) -> None:
        """End every database session of ``name`` (its lock goes with them)."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            )

    def strike(self, name: str, mode: str) -> None:
        bot = self.bots[name]
        if not bot.alive:
            return
        if mode.startswith("kill"):
            bot.kill()
            return
        os.kill(bot.pid, signal.SIGSTOP)
        self.frozen.add(name)
        if mode == "hang":
            asyncio.get_running_loop().call_later(random.uniform(4.0, 8.0), self.thaw, name)
            return
        self.cut(name)
        asyncio.get_running_loop().call_later(random.uniform(0.5, 3.0), self.thaw, name)

    def thaw(self, name: str) -> None:
        if name in self.frozen:
            self.frozen.discard(name)
            if self.bots[name].alive:
                os.kill(self.bots[name].pid, signal.SIGCONT)

    async def keep_running(self) -> None:
        """Restart a killed process, as systemd would."""
        for bot in self.bots.values():
            if not bot.alive:
                await bot.wait()
                await bot.start()

    async def stop(self) -> None:
        for name in list(self.frozen):
            self.thaw(name)
        for bot in self.bots.values():
            await bot.stop()


async def until(
    pair: Pair,
    done: object,
    timeout: float = STEP_TIMEOUT,
    tick: Callable[[], None] | None = None,
) -> None:
    """Wait for ``done()``, restarting killed processes meanwhile (and calling ``tick``)."""
    assert callable(done)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the bots did not catch up")
        await pair.keep_running()
        if tick is not None:
            tick()
        await asyncio.sleep(0.02)


async def iteration(  # noqa: PLR0917 - one iteration's whole setting
    number: int, mode: str, timelines: list, server: str, tally: Tally, logs: Path
) -> None:
    incident_id, documents = retimed(
        timelines[number % len(timelines)][1], f"f{number}", datetime.now(UTC)
    )
    notice = f"Failover notice {number}."
    at = random.randrange(len(documents))  # strike when this update is published
    with tempfile.TemporaryDirectory() as tmp, fresh_database(server) as url:
        async with fakes() as both:
            pair = Pair(both, url, Path(tmp), logs, number)
            tick = None
            if mode == "late-landing":
                at = -1  # struck when Reddit holds the leader's first comment instead
                arm_late_landings(both.reddit)
                how = "kill" if (number // len(MODES)) % 2 else "freeze"
                tick = strike_when_held(pair, both, how, tally)
            editor = crashloop.WIKI_EDITOR
            both.reddit.set_wiki_page(crashloop.WIKI_PAGE, crashloop.BROKEN_TEMPLATE, editor)
            await pair.start()
            both.reddit.send_message("alice", f"!post {notice}")
            for index, document in enumerate(documents):
                if index == at:
                    await strike(pair, both, mode, document, tally)
                else:
                    both.page.set_document(document)
                want = expected_body(document, incident_id, both.page.url)
                await until(pair, lambda w=want: current(both, incident_id, w), tick=tick)
            await until(pair, lambda: notice_done(both, notice), tick=tick)
            await until(pair, lambda: bool(crashloop.wiki_messages(both)), tick=tick)
            final = expected_body(documents[-1], incident_id, both.page.url)
            await settle(pair, both, lambda: current(both, incident_id, final))
            # What readers see now, before stopping: a stop hands the lead to the other
            # process, whose start-up clean-up would hide a duplicate left until then.
            check(both, incident_id, final, notice, number, tally)
            await pair.stop()
        tally.posted_twice += ever_posted_twice(both)
        tally.late_landed += len(both.reddit.late_landed)
        tally.late_second_copies += second_copies(both)
    tally.iterations += 1


def strike_when_held(pair: Pair, both: Fakes, how: str, tally: Tally) -> Callable[[], None]:
    """A tick that strikes the leader once, while Reddit holds a late write's request."""
    armed = [True]

    def tick() -> None:
        if not armed[0] or not both.reddit.late_pending:
            return
        leader = pair.leader()
        if leader is None:
            return
        armed[0] = False
        tally.strikes["late-landing"] += 1
        tally.takeovers += 1
        pair.strike(leader, how)

    return tick


async def settle(pair: Pair, both: Fakes, shown: Callable[[], bool]) -> None:
    """Let every late write land, then give the bots the time their rule allows to
    remove a copy (and, when they kept a late copy, to edit it to the latest state,
    which ``shown`` says): what is live after that counts."""
    await until(pair, lambda: both.reddit.late_pending == 0)
    with contextlib.suppress(TimeoutError):  # the check counts what is left
        await until(pair, lambda: not live_duplicates(both.reddit) and shown(), late_settle_time())


def ever_posted_twice(both: Fakes) -> int:
    """Second comments with one marker in one thread, counting those deleted since: the
    bot's clean-up would hide a double post from the final check. A comment Reddit
    stored late is Reddit's doing, not a second post: it is counted apart."""
    late = set(both.reddit.late_landed)
    ever = Counter(
        (marker_of(c.body), c.link_id)
        for c in both.reddit.comments.values()
        if c.author == BOT["username"] and marker_of(c.body) and c.id not in late
    )
    return sum(count - 1 for count in ever.values() if count > 1)


async def strike(pair: Pair, both: Fakes, mode: str, document: dict, tally: Tally) -> None:
    """Strike the leader (now, or when it posts next) and publish ``document``."""
    await until(pair, lambda: pair.leader() is not None)
    leader = pair.leader()
    assert leader is not None
    if mode.endswith("mid-post"):

        def at_post(_: object) -> None:
            # Reddit has stored the comment (or the edit); the answer waits until this
            # returns, and the leader is struck before it can read it.
            both.reddit.on_comment_created = both.reddit.on_comment_edited = None
            tally.strikes[mode] += 1
            tally.takeovers += 1
            pair.strike(leader, mode)

        both.reddit.on_comment_created = both.reddit.on_comment_edited = at_post
        both.page.set_document(document)
        return
    tally.strikes[mode] += 1
    tally.takeovers += 1
    struck = time.monotonic()
    pair.strike(leader, mode)
    both.page.set_document(document)
    writes = r"/api/(comment|editusertext)"
    try:
        await until(pair, lambda: both.reddit.count("POST", writes, since=struck) > 0)
    except TimeoutError:
        return  # nothing to deliver for this update: the check at the end tells
    first = min(
        c.time
        for c in both.reddit.calls
        if c.method == "POST" and c.time >= struck and re.search(writes, c.path)
    )
    (tally.hang_seconds if mode == "hang" else tally.takeover_seconds).append(first - struck)


async def main(iterations: int, seed: int, server: str | None = None) -> Tally:
    """``server``: a PostgreSQL URL for a user that may create databases; by default
    ``MODBOT_TEST_POSTGRES_URL``, or a throw-away cluster started here."""
    random.seed(seed)
    timelines = real_timelines(min_updates=3)
    tally = Tally()
    logs = Path(tempfile.mkdtemp(prefix="modbot-failover-"))
    cluster = None
    server = server or GIVEN_URL
    if not server:
        binaries = bin_dir()
        if binaries is None:
            raise SystemExit("failover: needs PostgreSQL (MODBOT_TEST_POSTGRES_URL or initdb)")
        cluster = Cluster(binaries)
        server = cluster.start()
    started = time.monotonic()
    try:
        for number in range(iterations):
            mode = MODES[number % len(MODES)]
            try:
                await iteration(number, mode, timelines, server, tally, logs)
            except TimeoutError as exc:
                tally.failures.append(f"iteration {number} ({mode}): {exc}; logs in {logs}")
    finally:
        if cluster is not None:
            cluster.stop()
    report(tally, iterations, time.monotonic() - started, len(timelines))
    return tally


def report(tally: Tally, iterations: int, elapsed: float, timelines: int) -> None:
    times = sorted(tally.takeover_seconds)
    print(f"failover loop: {tally.iterations} of {iterations} iterations in {elapsed:.0f} s")
    print(
        f"(two `modbot run` processes on one PostgreSQL; {timelines} real incident timelines; "
        f"lease check every {LEASE_INTERVAL:g} s, poll every {POLL_INTERVAL:g} s)"
    )
    print(f"{'iterations':<52} {tally.iterations}")
    print(f"{'takeovers (leader struck)':<52} {tally.takeovers}")
    for mode, count in sorted(tally.strikes.items()):
        print(f"{'  by ' + mode:<52} {count}")
    print(f"{'late writes landed (late-landing)':<52} {tally.late_landed}")
    print(f"{'  of them second copies, to be removed':<52} {tally.late_second_copies}")
    print(f"{'live duplicate incident comments at end':<52} {tally.duplicates}")
    print(f"{'second comments ever posted (even if deleted)':<52} {tally.posted_twice}")
    print("  (late landings apart: Reddit stored those)")
    print(f"{'live duplicate notices at end':<52} {tally.duplicate_notices}")
    print(f"{'updates missing from final comments':<52} {tally.missing_updates}")
    print(f"{'commands run twice':<52} {tally.commands_twice}")
    print(f"{'commands never executed':<52} {tally.commands_lost}")
    print(f"{'replies sent twice':<52} {tally.replies_twice}")
    print(f"{'replies never sent':<52} {tally.replies_lost}")
    print(f"{'wiki messages sent twice':<52} {tally.wiki_messages_twice}")
    print(f"{'wiki messages never sent':<52} {tally.wiki_messages_lost}")
    if times:
        target = LEASE_INTERVAL + POLL_INTERVAL
        print(
            f"{'death -> next leader first delivery, median':<52} "
            f"{statistics.median(times):.2f} s   (target <= {target:g} s + one delivery)"
        )
        print(f"{'death -> next leader first delivery, worst':<52} {times[-1]:.2f} s")
        print(f"{'  (timed takeovers: kill and freeze)':<52} {len(times)}")
    if tally.hang_seconds:
        hung = sorted(tally.hang_seconds)
        print(
            f"{'hung leader -> next leader first delivery, median':<52} "
            f"{statistics.median(hung):.2f} s   (3 lease proofs missed + 2 s: "
            f"{3 * LEASE_INTERVAL + 2:g} s)"
        )
        print(f"{'hung leader -> next leader first delivery, worst':<52} {hung[-1]:.2f} s")
    for failure in tally.failures:
        print(f"FAILED: {failure}")


def succeeded(tally: Tally, iterations: int) -> bool:
    """The crash loop's verdict, and no second comment ever posted."""
    return crashloop.succeeded(tally, iterations) and not tally.posted_twice


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(main(args.iterations, args.seed))
    raise SystemExit(0 if succeeded(result, args.iterations) else 1)
