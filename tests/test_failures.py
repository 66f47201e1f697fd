"""Machines fill their disks and lose files: a broken state file or template never takes
the bot down, a failed write loses no change, a lost file makes no duplicate."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from modbot import default_templates_dir
from modbot.app import App
from modbot.config.database import DatabaseURL
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.errors import StoreError
from modbot.store.sql import SqlStore
from modbot.store.sqlite import SqliteDialect, open_sqlite
from tests.conftest import (
    StateLocation,
    page_env,
    reddit_env,
    reddit_settings,
    run_cli,
    start_bot,
    until,
)
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage
from tests.test_reddit_delivery import stage

COMMANDS = [
    ("run", "--once"),
    ("check",),
    ("status",),
    ("post", "hello"),
    ("pause",),
]


def live(reddit: FakeReddit) -> list[Comment]:
    return [c for c in reddit.comments_by("modbot") if not c.deleted]


# --- a lost state file never makes a duplicate ------------------------------------------------


def lose(database: Path | DatabaseURL) -> None:
    """The state is lost between two runs: the SQLite file is deleted, or the PostgreSQL
    database emptied (every table of the store dropped)."""
    if isinstance(database, Path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        return
    with psycopg.connect(database.url, autocommit=True, connect_timeout=10) as raw:
        raw.execute("DROP SCHEMA public CASCADE")
        raw.execute("CREATE SCHEMA public")


async def test_a_fresh_state_file_adopts_the_comments_already_posted(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    state_location: StateLocation,
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, database=state_location, **reddit_settings(reddit)
    )
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    (comment,) = live(reddit)
    lose(settings.database)
    statuspage.set_incidents([stage(1)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    assert [c.id for c in live(reddit)] == [comment.id]  # adopted, edited, not posted again
    assert "Identified" in reddit.comments[comment.id].body


async def test_a_fresh_state_file_keeps_updating_a_comment_whose_incident_resolved_meanwhile(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    state_location: StateLocation,
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, database=state_location, **reddit_settings(reddit)
    )
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    (comment,) = live(reddit)
    lose(settings.database)
    statuspage.set_incidents([stage(3)])  # resolved while the bot had no state
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()  # the first poll is a baseline; its comment is found
        await app.run_once()
    assert [c.id for c in live(reddit)] == [comment.id]
    assert "Resolved" in reddit.comments[comment.id].body


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "emptied"])
async def test_a_state_file_lost_while_the_bot_runs_stops_it_before_a_duplicate(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path, how: str
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    database = tmp_path / "state.sqlite3"
    statuspage.set_incidents([stage(0)])
    bot = await start_bot(env, tmp_path)
    await until(lambda: len(live(reddit)) == 1)
    if how == "deleted":
        database.unlink()
    else:
        database.write_bytes(b"")
    statuspage.set_incidents([stage(1), stage(0, "other")])
    await asyncio.wait_for(bot.wait(), 10)
    assert bot.returncode == 1
    assert bot.stderr is not None
    err = (await bot.stderr.read()).decode()
    assert "was deleted, emptied or replaced" in err
    assert "Traceback" not in err
    assert len(live(reddit)) == 1  # nothing posted on a state nobody will read
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    again = await start_bot(env, tmp_path)  # a restart rebuilds from Reddit: no duplicate
    try:
        await until(lambda: len(live(reddit)) == 2 and "Identified" in live(reddit)[0].body)
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.wait(), 5)
    markers = sorted(marker_of(c.body) or "" for c in live(reddit))
    assert markers == ["inc-inc1", "inc-other"]


# --- damaged, foreign and read-only state files -------------------------------------------------


def damage(database: Path) -> None:
    """Garbage in a later page of a valid file: the header still says SQLite."""
    raw = sqlite3.connect(database)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.execute("PRAGMA journal_mode = DELETE")
    raw.close()
    size = database.stat().st_size
    with database.open("r+b") as file:
        file.seek(4096)
        # Seeded: the same garbage on every run, so a run cannot draw a page that reads.
        file.write(random.Random(4096).randbytes(size - 4096))


@pytest.mark.slow
async def test_a_damaged_state_file_is_one_line_everywhere_and_never_written(
    statuspage: FakeStatuspage, reddit: FakeReddit, tmp_path: Path
) -> None:
    env = page_env(statuspage, tmp_path, **reddit_env(reddit))
    statuspage.set_incidents([stage(0)])
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    database = tmp_path / "state.sqlite3"
    damage(database)
    before = database.read_bytes()
    posted = len(reddit.comments_by("modbot"))
    for command in COMMANDS:
        result = await run_cli(*command, env=env, cwd=tmp_path)
        assert result.code != 0, command
        assert "Traceback" not in result.err, (command, result.err)
        said = (result.out + result.err).lower()
        assert "damaged" in said or "malformed" in said, (command, result.out, result.err)
    check = await run_cli("check", env=env, cwd=tmp_path)
    assert "BROKEN" in check.out
    assert "backup" in check.out
    assert database.read_bytes() == before  # nothing was written to it
    assert len(reddit.comments_by("modbot")) == posted  # nothing was posted on its word


# Where a leaf page of the incidents table is damaged: in its cells (the check lists what
# it finds) or in its header (the check itself stops with SQLITE_CORRUPT, a finding too).
DAMAGE = {"cells": (200, b"\xa5" * 3000), "header": (0, b"\xff" * 8)}


@pytest.mark.parametrize("where", sorted(DAMAGE))
async def test_a_start_looks_at_the_state_file_briefly_and_check_deep_reads_it_all(
    statuspage: FakeStatuspage, tmp_path: Path, where: str
) -> None:
    """A start reads the header and each table's first page, in a time that does not
    grow with the history; ``check --deep`` reads every page and finds the damage deep
    in the file, in one line."""
    env = page_env(statuspage, tmp_path)
    statuspage.set_incidents(
        [stage(3, f"old{n:04d}") for n in range(150)]  # resolved: a baseline, in pages
    )
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    database = tmp_path / "state.sqlite3"
    raw = sqlite3.connect(database)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.execute("PRAGMA journal_mode = DELETE")
    # A leaf of the incidents table in the middle of it, never its first page.
    leaves = [
        number
        for (number,) in raw.execute(
            "SELECT pageno FROM dbstat WHERE name = 'incidents' AND pagetype = 'leaf' "
            "ORDER BY pageno"
        )
    ]
    raw.close()
    assert len(leaves) > 2
    with database.open("r+b") as file:
        offset, garbage = DAMAGE[where]
        file.seek((leaves[len(leaves) // 2] - 1) * 4096 + offset)
        file.write(garbage)
    quick = await run_cli("check", env=env, cwd=tmp_path)
    deep = await run_cli("check", "--deep", env=env, cwd=tmp_path)
    assert "state file:   ok:" in quick.out, quick.out
    assert "state file:   BROKEN:" in deep.out, deep.out
    assert "damaged" in deep.out
    assert deep.code == 1
    broken = next(line for line in deep.out.splitlines() if line.startswith("state file"))
    assert "(***" not in broken, broken  # one finding, one line
    assert broken.endswith(")"), broken


async def test_another_programs_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="another program's SQLite database"):
        await open_sqlite(path)
    raw = sqlite3.connect(path)
    assert [r[0] for r in raw.execute("SELECT name FROM sqlite_master")] == ["photos"]
    raw.close()


@pytest.mark.parametrize(
    ("version", "tables"),
    [
        (0, ["deliveries (id INTEGER PRIMARY KEY, parcel TEXT)"]),
        (0, ["kv (k, v)", "pages (url)", "feeds (url)", "deliveries (id)"]),
        (3, ["deliveries (id INTEGER PRIMARY KEY, parcel TEXT)", "feeds (url)"]),
        (1, ["kv (key TEXT PRIMARY KEY, value TEXT)"]),
        (42, ["deliveries (id)", "incidents (id)"]),
    ],
)
async def test_another_programs_file_with_a_table_named_like_ours_is_refused_and_left_alone(
    tmp_path: Path, version: int, tables: list[str]
) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    for table in tables:
        raw.execute(f"CREATE TABLE {table}")
    raw.execute(f"PRAGMA user_version = {version}")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        await open_sqlite(path)
    assert str(caught.value) == (
        f"{path} is another program's SQLite database, not a modbot state file; "
        "point MODBOT_DATABASE at a file of modbot's own"
    )
    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_text("my notes, not a database")
    with pytest.raises(StoreError, match="not a modbot state file"):
        await open_sqlite(path)
    assert path.read_text() == "my notes, not a database"


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder the bot cannot write to: a read-only mount as root, permissions otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("running as root without the right to mount: cannot make a read-only folder")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def make_read_only(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        for path in folder.iterdir():
            path.chmod(0o400)


@pytest.mark.slow
async def test_a_read_only_state_file_is_one_clear_line(
    statuspage: FakeStatuspage, tmp_path: Path, read_only_folder: Path
) -> None:
    env = page_env(statuspage, tmp_path)
    env["MODBOT_DATABASE"] = str(read_only_folder / "state.sqlite3")
    statuspage.set_incidents([stage(0)])
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    make_read_only(read_only_folder)
    for command in (("run", "--once"), ("pause",), ("check",)):
        result = await run_cli(*command, env=env, cwd=tmp_path)
        assert result.code != 0, command
        assert "Traceback" not in result.err, result.err
        assert "cannot be written" in result.out + result.err, (command, result.out, result.err)


# --- a failed write loses no change --------------------------------------------------------------


async def test_a_change_seen_while_the_disk_was_full_is_applied_afterwards(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([])
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        assert isinstance(app.store, SqlStore)
        sqlite = app.store.dialect
        assert isinstance(sqlite, SqliteDialect)
        pages = await sqlite.call(lambda: sqlite.db.execute("PRAGMA page_count").fetchone()[0])
        await sqlite.call(lambda: sqlite.db.execute(f"PRAGMA max_page_count = {pages}"))
        statuspage.set_incidents([stage(0, f"big{n}") for n in range(30)])
        with pytest.raises(StoreError, match="disk is full"):
            await app.run_once()  # the page changed, and saving it failed
        await sqlite.call(lambda: sqlite.db.execute("PRAGMA max_page_count = 1073741823"))
        await app.run_once()  # the same page again: not a 304, the change is applied
    assert out.getvalue().count("[dry-run] NEW") == 30
    assert statuspage.requests[-1].status == 200


async def test_a_full_disk_is_said_once_when_it_starts_and_once_when_it_ends(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(statuspage_url=statuspage.url, poll_interval=0.02)
    statuspage.set_incidents([])
    out, stop = io.StringIO(), asyncio.Event()

    def said(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        assert isinstance(app.store, SqlStore)
        sqlite = app.store.dialect
        assert isinstance(sqlite, SqliteDialect)
        runner = asyncio.create_task(app.run(stop))
        for episode in (1, 2):
            pages = await sqlite.call(lambda: sqlite.db.execute("PRAGMA page_count").fetchone()[0])
            await sqlite.call(lambda p=pages: sqlite.db.execute(f"PRAGMA max_page_count = {p}"))
            statuspage.set_incidents([stage(0, f"big{episode}n{n}") for n in range(10)])
            polls = statuspage.count() + 10
            await until(lambda polls=polls: statuspage.count() >= polls)  # 10 that cannot save
            assert said("disk is full") == episode
            await sqlite.call(lambda: sqlite.db.execute("PRAGMA max_page_count = 1073741823"))
            await until(lambda episode=episode: said("state file writable again") == episode)
            await until(lambda episode=episode: out.getvalue().count("NEW") == 10 * episode)
        stop.set()
        await asyncio.wait_for(runner, 5)
    assert said("disk is full") == 2


# --- a broken template never stops the updates ----------------------------------------------------


async def test_a_bot_started_with_a_broken_template_uses_the_shipped_ones_and_says_so(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    (folder / "incident.md.j2").write_text("{% if %}")
    settings = make_settings(statuspage_url=statuspage.url, templates_dir=folder)
    statuspage.set_incidents([stage(0)])
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        health = await app.store.health(app.watch)
        (folder / "incident.md.j2").write_text("FIXED {{ incident.name }}")
        statuspage.set_incidents([stage(1)])
        await app.run_once()
        fixed = await app.store.health(app.watch)
    assert "Investigating" in out.getvalue()  # the update went out, in the shipped look
    assert "shipped defaults" in health.templates
    assert "incident.md.j2, line 1" in health.templates
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("TEMPLATES BROKEN" in message for message in errors)
    assert fixed.templates == str(folder)
    assert "FIXED" in out.getvalue()


@pytest.mark.slow
async def test_commands_that_do_not_render_work_while_a_template_is_broken(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    env = page_env(statuspage, tmp_path, MODBOT_TEMPLATES_DIR=str(folder))
    statuspage.set_incidents([stage(0)])
    assert (await run_cli("run", "--once", env=env, cwd=tmp_path)).code == 0
    (folder / "manual.md.j2").write_text("{{ broken")
    for command in (("status",), ("pause",), ("resume",)):
        result = await run_cli(*command, env=env, cwd=tmp_path)
        assert result.code == 0, (command, result.err)
    status = await run_cli("status", env=env, cwd=tmp_path)
    assert "templates:" in status.out


# --- a notice too long for Reddit keeps its footer ------------------------------------------------


async def test_a_long_notice_is_cut_but_never_its_footer(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([])
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        outcome = await app.operations.post_notice("word " * 3000, source="cli")
    body = out.getvalue().split("-" * 72 + "\n")[2]
    assert len(body.strip()) <= 10_000
    assert "Posted by the moderators with modbot." in body
    assert marker_of(body.strip()) is not None
    assert "did not fit and were cut" in outcome.text


# --- a new megathread is noticed before the next delivery ---------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_rotated_megathread_is_noticed_before_the_next_edit(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    values = reddit_settings(reddit) | {"megathread_check_interval": 300.0}
    settings = make_settings(statuspage_url=statuspage.url, **values)
    clock = Clock()
    statuspage.set_incidents([stage(0)])
    async with App(settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
        await app.run_once()
        old = reddit.megathread  # type: ignore[attr-defined]
        new = reddit.add_submission("Performance and Bugs Megathread (week 48)", sticky=1)
        clock.now += 20
        before = reddit.count()
        await app.run_once()  # nothing to deliver: no lookup, no call at all
        assert reddit.count() == before
        clock.now += 45  # the last lookup is now over a minute old
        statuspage.set_incidents([stage(1)])
        await app.run_once()
    (moved,) = [c for c in live(reddit) if c.submission_id == new.id]
    assert "Identified" in moved.body
    (pointer,) = [c for c in live(reddit) if c.submission_id == old.id]
    assert "now tracked in the current megathread" in pointer.body
