"""Two processes, one PostgreSQL store: one leads at a time, a follower takes over when
the lead frees, and a deposed leader's late answer is fenced out (a real PostgreSQL,
the fake Reddit and the fake status page; the processes are two ``App``s in one test,
each with its own connections, so the database cannot tell them from two machines)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.records import Kind
from modbot.errors import Deposed, StoreError
from modbot.store.postgres import PgLease, PostgresDialect, open_postgres
from modbot.store.sql import SqlStore
from modbot.store.sqlite import open_sqlite
from tests.conftest import BOT, page_env, reddit_settings, run_cli
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

LEASE = 0.2


def opened(status: str = "investigating", *more: dict[str, Any]) -> dict[str, Any]:
    return incident("inc1", status, [*more, update("u0", "investigating", "Looking.", 0)])


def live(reddit: FakeReddit) -> list[Any]:
    return [c for c in reddit.comments_by(BOT["username"]) if not c.deleted]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def until_led_by(app: App, host: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await leader_of(app) != host:
        assert time.monotonic() < deadline, f"{host} did not take the lead"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(app: App) -> AsyncIterator[asyncio.Event]:
    """``app.run`` in a task, stopped (and awaited) on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@pytest.fixture
def shared(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    postgres_url: str,
) -> Settings:
    statuspage.set_incidents([])
    return make_settings(
        statuspage_url=statuspage.url,
        database=postgres_url,
        lease_interval=LEASE,
        reddit_calls_per_minute=600,
        **reddit_settings(reddit),
    )


def bot(settings: Settings, host: str) -> App:
    app = App(settings, dry_run=False, out=io.StringIO())
    app.member = (host, 4242)
    return app


async def leader_of(app: App) -> str | None:
    who = await app.store.leadership(app.deployment, LEASE)
    return who.leader.host if who is not None and who.leader is not None else None


def terminate(url: str, backend_pid: int) -> None:
    """Cut one session, as a network partition does (the server frees its locks)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (backend_pid,))  # until gone


async def test_one_process_leads_the_other_waits_and_takes_over(
    shared: Settings, statuspage: FakeStatuspage, reddit: FakeReddit
) -> None:
    from modbot.cli import service

    async with bot(shared, "machine-a") as a, bot(shared, "machine-b") as b:
        stop_a = asyncio.Event()
        task_a = asyncio.create_task(a.run(stop_a))
        await until_led_by(a, "machine-a")
        async with running(b):
            statuspage.set_incidents([opened()])
            await until(lambda: len(live(reddit)) == 1)
            await asyncio.sleep(3 * LEASE)
            assert await leader_of(b) == "machine-a"
            status = io.StringIO()
            await service.status(shared, status)
            assert "leader:      machine-a pid 4242" in status.getvalue()
            assert "followers:   1 waiting" in status.getvalue()
            assert "  machine-b pid 4242, waiting since" in status.getvalue()
            as_json = io.StringIO()
            await service.status(shared, as_json, as_json=True)
            record = json.loads(as_json.getvalue())
            assert record["leadership"]["leader"]["host"] == "machine-a"
            assert [f["host"] for f in record["leadership"]["followers"]] == ["machine-b"]
            posts_before = reddit.count("POST", "/api/comment")
            stop_a.set()  # SIGTERM: A stops and gives the lead up on its way out
            await asyncio.wait_for(task_a, 15)
            started = time.monotonic()
            await until_led_by(b, "machine-b")
            took = time.monotonic() - started
            statuspage.set_incidents([opened("resolved", update("u1", "resolved", "Fixed.", 60))])
            await until(lambda: "Fixed." in live(reddit)[0].body)
    (comment,) = live(reddit)  # edited by the new leader, never posted again
    assert reddit.count("POST", "/api/comment") == posts_before == 1
    assert took <= LEASE + 1.0  # one lease check, plus slack for a loaded machine
    assert comment.body.endswith("[](#modbot-inc-inc1)")


async def test_a_follower_keeps_waiting_when_its_database_connection_breaks(
    shared: Settings, postgres_url: str
) -> None:
    async with bot(shared, "machine-a") as a, bot(shared, "machine-b") as b, running(a):
        await until_led_by(a, "machine-a")
        stop_b = asyncio.Event()
        task_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(3 * LEASE)
        assert isinstance(b.store, SqlStore)
        assert isinstance(b.store.dialect, PostgresDialect)
        assert b.store.dialect._conn is not None
        terminate(postgres_url, b.store.dialect._conn.info.backend_pid)  # e.g. a server restart
        await asyncio.sleep(5 * LEASE)
        assert not task_b.done()  # still a follower, not an exited process
        stop_b.set()
        await asyncio.wait_for(task_b, 10)


async def test_a_cut_off_leaders_late_answer_is_fenced_and_the_next_adopts_its_comment(
    shared: Settings,
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with bot(shared, "machine-a") as a, bot(shared, "machine-b") as b, running(a):
        await until_led_by(a, "machine-a")
        async with running(b):
            await asyncio.sleep(2 * LEASE)
            # Reddit stores A's comment but holds the answer; meanwhile A's database
            # session is cut, and B leads.
            reddit.delay_next("POST", "/api/comment", 2.0, when="after")
            statuspage.set_incidents([opened()])
            await until(lambda: len(live(reddit)) == 1)
            assert isinstance(a.lease, PgLease)
            assert a.lease._conn is not None
            terminate(postgres_url, a.lease._conn.info.backend_pid)
            await until_led_by(b, "machine-b")
            await until_posted(b)
            # A got its answer late: its write was refused, and it follows again.
            await asyncio.sleep(2.5)
            assert await leader_of(a) == "machine-b"
            statuspage.set_incidents([opened("resolved", update("u1", "resolved", "Fixed.", 60))])
            await until(lambda: "Fixed." in live(reddit)[0].body)
    assert len(live(reddit)) == 1
    assert reddit.count("POST", "/api/comment") == 1
    assert any("another process now leads" in r.getMessage() for r in caplog.records) or any(
        "lost the lead" in r.getMessage() for r in caplog.records
    )
    assert not [r for r in caplog.records if r.exc_info]


async def until_posted(app: App, timeout: float = 10.0) -> None:
    """Until the incident's one delivery row is ``posted`` (adopted by its marker)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await app.store.deliveries(app.watch, Kind.INCIDENT, ["inc1"])
        if [r.state for r in rows] == ["posted"]:
            return
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)


async def test_a_write_under_an_old_epoch_is_refused(postgres_url: str) -> None:
    first = await open_postgres(postgres_url)
    second = await open_postgres(postgres_url)
    try:
        lease_a = await first.lease("r/x", "a", 1, interval=60)
        lease_b = await second.lease("r/x", "b", 2, interval=60)
        assert await lease_a.acquire(1.0) == 1
        assert await lease_b.acquire(1.0) is None  # a follower while A holds the lock
        row = await first.start_delivery("w", Kind.INCIDENT, "inc1", "t1", now=1.0)
        assert row is not None
        assert isinstance(lease_a, PgLease)
        assert lease_a._conn is not None
        terminate(postgres_url, lease_a._conn.info.backend_pid)
        assert await lease_b.acquire(2.0) == 2
        with pytest.raises(Deposed, match="another process now leads r/x"):
            await first.record_poll("w", ok=True, message="late", now=3.0)
        with pytest.raises(Deposed):  # checked right before anything is sent to Reddit
            await first.confirm_lead()
        await second.confirm_lead()
        assert not await lease_a.holding(3.0)
        await second.record_poll("w", ok=True, message="mine", now=3.0)  # B writes
        assert (await second.health("w")).last_poll_message == "mine"
        who = await second.leadership("r/x", 60)
        assert who is not None
        assert who.epoch == 2
        assert who.leader is not None
        assert who.leader.host == "b"
        other = await second.lease("r/y", "b", 2, interval=60)  # another deployment: free
        assert await other.acquire(3.0) == 1
        await other.release()
        await lease_b.release()
        assert await lease_a.acquire(4.0) == 3  # a new leadership, a new epoch
        await lease_a.release()
    finally:
        await first.close()
        await second.close()


async def test_a_leader_that_stops_proving_its_lead_is_deposed(postgres_url: str) -> None:
    """A paused or hung leader keeps its session (its kernel still answers keepalives),
    so the lock alone would never free: the follower ends that session once the leader
    has been silent for three intervals, and the new epoch fences the old leader out."""
    first = await open_postgres(postgres_url)
    second = await open_postgres(postgres_url)
    try:
        lease_a = await first.lease("r/x", "a", 1, interval=0.1)
        lease_b = await second.lease("r/x", "b", 2, interval=0.1)
        assert await lease_a.acquire(0.0) == 1
        assert await lease_a.holding(0.0)
        assert await lease_b.acquire(0.0) is None  # A proved its lead just now
        await asyncio.sleep(2.6)  # A misses three proofs (and the margin): "paused"
        assert await lease_b.acquire(0.0) == 2
        with pytest.raises(Deposed):
            await first.record_poll("w", ok=True, message="woke up late", now=1.0)
        assert not await lease_a.holding(0.0)
        who = await second.leadership("r/x", 0.1)
        assert who is not None
        assert who.leader is not None
        assert who.leader.host == "b"
        await lease_b.release()
    finally:
        await first.close()
        await second.close()


async def test_a_deposed_leaders_late_edit_is_put_right(
    shared: Settings, statuspage: FakeStatuspage, reddit: FakeReddit, postgres_url: str
) -> None:
    """A's edit was sent before it lost the lead and lands after B's newer one: B reads
    the comments again once such calls can no longer land, and edits it back."""

    def with_updates(*updates: dict[str, Any]) -> dict[str, Any]:
        return incident("inc1", "identified", [*updates, update("u0", "investigating", "x", 0)])

    one = update("u1", "identified", "VERSION-ONE", 30)
    two = update("u2", "identified", "VERSION-TWO", 60)
    async with bot(shared, "machine-a") as a, bot(shared, "machine-b") as b, running(a):
        await until_led_by(a, "machine-a")
        async with running(b):
            statuspage.set_incidents([opened()])
            await until(lambda: len(live(reddit)) == 1)
            await asyncio.sleep(2 * LEASE)
            reddit.delay_next("POST", "/api/editusertext", 1.5, when="before")
            statuspage.set_incidents([with_updates(one)])
            await until(lambda: reddit.count("POST", "/api/editusertext") >= 1)  # in flight
            assert isinstance(a.lease, PgLease)
            assert a.lease._conn is not None
            terminate(postgres_url, a.lease._conn.info.backend_pid)
            statuspage.set_incidents([with_updates(two, one)])
            await until_led_by(b, "machine-b")
            await asyncio.sleep(2.0)  # A's late edit has landed, over B's newer one
            await until(lambda: "VERSION-TWO" in live(reddit)[0].body, 15)
    (comment,) = live(reddit)
    assert "VERSION-TWO" in comment.body


# --- migrate-store ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_migrate_store_copies_a_state_file_into_postgresql(
    statuspage: FakeStatuspage, tmp_path: Path, postgres_url: str
) -> None:
    statuspage.set_incidents([opened()])
    env = page_env(statuspage, tmp_path)
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    assert (await run_cli("post", "Maintenance tonight.", env=env, cwd=tmp_path)).code == 0
    before = (await run_cli("status", env=env, cwd=tmp_path)).out

    moved = await run_cli("migrate-store", "--to", postgres_url, env=env, cwd=tmp_path)
    assert moved.code == 0, moved.err
    assert "Copied the state" in moved.out
    after = (
        await run_cli("status", env={**env, "MODBOT_DATABASE": postgres_url}, cwd=tmp_path)
    ).out
    assert _without_mode(after) == _without_mode(before)

    again = await run_cli("migrate-store", "--to", postgres_url, env=env, cwd=tmp_path)
    assert again.code == 1
    assert "copies into an empty store only" in again.err
    assert again.err.count("\n") == 1

    back = tmp_path / "back.sqlite3"  # and back again, into a new state file
    pg_env = {**env, "MODBOT_DATABASE": postgres_url}
    returned = await run_cli("migrate-store", "--to", str(back), env=pg_env, cwd=tmp_path)
    assert returned.code == 0, returned.err
    round_trip = (
        await run_cli("status", env={**env, "MODBOT_DATABASE": str(back)}, cwd=tmp_path)
    ).out
    assert _without_mode(round_trip) == _without_mode(before)


def _without_mode(status: str) -> str:
    return "\n".join(line for line in status.splitlines() if not line.startswith("watch:"))


@pytest.mark.slow
async def test_migrate_store_refuses_while_a_bot_runs_on_the_state_file(
    statuspage: FakeStatuspage, tmp_path: Path, postgres_url: str
) -> None:
    statuspage.set_incidents([])
    env = page_env(statuspage, tmp_path)
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    store = await open_sqlite(tmp_path / "state.sqlite3")
    lease = await store.lease("any", "here", 1, interval=5)
    await lease.acquire(0.0)  # what a running `modbot run` holds
    try:
        refused = await run_cli("migrate-store", "--to", postgres_url, env=env, cwd=tmp_path)
        into_file = await run_cli("migrate-store", "--to", "copy.sqlite3", env=env, cwd=tmp_path)
    finally:
        await lease.release()
    assert refused.code == 1
    assert "a bot is running on" in refused.err
    assert "nothing was copied" in refused.err
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone() == (0,)
    assert into_file.code == 1
    assert not (tmp_path / "copy.sqlite3").exists()  # no empty file left behind

    await store.shut_out()  # a copy in progress keeps a starting bot out
    try:
        with pytest.raises(StoreError, match="is being copied by modbot migrate-store"):
            await lease.acquire(0.0)
    finally:
        await store.let_in()
        await store.close()


@pytest.mark.slow
async def test_migrate_store_refuses_the_same_store_and_keyword_strings(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    statuspage.set_incidents([])
    env = page_env(statuspage, tmp_path)
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    same = await run_cli("migrate-store", "--to", "./state.sqlite3", env=env, cwd=tmp_path)
    assert same.code == 2
    assert "names the store the bot uses now" in same.err
    secret = "s3cretE"
    keywords = f"host=127.0.0.1 password={secret} dbname=x"
    refused = await run_cli("migrate-store", "--to", keywords, env=env, cwd=tmp_path)
    assert refused.code == 2
    assert "write it as a URL" in refused.err
    assert secret not in refused.out + refused.err
    assert not list(tmp_path.glob("host=*"))
