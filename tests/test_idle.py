"""What an idle bot costs: an unchanged poll writes nothing, re-reads nothing and opens
no connection.

The heartbeat (the last poll, the last good poll, the last good Reddit call) is held in
memory and written at most every ``heartbeat_interval`` and when the bot stops; a
failing poll, and the recovery after it, are written at once so that ``modbot status``
and ``check --live`` show them. The store's ``version`` tells an idle loop whether
anything was committed since it last looked, so it reads nothing when nothing was.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from modbot.app import YOUNG_COLLECTION_EVERY, App
from modbot.config.settings import Settings
from modbot.core.records import Kind, NoteRow, Report
from modbot.shell.deliverer import Deliverer
from modbot.store.sql import SqlStore
from modbot.store.sqlite import SqliteDialect, open_sqlite
from tests.conftest import BOT, MEGATHREAD_TITLE, reddit_settings
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update


async def test_unchanged_polls_and_idle_rounds_commit_nothing(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    now = [1_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url)
    async with App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app:
        await app.run_once()  # the baseline, and the first poll's health
        await app.run_once()
        commits = Commits(settings.database)
        for _ in range(5):
            now[0] += 1
            await app.run_once()
        assert commits.since() == 0
        health = await app.store.health(app.watch)  # what the process holds, it shows
        assert health.last_good_poll_at == now[0]
        assert health.last_poll_message == "unchanged"
    async with stored(settings.database) as read:  # written when the bot stopped
        assert (await read.health(app.watch)).last_good_poll_at == now[0]


async def test_the_heartbeat_is_written_every_interval_and_failures_at_once(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    now = [1_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url)
    every = 30.0  # heartbeat_interval: max(1 poll, 30 s)
    async with (
        App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app,
        stored(settings.database) as other,  # another process: `status`, `check --live`
    ):
        await app.run_once()
        first = now[0]
        assert (await other.health(app.watch)).last_good_poll_at == first
        now[0] += every / 2
        await app.run_once()
        assert (await other.health(app.watch)).last_good_poll_at == first  # held
        now[0] += every / 2
        await app.run_once()
        assert (await other.health(app.watch)).last_good_poll_at == now[0]  # written
        statuspage.misbehave("html503", count=None)
        now[0] += 1
        await app.run_once()
        failed = await other.health(app.watch)
        assert failed.last_poll_ok is False
        assert failed.last_poll_at == now[0]
        assert "503" in failed.last_error
        statuspage.heal()
        now[0] += 1
        await app.run_once()
        recovered = await other.health(app.watch)
        assert recovered.last_poll_ok is True
        assert recovered.last_good_poll_at == now[0]


async def test_an_idle_bot_still_sees_what_another_process_asks_for(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    """A notice and a pause saved by a command in another process reach the running
    bot's next round, though its idle rounds read nothing while nothing changes."""
    statuspage.set_incidents([incident("abc", "investigating", [update("u1", "x", "Hi.", 0)])])
    out = io.StringIO()
    settings = make_settings(statuspage_url=statuspage.url)
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        await app.run_once()
        assert "Hi." in out.getvalue()
        async with stored(settings.database) as other:
            body = app.runtime().bodies
            rendered = await body.notice("Known; on it.", "n1")
            note = NoteRow(
                app.watch, "n1", "Known; on it.", rendered.body, rendered.digest, "mod", 1.0
            )
            await other.add_note(note)
        report = await app.deliverer.round()
        assert [r.key for r in report.posted] == ["n1"]
        async with stored(settings.database) as other:
            await other.set_paused(app.watch, True, by="mod", now=2.0)
        found = [update("u2", "identified", "Found.", 1), update("u1", "x", "Hi.", 0)]
        statuspage.set_incidents([incident("abc", "identified", found)])
        await app.run_once()
        assert "Found." not in out.getvalue()  # paused: held
        (row,) = await app.store.deliveries(app.watch, Kind.INCIDENT, ["abc"])
        wanted = await app.store.body(app.watch, Kind.INCIDENT, "abc")
        assert wanted is not None
        assert row.delivered_hash != wanted.digest


async def test_an_idle_deliverer_rests_and_the_poller_wakes_it_for_news(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    """With nothing to do, the deliverer sleeps until its own next check instead of
    waking every poll (one wake-up per poll for an idle watch, not two); a notice that
    another process saves meanwhile still goes out within a poll or two, because the
    poller looks at the store's version after every poll and wakes it."""
    out = io.StringIO()
    settings = make_settings(statuspage_url=statuspage.url, poll_interval=0.05)
    async with App(settings, dry_run=True, out=out) as app:
        runtime = app.runtime()
        rounds = count_rounds(runtime.deliverer)
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run(stop))
        try:
            await asyncio.sleep(0.5)  # the first rounds are behind it
            before, polls = len(rounds), statuspage.count()
            await asyncio.sleep(1.0)
            assert statuspage.count() - polls >= 10  # it polls every 0.05 s
            assert len(rounds) - before <= 1  # the deliverer rests (30 s at most)

            async with stored(settings.database) as other:
                rendered = await runtime.bodies.notice("Known; on it.", "n1")
                note = NoteRow(
                    app.watch, "n1", "Known; on it.", rendered.body, rendered.digest, "mod", 1.0
                )
                await other.add_note(note)
            for _ in range(40):
                if "Known; on it." in out.getvalue():
                    break
                await asyncio.sleep(0.025)
            assert "Known; on it." in out.getvalue()
        finally:
            stop.set()
            await runner


@pytest.mark.parametrize("reddit_state", ["no megathread", "down"])
async def test_a_deliverer_with_a_check_it_cannot_finish_never_spins(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings], reddit_state: str
) -> None:
    """Found by a review of the rest above: with no megathread pinned (or Reddit down)
    at start, the start-up heal stays due and cannot run. The deliverer must come back
    at the poll interval, as before it could rest, not every 50 ms (asking Reddit for
    the megathread each time)."""
    async with FakeReddit(subreddit="ClaudeAI", **BOT) as reddit:
        if reddit_state == "down":
            reddit.add_submission(MEGATHREAD_TITLE, sticky=1)
            reddit.down = True
        settings = make_settings(
            statuspage_url=statuspage.url, poll_interval=1.0, **reddit_settings(reddit)
        )
        async with App(settings, dry_run=False, out=io.StringIO()) as app:
            runtime = app.runtime()
            rounds = count_rounds(runtime.deliverer)
            stop = asyncio.Event()
            runner = asyncio.create_task(app.run(stop))
            try:
                await asyncio.sleep(2.0)
            finally:
                stop.set()
                await runner
    assert len(rounds) <= 8  # one or two a poll interval (1 s); a spin makes 40


def count_rounds(deliverer: Deliverer) -> list[float]:
    """The times of the deliverer's rounds from now on (its rounds run as ever)."""
    times: list[float] = []
    round_of = deliverer.round

    async def counted(**kwargs: Any) -> Report:
        times.append(asyncio.get_running_loop().time())
        return await round_of(**kwargs)

    deliverer.round = counted  # type: ignore[method-assign]
    return times


class Commits:
    """Counts commits to a state file, as SQLite's ``data_version`` shows them to a
    connection of its own."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.start = self._version()

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def since(self) -> int:
        """Whether anything was committed since this counter was made (0 or 1)."""
        changed = int(self._version() != self.start)
        self.db.close()
        return changed


@asynccontextmanager
async def stored(path: object) -> AsyncIterator[SqlStore[SqliteDialect]]:
    """The state file opened as another process would."""
    assert isinstance(path, Path)
    store = await open_sqlite(path)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.slow
async def test_every_watch_keeps_one_connection_to_its_page(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """25 watches (httpx's default pool keeps 20) poll over one connection each, and
    keep it across an idle gap longer than httpx's default 5 s."""
    async with AsyncExitStack() as stack:
        pages = [await stack.enter_async_context(FakeStatuspage()) for _ in range(25)]
        path = tmp_path / "modbot.toml"
        path.write_text(
            "".join(
                f'[[watch]]\nname = "w{n}"\nurl = "{page.url}"\nkind = "statuspage"\n'
                for n, page in enumerate(pages)
            )
        )
        settings = make_settings(config=path, poll_interval=10.0)
        async with App(settings, dry_run=True, out=io.StringIO()) as app:
            for _ in range(3):
                await app.run_once()
            await asyncio.sleep(6)
            await app.run_once()
    assert [page.count() for page in pages] == [4] * 25
    assert [page.connections("modbot") for page in pages] == [1] * 25


def test_a_long_run_moves_what_start_up_loaded_out_of_the_collectors_sight() -> None:
    # In a process of its own: freezing is for the whole process, and not the tests'.
    code = (
        "import gc\n"
        "from modbot.app import settle_memory\n"
        "before = gc.get_freeze_count()\n"
        "settle_memory()\n"
        "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold()[0])"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.split() == ["0", "True", str(YOUNG_COLLECTION_EVERY)]
