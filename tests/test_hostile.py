"""Every field of a feed is untrusted text: hostile values are inert wherever they go."""

from __future__ import annotations

import copy
import io
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.core.render import modmail_url
from modbot.shell.poller import page_info
from tests.conftest import expire_waits, page_env, reddit_settings, run_cli
from tests.fakes.feeds import rss
from tests.fakes.incidentio import COMPAT, FakeIncidentio
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update
from tests.snudown import Snudown

FORGED = "degraded\n\n[](#modbot-inc-victim)\n\nx"


def hostile(incident_id: str, **fields: Any) -> dict[str, Any]:
    item = incident(
        incident_id, "investigating", [update(f"{incident_id}u", "investigating", "b", 1)]
    )
    item.update(fields)
    return item


async def test_a_forged_marker_in_a_status_cannot_take_over_another_comment(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    attacker = hostile("attacker", status=FORGED, impact=FORGED)
    attacker["incident_updates"][0]["status"] = FORGED
    attacker["components"] = [{"id": "c1", "name": "API", "status": FORGED}]
    statuspage.set_incidents([attacker])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
        (forged,) = reddit.comments_by("modbot")
        assert marker_of(forged.body) == "inc-attacker"
        assert "\n[](#modbot-inc-victim)" not in forged.body
        # The victim appears, and Reddit stores its comment but answers 503.
        reddit.fail_next("POST", "/api/comment/", 503, when="after")
        statuspage.set_incidents([hostile("victim"), attacker])
        await app.run_once()
        expire_waits(settings.database)
        await app.run_once()
    live = {marker_of(c.body): c for c in reddit.comments_by("modbot") if not c.deleted}
    assert sorted(live) == ["inc-attacker", "inc-victim"]
    assert live["inc-attacker"].id == forged.id
    assert not reddit.comments[forged.id].deleted


async def test_an_incident_whose_id_is_not_a_statuspage_id_is_skipped_with_one_warning(
    statuspage: FakeStatuspage,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    evil = "idx [id link](https://evil.example/a) u/spez"
    statuspage.set_incidents([hostile(evil), hostile("fine")])
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
        statuspage.set_incidents([hostile(evil, name="x"), hostile("fine")])
        await app.run_once()
    assert "evil.example" not in out.getvalue()
    assert out.getvalue().count("[dry-run] NEW") == 1
    warnings = [r.getMessage() for r in caplog.records if "not a Statuspage id" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    "page_url",
    [
        "https://status.example.com) [phish](https://evil.example/login",
        "https://x[y]z",
        "javascript:alert(1)",
    ],
)
async def test_a_hostile_page_url_never_reaches_the_footer(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings], page_url: str
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    page = {"id": "p", "name": "P", "url": page_url}
    statuspage.set_document({"page": page, "incidents": [hostile("abc")]})
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        report = await app.run_once()
    assert report.ok
    text = out.getvalue()
    assert "evil.example" not in text
    assert "javascript" not in text
    assert f"]({statuspage.url})" in text  # the configured page, linked instead


@pytest.mark.slow
async def test_preview_and_run_once_survive_a_bracketed_host(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    statuspage.set_document({"page": {"url": "https://x[y]z"}, "incidents": [hostile("abc")]})
    env = page_env(statuspage, tmp_path)
    for args in (("preview",), ("run", "--once")):
        result = await run_cli(*args, env=env, cwd=tmp_path)
        assert result.code == 0, result.err
        assert "Traceback" not in result.err


async def test_shortlinks_to_other_hosts_are_not_links(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents(
        [
            hostile("a", shortlink="https://evil.example/x"),
            hostile("b", shortlink="https://stspg.io/b"),
        ]
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
    assert "https://evil.example/x" not in out.getvalue()
    assert "https://stspg.io/b" in out.getvalue()
    assert f"{statuspage.url}/incidents/a" in out.getvalue()


# --- the feed does not choose where links go --------------------------------------------------

EVIL = "https://evil.example"
HREF = re.compile(r'<a href="([^"]*)"')


def live_bodies(reddit: FakeReddit) -> list[str]:
    return [c.body for c in reddit.comments_by("modbot") if not c.deleted]


def assert_links_stay_home(snudown: Snudown, body: str, home: str, incident_id: str) -> None:
    """Through Reddit's renderer: the footer and the incident page link go to the
    configured page, and nothing links to the host the feed named."""
    hrefs = HREF.findall(snudown.html(body))
    assert not [h for h in hrefs if "evil.example" in h], (hrefs, body)
    assert home.rstrip("/") in hrefs, (hrefs, body)  # the footer
    assert f"{home.rstrip('/')}/incidents/{incident_id}" in hrefs, (hrefs, body)
    assert "evil.example" in body  # it was in the feed, shown as text


def page_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "the feed says its page is" in r.getMessage()
    ]


async def test_a_statuspage_naming_another_page_gets_no_link_to_it(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    snudown: Snudown,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    page = {"id": "p", "name": "Evil", "url": EVIL}

    def publish(version: int) -> None:
        body = f"See {EVIL}/login and {statuspage.url}/ok (version {version})"
        item = hostile("abc123", shortlink=f"{EVIL}/s")
        item["incident_updates"][0]["body"] = body
        statuspage.set_document({"page": page, "incidents": [item]})

    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        for version in range(3):  # three changed polls
            publish(version)
            await app.run_once()
    (body,) = live_bodies(reddit)
    assert "version 2" in body
    assert_links_stay_home(snudown, body, statuspage.url, "abc123")
    assert len(page_warnings(caplog)) == 1, page_warnings(caplog)


async def test_an_incidentio_page_naming_another_page_gets_no_link_to_it(
    reddit: FakeReddit,
    snudown: Snudown,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeSite() as site:
        page = FakeIncidentio(site)
        page.page_url = EVIL + "/"
        page.set([], [])
        settings = make_settings(
            statuspage_url=site.url, source_kind="incidentio", **reddit_settings(reddit)
        )
        ident = "01AAAAAAAAAAAAAAAAAAAAAAAA"
        async with App(settings, dry_run=False, out=io.StringIO()) as app:
            await app.run_once()  # the baseline
            for version in range(3):
                item = copy.deepcopy(COMPAT["incidents"][0])
                item.update(id=ident, status="investigating", resolved_at=None)
                item["shortlink"] = f"{EVIL}/s"
                item["incident_updates"][0].update(
                    status="investigating", body=f"See {EVIL}/x, {site.url}/ok ({version})"
                )
                page.set([item])
                await app.run_once()
    (body,) = live_bodies(reddit)
    assert_links_stay_home(snudown, body, site.url, ident)
    assert len(page_warnings(caplog)) == 1, page_warnings(caplog)


async def test_a_feed_whose_link_names_another_site_gets_no_link_to_it(
    reddit: FakeReddit,
    snudown: Snudown,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeSite() as site:
        settings = make_settings(
            statuspage_url=site.url + "/feed.xml", source_kind="atom", **reddit_settings(reddit)
        )
        async with App(settings, dry_run=False, out=io.StringIO()) as app:
            for version in range(3):
                text = f"<p>Status: Investigating</p><p>See {EVIL}/x, {site.url}/ok, v{version}</p>"
                site.put("/feed.xml", *rss(EVIL, [("abc123", f"{EVIL}/incidents/abc123", text)]))
                await app.run_once()
    (body,) = live_bodies(reddit)
    assert "v2" in body, body
    assert_links_stay_home(snudown, body, site.url, "abc123")
    assert len(page_warnings(caplog)) == 1, page_warnings(caplog)


async def test_a_page_remembered_from_an_older_version_gives_way_at_the_first_poll(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    """A state file from before the configured page decided may remember the page a
    feed named: the first poll reads the feed in full, even when it has not changed,
    so the configured page replaces it and the comments are rendered again."""
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([hostile("abc")])
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        await app.run_once()
    with sqlite3.connect(settings.database) as db:
        db.execute("UPDATE feeds SET page_name = 'Evil', page_url = ?", (EVIL,))
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        await app.run_once()  # the page is unchanged: a 304, unless asked in full
        health = await app.store.health(app.watch)
    assert health.page == page_info(statuspage.url)


# --- no field is too long to post ---------------------------------------------------------------

HUGE = "x" * 40_000 + " https://stspg.io/" + "y" * 20_000 + " **u/spez**"


def with_huge(field: str) -> dict[str, Any]:
    """A document with a 60 KB value in ``field`` (dotted: ``components.name``)."""
    item = hostile("abc", postmortem_body="A short write-up.")
    item["components"] = [{"id": "c1", "name": "API", "status": "partial_outage"}]
    item["incident_updates"][0]["affected_components"] = []
    if field == "components.many":
        item["components"] = [
            {"id": f"c{n}", "name": f"Component {n} " + "z" * 300, "status": "major_outage"}
            for n in range(500)
        ]
        return {"page": {"id": "p", "name": "P"}, "incidents": [item]}
    where, _, key = field.rpartition(".")
    target = {"": item, "components": item["components"][0]}.get(where)
    if where == "updates":
        target = item["incident_updates"][0]
    assert target is not None
    target[key] = "https://stspg.io/" + "y" * 60_000 if key == "shortlink" else HUGE
    return {"page": {"id": "p", "name": HUGE if field == "page" else "P"}, "incidents": [item]}


@pytest.mark.parametrize(
    "field",
    [
        "name", "status", "impact", "shortlink", "postmortem_body", "components.name",
        "components.status", "components.many", "updates.id", "updates.status", "updates.body",
        "page", "all",
    ],
)  # fmt: skip
async def test_a_huge_value_in_any_field_is_cut_and_the_incident_still_posted(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    snudown: Snudown,
    make_settings: Callable[..., Settings],
    field: str,
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    fields = ["name", "status", "impact", "shortlink", "postmortem_body", "components.name"]
    fields += ["components.status", "updates.id", "updates.status", "updates.body"]
    document = with_huge("name" if field == "all" else field)
    if field == "all":
        for other in fields[1:]:
            huge = with_huge(other)["incidents"][0]
            item = document["incidents"][0]
            item.update({k: v for k, v in huge.items() if k == other})
            item["components"][0].update(huge["components"][0])
            item["incident_updates"][0].update(huge["incident_updates"][0])
    if field == "page":
        document["incidents"][0]["name"] = "Elevated errors"
    statuspage.set_document(document)
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()
    (body,) = live_bodies(reddit)
    assert len(body) <= settings.max_comment_length
    lines = body.rstrip().split("\n")
    assert marker_of(body) == "inc-abc"
    # The template's last lines, whole: its rule, its footer with both links.
    assert lines[-4] == "---", lines[-4][:200]
    assert lines[-3].startswith("^(I am a bot. This comment mirrors)"), lines[-3][:200]
    assert lines[-3].endswith(f"[^(Message the moderators)]({modmail_url('ClaudeAI')})")
    html = snudown.html(body)
    assert "/u/spez" not in html
    for href in HREF.findall(html):
        allowed = ("#", statuspage.url, "https://stspg.io/", modmail_url("ClaudeAI"))
        assert href.startswith(allowed), href[:100]


GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go writes for a time never set


async def beside_an_ordinary_one(
    statuspage: FakeStatuspage, reddit: FakeReddit, settings: Settings, odd: dict[str, Any]
) -> dict[str | None, Comment]:
    """Post ``odd`` beside an ordinary incident: both get a comment, and the watch is not
    stalled (a later change to the ordinary one is edited in). The comments, by marker."""
    ordinary = hostile("ordinary")
    statuspage.set_incidents([odd, ordinary])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        assert (await app.run_once()).ok
        posted = {marker_of(c.body): c for c in reddit.comments_by("modbot")}
        assert set(posted) == {"inc-odd", "inc-ordinary"}
        ordinary["incident_updates"].insert(0, update("ordinary2", "identified", "found it", 5))
        ordinary["status"] = "identified"
        statuspage.set_incidents([odd, ordinary])
        assert (await app.run_once()).ok
    assert "found it" in reddit.comments[posted["inc-ordinary"].id].body
    return posted


async def test_a_time_at_the_edge_of_the_calendar_costs_that_field_not_the_watch(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.url, timezone="America/Los_Angeles", **reddit_settings(reddit)
    )
    odd = hostile("odd", created_at="0001-01-01T00:00:00+01:00", started_at=None)
    odd["incident_updates"][0].update(
        created_at=GO_ZERO_TIME, display_at=GO_ZERO_TIME, updated_at=GO_ZERO_TIME
    )
    posted = await beside_an_ordinary_one(statuspage, reddit, settings, odd)
    assert "started unknown time" in posted["inc-odd"].body
    assert "· unknown time" in posted["inc-odd"].body
    assert "PDT / " in posted["inc-ordinary"].body


LONE = "\ud800"  # a lone surrogate: valid in JSON text ("\ud800"), not in UTF-8


async def test_a_lone_surrogate_in_any_field_costs_that_character_not_the_watch(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(statuspage_url=statuspage.url, **reddit_settings(reddit))
    odd = hostile(
        "odd",
        name=f"Errors {LONE}here",
        status=f"investigating{LONE}",
        impact=f"major{LONE}",
        shortlink=f"https://stspg.io/{LONE}",
        postmortem_body=f"why {LONE}",
        components=[{"id": "c1", "name": f"API {LONE}", "status": f"major_outage{LONE}"}],
    )
    odd["incident_updates"][0].update(body=f"seen {LONE} now", status=f"identified{LONE}")
    posted = await beside_an_ordinary_one(statuspage, reddit, settings, odd)
    body = posted["inc-odd"].body
    body.encode("utf-8")  # Reddit is sent UTF-8: no surrogate reaches a body
    assert "Errors \ufffdhere" in body
    assert "seen \ufffd now" in body


@pytest.mark.parametrize(
    "etag", ['W/"caf\u00e9"', 'W/"' + "a" * 6000 + '"'], ids=["not-ascii", "too-long"]
)
async def test_an_etag_that_cannot_be_sent_back_is_not_kept_and_the_watch_goes_on(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings], etag: str
) -> None:
    """A validator goes back as a header: one no header can carry (httpx cannot even
    encode it), or one so long a server refuses the request, stalled the watch for good.
    Now the body's hash tells a change instead."""
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([hostile("first")])
    statuspage._etag = etag  # what the page sends from now on
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        assert (await app.run_once()).ok
        assert (await app.store.feed_state(app.first.scope)).validators.etag is None
        assert (await app.run_once()).ok  # sent without it: the whole body, hashed
        statuspage.set_incidents([hostile("second"), hostile("first")])
        statuspage._etag = etag
        report = await app.run_once()
        assert report.ok, report.message
        assert "second" in await app.store.tracked(app.first.scope, ["second"])


@pytest.mark.parametrize(
    ("kind", "says"),
    [("badgzip", "unreadable answer"), ("loop", "too many redirects")],
)
async def test_an_answer_httpx_cannot_read_is_a_failed_poll_not_an_unexpected_error(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings], kind: str, says: str
) -> None:
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([hostile("first")])
    statuspage.misbehave(kind, count=None)
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        report = await app.run_once()
        assert not report.ok
        assert says in report.message
        health = await app.store.health(app.first.scope)  # recorded, as any failed poll
        assert not health.last_poll_ok
        assert says in health.last_poll_message
        statuspage.heal()
        assert (await app.run_once()).ok
