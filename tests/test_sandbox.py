"""Templates run in a worker process with a time and a memory limit, and a template
change re-renders only what readers still see."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modbot import default_templates_dir
from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.core.render import sample_jobs
from modbot.errors import TemplateError
from modbot.rendering.files import read_templates
from modbot.rendering.sandbox import RenderWorker
from tests.conftest import page_env, reddit_settings, run_cli, start_bot
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage
from tests.test_reddit_delivery import stage

RUNAWAY = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"
HUGE = "{{ ''|center(10**9) }}"
FOLDED = "{{ 'a' * 10**8 }}"  # Jinja computes constant output while compiling


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), copy)
    return copy


@pytest.mark.parametrize(
    ("source", "problem"),
    [(RUNAWAY, "took longer than 0.5 s"), (HUGE, "exceeds the memory limit")],
    ids=["runaway", "huge"],
)
async def test_a_runaway_or_huge_template_is_stopped_with_one_line(
    folder: Path, source: str, problem: str
) -> None:
    (folder / "incident.md.j2").write_text(source)
    worker = RenderWorker(timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError, match=problem) as caught:
            await worker.check(read_templates(folder), 10_000)
        assert "\n" not in str(caught.value)
        assert "incident.md.j2" in str(caught.value)
        assert time.monotonic() - started < 5
        good = read_templates(default_templates_dir())
        name, context = sample_jobs(good)[0]
        text, _ = await worker.render(good, name, context, 10_000)  # a fresh worker took over
        assert text
    finally:
        await worker.close()


async def test_a_constant_too_big_to_compile_is_one_line_and_the_worker_lives_on(
    folder: Path,
) -> None:
    (folder / "incident.md.j2").write_text(FOLDED)
    worker = RenderWorker(timeout=30)
    try:
        with pytest.raises(TemplateError) as caught:
            await worker.check(read_templates(folder), 10_000)
        assert str(caught.value) == f"{folder / 'incident.md.j2'}: exceeds the memory limit"
        good = read_templates(default_templates_dir())
        name, context = sample_jobs(good)[0]
        assert (await worker.render(good, name, context, 10_000))[0]
    finally:
        await worker.close()


@pytest.mark.slow
async def test_check_reports_a_constant_too_big_to_compile_in_one_line(
    folder: Path, tmp_path: Path
) -> None:
    (folder / "incident.md.j2").write_text(FOLDED)
    env = {
        "MODBOT_TEMPLATES_DIR": str(folder),
        "MODBOT_DATABASE": str(tmp_path / "s.sqlite3"),
        "MODBOT_RENDER_TIMEOUT": "30",
    }
    result = await run_cli("check", env=env, cwd=tmp_path)
    assert result.code == 1
    (line,) = [line for line in result.out.splitlines() if "incident.md.j2" in line]
    assert line == f"templates:    BROKEN: {folder / 'incident.md.j2'}: exceeds the memory limit"
    assert result.err == ""


@pytest.mark.slow
@pytest.mark.parametrize("source", [RUNAWAY, HUGE], ids=["runaway", "huge"])
async def test_check_reports_a_runaway_template_as_broken(
    folder: Path, tmp_path: Path, source: str
) -> None:
    (folder / "incident.md.j2").write_text(source)
    env = {
        "MODBOT_TEMPLATES_DIR": str(folder),
        "MODBOT_DATABASE": str(tmp_path / "s.sqlite3"),
        "MODBOT_RENDER_TIMEOUT": "1",
    }
    result = await run_cli("check", env=env, cwd=tmp_path)
    assert result.code == 1
    (line,) = [line for line in result.out.splitlines() if line.startswith("templates:")]
    assert "BROKEN" in line
    assert "Traceback" not in result.err


async def test_a_runaway_template_change_keeps_the_last_good_templates(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    folder: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, templates_dir=folder, render_timeout=0.5
    )
    statuspage.set_incidents([stage(0)])
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        (folder / "incident.md.j2").write_text(RUNAWAY)
        statuspage.set_incidents([stage(1)])
        await app.run_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("template change rejected" in e and "took longer" in e for e in errors)
    assert out.getvalue().count("[dry-run] EDIT") == 1  # the update went out, old look
    assert "Identified" in out.getvalue()


@pytest.mark.slow
async def test_sigterm_stops_the_bot_while_a_template_runs_away(
    statuspage: FakeStatuspage, folder: Path, tmp_path: Path
) -> None:
    statuspage.set_incidents([stage(0)])
    env = page_env(statuspage, tmp_path, MODBOT_TEMPLATES_DIR=str(folder))
    env["MODBOT_RENDER_TIMEOUT"] = "60"  # the template would hold the render for a minute
    bot = await start_bot(env, tmp_path)
    try:
        await asyncio.sleep(1.5)  # started, first comment printed
        (folder / "incident.md.j2").write_text(RUNAWAY)
        await asyncio.sleep(1.0)  # the check of the new template is running now
        loop = asyncio.get_running_loop()
        started = loop.time()
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 30)
        # Its shutdown is bounded by a few seconds; the template alone would hold it for
        # a minute. Under a loaded machine the process takes longer to exit: the bound
        # here is the difference that matters, not the few seconds themselves.
        assert loop.time() - started < 15
    finally:
        if bot.returncode is None:
            bot.kill()
    assert bot.returncode == 0
    assert bot.stderr is not None
    assert "Traceback" not in (await bot.stderr.read()).decode()


# --- what a template change re-renders ------------------------------------------------------


async def test_a_template_change_re_renders_only_what_readers_still_see(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    folder: Path,
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, templates_dir=folder, **reddit_settings(reddit)
    )
    statuspage.set_incidents([stage(0, "open"), stage(0, "recent"), stage(0, "old")])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        statuspage.set_incidents([stage(1, "open"), stage(3, "recent"), stage(3, "old")])
        await app.run_once()
        raw = sqlite3.connect(settings.database)  # "old" was resolved two days ago
        raw.execute("UPDATE incidents SET closed_at = closed_at - 172800 WHERE incident_id = 'old'")
        raw.commit()
        raw.close()
        before = {marker_of(c.body): len(c.history) for c in reddit.comments_by("modbot")}
        template = folder / "incident.md.j2"
        template.write_text(template.read_text().replace("Affected:", "Components hit:"))
        await app.run_once()
        after = {marker_of(c.body): c for c in reddit.comments_by("modbot")}
        assert len(after["inc-open"].history) == before["inc-open"] + 1
        assert len(after["inc-recent"].history) == before["inc-recent"] + 1
        assert len(after["inc-old"].history) == before["inc-old"]  # left as it was
        assert "Components hit:" not in after["inc-old"].body
        outcome = await app.operations.refresh(every=True)  # ``modbot refresh --all``
        assert "re-rendered 3 incident(s); 1 comment(s) changed" in outcome.text
        assert "Components hit:" in after["inc-old"].body


async def test_a_set_of_templates_travels_once_and_again_when_the_worker_dropped_it(
    folder: Path,
) -> None:
    """The worker keeps the last sets it was sent, compiled, and is then asked by
    digest alone; one it has dropped (it keeps 16) is sent again, not failed."""
    worker = RenderWorker(timeout=5.0)
    sets = []
    for number in range(18):
        (folder / "manual.md.j2").write_text(f"set {number}: {{{{ text }}}}")
        sets.append(read_templates(folder))
    context = next(c for name, c in sample_jobs(sets[0]) if name == "manual.md.j2")
    try:
        for number in [*range(18), 0, 0, 17]:
            text, _ = await worker.render(sets[number], "manual.md.j2", context, 10_000)
            assert text.startswith(f"set {number}: ")
    finally:
        await worker.close()


async def test_an_update_travels_to_the_worker_once_and_again_when_it_was_dropped() -> None:
    """Updates the worker was sent are named by number afterwards; when the worker does
    not have what a request names (here: the numbers the bot remembers are made wrong),
    it says so and gets them all again, and every body is whole."""
    from modbot.core.records import PageInfo, UpdateView
    from modbot.core.render import incident_job, link_hosts, sample_incident

    page = PageInfo("status.example.com", "https://status.example.com")
    hosts = link_hosts(page.url)
    templates = read_templates(default_templates_dir())
    worker = RenderWorker(timeout=5.0)
    try:
        for count in range(1, 8):
            updates = tuple(
                UpdateView(f"u{n}", "investigating", f"Update number {n}.", None)
                for n in range(count)
            )
            view = dataclasses.replace(sample_incident(), updates=updates)
            job = incident_job(view, page, hosts=hosts, subreddit="x")
            (result,) = await worker.render_batch(templates, [(job.name, job.context, job.limit)])
            assert not isinstance(result, TemplateError)
            assert result[1] == 0
            assert all(f"Update number {n}." in result[0] for n in range(count))
            if count == 4:
                worker._shared = {key: number + 1000 for key, number in worker._shared.items()}
    finally:
        await worker.close()


async def test_a_context_the_worker_cannot_be_sent_is_one_line_and_the_worker_lives_on(
    folder: Path,
) -> None:
    """Requests travel with ``marshal``, which takes built-in types only: a value of a
    subclass in a context (a fault of the bot, never of a template) fails that render
    in one line naming it, the worker is kept, and the next request is answered whole,
    its set of templates sent again (the failed request had counted it as sent)."""
    from enum import StrEnum

    class Shade(StrEnum):
        RED = "red"

    templates = read_templates(default_templates_dir())
    context = next(c for name, c in sample_jobs(templates) if name == "manual.md.j2")
    worker = RenderWorker(timeout=5.0)
    try:
        await worker.render(templates, "manual.md.j2", context, 10_000)
        process = worker._process
        with pytest.raises(TemplateError) as failed:
            await worker.render(templates, "manual.md.j2", {**context, "text": Shade.RED}, 10_000)
        message = str(failed.value)
        assert "manual.md.j2: its context holds a value the render worker cannot be sent" in message
        assert "\n" not in message
        assert worker._process is process  # not killed: it was sent nothing
        (folder / "manual.md.j2").write_text("again: {{ text }}")
        changed = read_templates(folder)  # a set the worker was never sent
        with pytest.raises(TemplateError):
            await worker.render(changed, "manual.md.j2", {**context, "text": Shade.RED}, 10_000)
        text, _ = await worker.render(changed, "manual.md.j2", {**context, "text": "plain"}, 10_000)
        assert text == "again: plain"
        assert worker._process is process
    finally:
        await worker.close()
