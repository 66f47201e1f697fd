"""The kinds added for the catalog's providers (Datadog status pages, Better Stack), each
against its fake, and the catalog against the real samples: every sample, served by a
fake, is recognised by `auto` as the kind the catalog gives its page."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from modbot.app import App
from modbot.config import catalog
from modbot.config.settings import Settings
from modbot.core.incidents import view_of
from modbot.core.records import Validators
from modbot.errors import FeedNotJSON
from modbot.sources.betterstack import BetterstackClient
from modbot.sources.choose import detect
from modbot.sources.datadog import DatadogClient
from modbot.sources.fetch import make_http_client
from modbot.sources.incidentio import page_components
from tests.conftest import ROOT
from tests.fakes.betterstack import FakeBetterstack, Item, home_style, modal_style
from tests.fakes.datadog import CAPTURE, FakeDatadog
from tests.fakes.site import FakeSite

DATA = ROOT / "tests" / "data"


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with FakeSite() as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(2.0) as client:
        yield client


# --- Datadog status pages (OpenRouter) ------------------------------------------------------


async def test_datadog_reads_the_captured_page_with_its_quirks(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    FakeDatadog(site)
    fetched = await DatadogClient(site.url, http).fetch(Validators())
    assert fetched.feed is not None
    assert [i.id for i in fetched.feed.incidents] == [i["id"] for i in CAPTURE["incidents"]]
    video = view_of(fetched.feed.incidents[0])
    assert video.name == "Degraded video generation API"
    assert video.status == "resolved"
    assert video.impact == "minor"  # the worst component status it had: degraded
    # Every update's createdAt is the day the history moved in (09-11); the page shows
    # startedAt, and so do the comments.
    assert [u.shown_at.isoformat() for u in video.updates] == [  # type: ignore[union-attr]
        "2026-09-04T18:27:00+00:00",
        "2026-09-04T21:12:00+00:00",
    ]
    (component,) = fetched.feed.incidents[0].components
    assert (component.name, component.group_name) == ("Video (/api/v1/videos)", "API - Gateway")


async def test_datadog_an_unchanged_page_costs_a_hash(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    FakeDatadog(site)
    client = DatadogClient(site.url, http)
    first = await client.fetch(Validators())
    again = await client.fetch(first.validators)
    assert again.feed is None


async def test_datadog_a_script_shell_instead_of_the_document_is_one_line(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    FakeDatadog(site)
    site.misbehave("/config.json", "html")
    with pytest.raises(FeedNotJSON, match=r"config\.json answered an HTML page"):
        await DatadogClient(site.url, http).fetch(Validators())


def _ongoing(incident: dict[str, Any], new_id: str) -> dict[str, Any]:
    """A captured incident as it stood at its first update, under a new id."""
    item = copy.deepcopy(incident)
    item.update(id=new_id, currentStatus="investigating", resolved=False, resolvedDate=None)
    item["timeline"] = item["timeline"][-1:]
    item["componentsAffected"] = copy.deepcopy(item["timeline"][0]["componentsAffected"])
    return item


async def test_a_datadog_watch_filters_by_the_pages_group(
    site: FakeSite, make_settings: Callable[..., Settings]
) -> None:
    page = FakeDatadog(site)
    page.set_incidents([])
    api = _ongoing(CAPTURE["incidents"][2], "11111111-2222-3333-4444-555555555555")  # Chat
    web = _ongoing(CAPTURE["incidents"][1], "66666666-7777-8888-9999-000000000000")  # Web
    settings = make_settings(
        statuspage_url=site.url, source_kind="datadog", components=("API - Gateway",)
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()  # the baseline
        page.set_incidents([api, web])
        await app.run_once()
    printed = out.getvalue()
    assert "Elevated 429s on Anthropic and OpenAI" in printed
    assert "Web application degraded" not in printed


# --- Better Stack (Together, Hugging Face) ---------------------------------------------------


async def test_better_stack_items_of_one_guid_are_one_incident(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    page = FakeBetterstack(site)
    page.set(
        home_style("aaa111", "Llama API", recovered_after=6)
        + home_style("bbb222", "Embed API", recovered_after=None, at=120)
    )
    fetched = await BetterstackClient(site.url, http).fetch(Validators())
    assert fetched.feed is not None
    views = {v.id: v for v in map(view_of, fetched.feed.incidents)}
    assert set(views) == {"aaa111", "bbb222"}  # not one incident of the whole page
    llama, embed = views["aaa111"], views["bbb222"]
    assert (llama.name, llama.status, len(llama.updates)) == ("Llama API went down", "resolved", 2)
    assert [u.body for u in llama.updates] == ["Llama API is down.", "Llama API is back up."]
    assert (embed.status, len(embed.updates)) == ("investigating", 1)


async def test_better_stack_items_that_link_an_incident_group_by_the_link(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    """Modal's items: each guid has its own #suffix (cut), the link names the incident,
    and the status is read from the words, as the items carry no status field."""
    page = FakeBetterstack(site)
    page.set(
        modal_style(
            100,
            "Web endpoint degradation",
            [
                (0, "Web endpoints are experiencing degradation"),
                (20, "We have identified the cause"),
                (30, "Things have recovered"),
            ],
        )
        + modal_style(200, "API latency spike", [(60, "Spike detected")])
    )
    fetched = await BetterstackClient(site.url, http).fetch(Validators())
    assert fetched.feed is not None
    views = {v.id: v for v in map(view_of, fetched.feed.incidents)}
    assert set(views) == {"100", "200"}
    assert [u.status for u in views["100"].updates] == ["investigating", "identified", "resolved"]
    assert views["100"].status == "resolved"
    assert views["200"].status == "investigating"  # no status word: still open


async def test_better_stack_reads_a_status_label_and_leaves_maintenance_out(
    site: FakeSite, http: httpx.AsyncClient
) -> None:
    page = FakeBetterstack(site)
    page.set(
        [
            Item("Database Connection Issues", "Queries time out.", 0, "/", "/#db1"),
            Item("[Resolved] Database Connection Issues", "All good.", 30, "/", "/#db1"),
            Item("Scheduled Network Maintenance", "On Saturday.", 40, "/", "/#m1"),
        ]
    )
    fetched = await BetterstackClient(site.url, http).fetch(Validators())
    assert fetched.feed is not None
    (db,) = map(view_of, fetched.feed.incidents)
    assert (db.name, db.status) == ("Database Connection Issues", "resolved")


async def test_a_better_stack_outage_is_posted_then_edited_when_it_recovers(
    site: FakeSite, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    page = FakeBetterstack(site)
    settings = make_settings(
        statuspage_url=site.url, source_kind="betterstack", components=("Inference",)
    )
    out = io.StringIO()
    with caplog.at_level(logging.WARNING):
        async with App(settings, dry_run=True, out=out) as app:
            await app.run_once()  # the baseline: an empty feed
            page.set(home_style("ccc333", "Inference", recovered_after=None))
            await app.run_once()
            page.set(home_style("ccc333", "Inference", recovered_after=12))
            await app.run_once()
            await app.run_once()
    new, edit = out.getvalue().split("[dry-run] EDIT")
    assert "Inference went down" in new
    assert "Resolved" in edit
    assert "Inference is back up." in edit
    # The feed names no components: the filter cannot apply, and the log says so once.
    assert caplog.text.count("does not say which components") == 1


# --- auto learns the new kinds ----------------------------------------------------------------


async def test_auto_recognises_a_datadog_page(site: FakeSite, http: httpx.AsyncClient) -> None:
    FakeDatadog(site)
    assert await detect(site.url, http) == "datadog"


async def test_auto_recognises_a_better_stack_page(site: FakeSite, http: httpx.AsyncClient) -> None:
    FakeBetterstack(site)
    assert await detect(site.url, http) == "betterstack"


# --- the catalog against the real samples -----------------------------------------------------

# Where each sample is served from, and the kind that route of its page is read by.
SERVED: dict[str, tuple[str, str, str]] = {
    "samples/anthropic-history.atom": ("/history.atom", "application/atom+xml", "atom"),
    "providers/openai-incidentio-statuspage-compat-incidents-2026-09-28.json": (
        "/api/v2/incidents.json", "application/json", "incidentio",
    ),
    "providers/openai-status-2026-09-04.atom": ("/history.atom", "application/atom+xml", "atom"),
    "providers/perplexity-incidentio-statuspage-compat-incidents-2026-09-28.json": (
        "/api/v2/incidents.json", "application/json", "incidentio",
    ),
    "providers/gcp-incidents-json-vertex-gemini-incident-fixture-2026-09-15.json": (
        "/incidents.json", "application/json", "gcloud",
    ),
    "providers/xai-status-feed-rss-2026-10-07.xml": ("/feed.xml", "application/rss+xml", "atom"),
    "providers/deepseek-flashduty-history-rss-2026-09-28.xml": (
        "/history.rss", "application/rss+xml", "atom",
    ),
    "providers/openrouter-datadog-config-2026-09-15.json": (
        "/config.json", "application/json", "datadog",
    ),
}  # fmt: skip
# Summaries are not what `auto` reads first; they show the page's component names.
SUMMARIES = {
    "providers/openai-incidentio-statuspage-compat-summary-2026-09-29.json",
    "providers/perplexity-incidentio-statuspage-compat-summary-2026-09-28.json",
    "providers/groq-incidentio-summary-embedded-2026-09-29.json",
}
# Group names that come from the pages as people describe them, not from a sample (said
# in each entry's quirks).
GROUPS_NOT_IN_SAMPLES = {"anthropic", "openai"}

WITH_SAMPLES = [p for p in catalog.catalog() if p.samples]


@pytest.mark.parametrize("provider", WITH_SAMPLES, ids=lambda p: p.name)
async def test_each_sample_is_recognised_as_its_pages_kind(
    site: FakeSite, http: httpx.AsyncClient, provider: catalog.Provider
) -> None:
    kinds = {provider.kind} | {a.kind for a in provider.alternatives}
    for sample in provider.samples:
        if sample in SUMMARIES:
            continue
        path, content_type, kind = SERVED[sample]
        assert kind in kinds, (sample, kinds)
        site.answers.clear()
        site.put(path, (DATA / sample).read_bytes(), content_type=content_type)
        if kind == "atom":
            assert await detect(site.url + path, http) == "atom"
        else:
            assert await detect(site.url, http) == kind, sample


@pytest.mark.parametrize("provider", WITH_SAMPLES, ids=lambda p: p.name)
def test_the_catalogs_names_are_in_its_samples(provider: catalog.Provider) -> None:
    texts = []
    for sample in provider.samples:
        raw = (DATA / sample).read_text()
        texts.append(raw)
        if sample.endswith(".json"):
            texts.append(json.dumps(json.loads(raw), ensure_ascii=False))
    seen = "\n".join(texts)
    names = provider.components
    if provider.name not in GROUPS_NOT_IN_SAMPLES:
        names += provider.groups
    missing = [n for n in names if n not in seen]
    assert not missing, f"{provider.name}: not in its samples: {missing}"


def test_the_groups_of_an_incidentio_summary_are_the_catalogs() -> None:
    summary = (DATA / "providers/groq-incidentio-summary-embedded-2026-09-29.json").read_text()
    listed = page_components(json.dumps({"summary": json.loads(summary)}).encode())
    assert listed is not None
    assert set(catalog.lookup("groq").groups) <= set(listed)


# --- check --connect names the page's components ------------------------------------------


async def test_check_connect_names_the_components_and_a_misspelt_filter(
    site: FakeSite, make_settings: Callable[..., Settings]
) -> None:
    from modbot.cli.service import check
    from tests.fakes.incidentio import FakeIncidentio

    FakeIncidentio(site)  # Groq's captured summary: groups Production, Preview Models, ...
    settings = make_settings(
        statuspage_url=site.url,
        source_kind="incidentio",
        components=("Productoin", "whisper-large-v3"),
    )
    out = io.StringIO()
    await check(settings, out, connect=True)
    printed = out.getvalue()
    assert "the page lists: Preview Models, Production, Production Systems, API," in printed
    assert "WARNING: the filter 'Productoin' matches none of the names the page lists" in printed
    assert "'whisper-large-v3' matches none" not in printed


async def test_check_connect_names_a_datadog_pages_groups(
    site: FakeSite, make_settings: Callable[..., Settings]
) -> None:
    from modbot.cli.service import check

    FakeDatadog(site)
    settings = make_settings(
        statuspage_url=site.url, source_kind="auto", components=("API - Gateway",)
    )
    out = io.StringIO()
    await check(settings, out, connect=True)
    printed = out.getvalue()
    assert "API - Gateway, Chat (/api/v1/chat/completions)," in printed
    assert "WARNING" not in printed
