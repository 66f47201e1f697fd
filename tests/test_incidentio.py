"""incident.io pages (status.openai.com and others), against a fake built from real
captures: the compatible incidents list, the page's own summary, and their quirks."""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.config.watches import Watch
from modbot.core.records import Validators
from modbot.sources.fetch import make_http_client
from modbot.sources.incidentio import IncidentioClient
from tests.fakes.incidentio import COMPAT, FakeIncidentio, ongoing
from tests.fakes.site import FakeSite

CODEX = COMPAT["incidents"][0]  # "Issues with Codex", resolved, six updates


@pytest.fixture
async def page() -> AsyncIterator[FakeIncidentio]:
    async with FakeSite() as site:
        yield FakeIncidentio(site)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(2.0) as client:
        yield client


def reopened(incident: dict[str, object], new_id: str) -> dict[str, object]:
    """The captured incident under a new id, as if it were ongoing now."""
    item = copy.deepcopy(incident)
    item["id"], item["status"], item["resolved_at"] = new_id, "investigating", None
    for update in item["incident_updates"]:  # type: ignore[union-attr]
        update["status"] = "investigating"
    return item


def watch(page: FakeIncidentio, **fields: object) -> Watch:
    values: dict[str, object] = {
        "name": "openai", "url": page.site.url, "kind": "incidentio", "subreddit": None,
        "megathread_title": "Megathread", "components": (), "timezone": None,
        "templates_dir": None, "poll_interval": 0.1, "maintenance": False,
    }  # fmt: skip
    values.update(fields)
    return Watch(**values)  # type: ignore[arg-type]


async def test_the_compatible_list_parses_with_its_quirks(
    page: FakeIncidentio, http: httpx.AsyncClient
) -> None:
    client = IncidentioClient(page.site.url, http)
    fetched = await client.fetch(Validators())
    assert fetched.feed is not None
    ids = [i.id for i in fetched.feed.incidents]
    assert ids == [i["id"] for i in COMPAT["incidents"]]  # ULIDs, in the page's order
    codex = fetched.feed.incidents[0]
    assert codex.components == []  # the compatible layer never says
    updates = {u.id: u for u in codex.incident_updates}
    assert all(u.display_at is not None for u in updates.values())
    assert fetched.validators.etag is None
    assert fetched.validators.digest


async def test_an_unchanged_page_costs_a_hash_and_no_parsing(
    page: FakeIncidentio, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = IncidentioClient(page.site.url, http)
    first = await client.fetch(Validators())

    def refuse(*_: object) -> None:
        raise AssertionError("parsed an unchanged page")

    monkeypatch.setattr("modbot.sources.incidentio.parse_incidents_object", refuse)
    again = await client.fetch(first.validators)
    assert again.feed is None
    assert page.site.requests["/api/v2/incidents.json"] == 2  # a full download, no 304


async def test_the_component_filter_uses_the_pages_own_summary(
    page: FakeIncidentio, make_settings: Callable[..., Settings]
) -> None:
    api, other = (
        reopened(CODEX, "01AAAAAAAAAAAAAAAAAAAAAAAA"),
        reopened(CODEX, "01BBBBBBBBBBBBBBBBBBBBBBBB"),
    )
    page.set([], [])
    settings = make_settings(
        statuspage_url=page.site.url, source_kind="incidentio", components=("API",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()  # the baseline
        page.set([api, other], [ongoing(api, "API"), ongoing(other, "openai/gpt-oss-20b")])
        await app.run_once()
    printed = out.getvalue()
    assert "incident 01AAAAAAAAAAAAAAAAAAAAAAAA" in printed
    assert "01BBBBBBBBBBBBBBBBBBBBBBBB" not in printed
    assert "Affected: API (partial outage)" in printed


async def test_an_incident_no_longer_ongoing_keeps_its_components(
    page: FakeIncidentio, make_settings: Callable[..., Settings]
) -> None:
    api = reopened(CODEX, "01AAAAAAAAAAAAAAAAAAAAAAAA")
    page.set([], [])
    settings = make_settings(
        statuspage_url=page.site.url, source_kind="incidentio", components=("API",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        page.set([api], [ongoing(api, "API")])
        await app.run_once()
        resolved = copy.deepcopy(api)
        resolved["status"] = "resolved"
        page.set([resolved], [])  # no longer in the summary's ongoing list
        await app.run_once()
    last = out.getvalue().split("[dry-run] EDIT")[-1]
    assert "Resolved" in last
    assert "Affected: API" in last  # not dropped by an edit


async def test_without_the_summary_it_says_so_once_and_posts_unfiltered(
    page: FakeIncidentio, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    page.set([], [])
    page.site.misbehave(page.summary_path, "status", 404)
    settings = make_settings(
        statuspage_url=page.site.url, source_kind="incidentio", components=("API",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        page.set([reopened(CODEX, "01AAAAAAAAAAAAAAAAAAAAAAAA")])
        await app.run_once()
        await app.run_once()
    assert "01AAAAAAAAAAAAAAAAAAAAAAAA" in out.getvalue()
    said = [r for r in caplog.records if "cannot read the page's summary" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING


# --- empty update bodies (OpenAI's compatible list, March 2026) --------------------------


def _bodies(fetched_feed: object) -> dict[str, str]:
    return {u.id: u.body for i in fetched_feed.incidents for u in i.incident_updates}  # type: ignore[attr-defined]


@pytest.mark.parametrize("text_as", ["string", "markdown", "tree"])
async def test_empty_bodies_are_taken_from_the_pages_own_feed(
    page: FakeIncidentio, http: httpx.AsyncClient, text_as: str
) -> None:
    page.empty_bodies(text_as)
    fetched = await IncidentioClient(page.site.url, http).fetch(Validators())
    assert fetched.feed is not None
    expected = {u["id"]: u["body"] for i in COMPAT["incidents"] for u in i["incident_updates"]}
    got = _bodies(fetched.feed)
    assert got.keys() == expected.keys()
    for ident, body in expected.items():
        # The tree form has no markup and one line per paragraph; the text is the same.
        assert got[ident].split() == body.split(), ident
    assert page.site.requests[page.texts_path] == 1


async def test_with_bodies_present_the_pages_own_feed_is_not_read(
    page: FakeIncidentio, http: httpx.AsyncClient
) -> None:
    await IncidentioClient(page.site.url, http).fetch(Validators())
    assert page.site.requests[page.texts_path] == 0


@pytest.mark.parametrize("trouble", ["missing", "failing"])
async def test_without_the_pages_own_feed_an_update_says_no_text_was_published(
    page: FakeIncidentio,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    trouble: str,
) -> None:
    page.empty_bodies()
    if trouble == "missing":
        page.site.answers.pop(page.texts_path)
    else:
        page.site.misbehave(page.texts_path, "status", 500)
    client = IncidentioClient(page.site.url, http, attempts=1)
    with caplog.at_level(logging.WARNING):
        first = await client.fetch(Validators())
        await client.fetch(Validators())
    assert first.feed is not None
    assert set(_bodies(first.feed).values()) == {"(no text published)"}  # never empty
    assert caplog.text.count("updates without text") == 1  # said once


async def test_a_text_that_appears_later_edits_the_comment(
    page: FakeIncidentio, make_settings: Callable[..., Settings]
) -> None:
    ongoing_codex = reopened(CODEX, "01AAAAAAAAAAAAAAAAAAAAAAAA")
    page.set([], [])
    settings = make_settings(statuspage_url=page.site.url, source_kind="incidentio")
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()  # the baseline
        page.empty_bodies()
        page.site.misbehave(page.texts_path, "status", 404)
        page.set([ongoing_codex], [])
        await app.run_once()
        page.site.heal(page.texts_path)
        await app.run_once()
    first, *edits = out.getvalue().split("[dry-run] EDIT")
    assert edits
    assert "no text published" in first  # (escaped for Reddit)
    assert "We have applied the mitigation" not in first
    assert "We have applied the mitigation" in out.getvalue().split("[dry-run] EDIT")[-1]


async def test_a_filter_may_name_a_group_of_the_page(
    page: FakeIncidentio, make_settings: Callable[..., Settings]
) -> None:
    """Groq's models sit in groups (Production, Preview Models): naming the group is
    enough, as `components = ["ChatGPT"]` is for OpenAI's page."""
    model, other = (
        reopened(CODEX, "01AAAAAAAAAAAAAAAAAAAAAAAA"),
        reopened(CODEX, "01BBBBBBBBBBBBBBBBBBBBBBBB"),
    )
    page.set([], [])
    settings = make_settings(
        statuspage_url=page.site.url, source_kind="incidentio", components=("Production",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        page.set(
            [model, other],
            [ongoing(model, "llama-3.1-8b-instant"), ongoing(other, "qwen/qwen3-32b")],
        )
        await app.run_once()
    printed = out.getvalue()
    assert "incident 01AAAAAAAAAAAAAAAAAAAAAAAA" in printed
    assert "01BBBBBBBBBBBBBBBBBBBBBBBB" not in printed  # a Preview model
