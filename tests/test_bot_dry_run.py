"""The whole dry-run pipeline over real HTTP: fake page -> client -> core -> store -> printout."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from modbot import default_templates_dir
from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.markdown import marker_of
from tests.conftest import SAMPLES, expected_body, until
from tests.fakes.statuspage import FakeStatuspage, incident, update

STEPS = ["investigating", "identified", "monitoring", "resolved", "postmortem"]


def life(step: int) -> dict[str, object]:
    """The incident after ``step`` + 1 of the five stages (updates newest first)."""
    updates = [
        update(f"u{i}", STEPS[min(i, 3)], f"{STEPS[min(i, 3)]} text", 10 * i)
        for i in range(min(step, 3) + 1)
    ]
    return incident("inc1", STEPS[step], list(reversed(updates)))


def printed(out: io.StringIO) -> list[tuple[str, str]]:
    """(NEW|EDIT, body) for each comment the dry-run target printed."""
    blocks = out.getvalue().split("-" * 72 + "\n")
    found = []
    for index, block in enumerate(blocks):
        if block.startswith("[dry-run] "):
            kind = "NEW" if "NEW comment" in block else "EDIT"
            found.append((kind, blocks[index + 1].strip()))
    return found


async def test_full_life_prints_one_new_comment_then_an_edit_per_stage(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        for step in range(5):
            statuspage.set_incidents([life(step)])
            await app.run_once()
    comments = printed(out)
    assert [kind for kind, _ in comments] == ["NEW", "EDIT", "EDIT", "EDIT", "EDIT"]
    final_view = view_of(parse_incidents_object({"incidents": [life(4)]}).incidents[0])
    assert comments[-1][1] == expected_body(final_view, statuspage.url)
    assert "postmortem" in comments[-1][1].lower()


async def test_unchanged_polls_print_nothing(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    statuspage.set_incidents([life(0)])
    out = io.StringIO()
    async with App(make_settings(statuspage_url=statuspage.url), dry_run=True, out=out) as app:
        for _ in range(3):
            await app.run_once()
    assert len(printed(out)) == 1
    assert statuspage.count(304) == 2


async def test_real_feed_baseline_posts_only_the_open_incident(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    import json

    statuspage.set_document(json.loads((SAMPLES / "claude-incidents-derived.json").read_text()))
    out = io.StringIO()
    async with App(make_settings(statuspage_url=statuspage.url), dry_run=True, out=out) as app:
        await app.run_once()
    comments = printed(out)
    assert len(comments) == 1
    assert marker_of(comments[0][1]) == "inc-978mjkgw6mh7"


async def test_bad_inputs_keep_the_bot_running_and_lose_nothing(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, http_timeout=0.3)
    out = io.StringIO()
    statuspage.set_incidents([life(0)])
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        statuspage.set_incidents([life(1)])
        for trouble in ("malformed", "html200", "html503", "hang"):
            statuspage.misbehave(trouble, count=None, seconds=5)
            report = await app.run_once()
            assert not report.ok
            statuspage.heal()
        assert len(printed(out)) == 1  # nothing wrong was printed meanwhile
        saved = (await app.store.tracked(app.watch, ["inc1"]))["inc1"]
        assert saved.view.status == "investigating"  # state kept
        report = await app.run_once()
    assert report.ok
    assert [kind for kind, _ in printed(out)] == ["NEW", "EDIT"]
    assert "Identified" in printed(out)[-1][1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("HTML" in w for w in warnings)
    assert all("\n" not in w for w in warnings)


async def test_restart_prints_the_change_once_and_never_old_incidents(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    old = incident("old", "resolved", [update("o1", "resolved", "long over", -900)])
    statuspage.set_incidents([life(0), old])
    first = io.StringIO()
    async with App(settings, dry_run=True, out=first) as app:
        await app.run_once()
    statuspage.set_incidents([life(1), old])  # changes while the bot is down
    second = io.StringIO()
    async with App(settings, dry_run=True, out=second) as app:
        await app.run_once()
        await app.run_once()
    assert [kind for kind, _ in printed(first)] == ["NEW"]
    assert [kind for kind, _ in printed(second)] == ["EDIT"]
    assert "inc-old" not in first.getvalue() + second.getvalue()


async def test_runtime_template_error_keeps_the_previous_comment(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    settings = make_settings(statuspage_url=statuspage.url, templates_dir=folder)
    out = io.StringIO()
    statuspage.set_incidents([life(0)])
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        # Fails on the sample data already, so the change is refused at load time...
        (folder / "incident.md.j2").write_text(
            "{{ incident.name }}\n{{ updates[1].body }} {{ updates[2].body }}\n"
        )
        statuspage.set_incidents([life(1)])
        await app.run_once()
        # ...while this one passes the sample check and fails only for critical incidents:
        (folder / "incident.md.j2").write_text(
            "{{ incident.name }}\n{{ updates[1].body }}\n"
            "{% if incident.impact == 'critical' %}{{ nope }}{% endif %}"
        )
        critical = life(2)
        critical["impact"] = "critical"
        statuspage.set_incidents([critical])
        await app.run_once()
        (row,) = await app.store.open_incidents(app.watch)
    assert row.render_error is not None
    assert "incident.md.j2, line 3" in row.render_error
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("incident.md.j2, line 2" in e for e in errors)  # the refused template change
    assert any("stays as it was" in e and "line 3" in e for e in errors)
    kinds = [kind for kind, _ in printed(out)]
    assert kinds[0] == "NEW"
    assert not any("nope" in body for _, body in printed(out))


async def test_run_loop_follows_changes_and_stops_promptly(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, poll_interval=0.05)
    out = io.StringIO()
    statuspage.set_incidents([life(0)])
    stop = asyncio.Event()
    async with App(settings, dry_run=True, out=out) as app:
        runner = asyncio.create_task(app.run(stop))
        for step in range(1, 5):
            await until(lambda step=step: len(printed(out)) == step, 5)
            statuspage.set_incidents([life(step)])
        await until(lambda: len(printed(out)) == 5, 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop.set()
        await asyncio.wait_for(runner, 5)
        assert loop.time() - started < 1.0
