"""Every field of a feed is untrusted text: hostile values are inert wherever they go."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modbot.app import App
from modbot.markdown import marker_of
from modbot.settings import Settings
from tests.conftest import expire_waits, page_env, reddit_settings, run_cli
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

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
    assert "https://status.example.com/incidents/a" in out.getvalue()


GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go writes for a time never set


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
    ordinary = hostile("ordinary")
    statuspage.set_incidents([odd, ordinary])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        assert (await app.run_once()).ok
        posted = {marker_of(c.body): c for c in reddit.comments_by("modbot")}
        assert sorted(posted) == ["inc-odd", "inc-ordinary"]
        assert "started unknown time" in posted["inc-odd"].body
        assert "· unknown time" in posted["inc-odd"].body
        assert "PDT / " in posted["inc-ordinary"].body
        # The watch is not stalled: a later change to the ordinary incident is edited in.
        ordinary["incident_updates"].insert(0, update("ordinary2", "identified", "found it", 5))
        ordinary["status"] = "identified"
        statuspage.set_incidents([odd, ordinary])
        assert (await app.run_once()).ok
    assert "found it" in reddit.comments[posted["inc-ordinary"].id].body
