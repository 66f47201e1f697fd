"""Scheduled maintenance: a notice of its own, posted when it starts and edited when it
completes, from Statuspage's ``scheduled-maintenances.json`` and incident.io's summary."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.feed import IncidentsFeed, parse_incidents_object
from modbot.core.incidents import diff
from modbot.core.records import Tracked
from tests.fakes.incidentio import FakeIncidentio
from tests.fakes.site import FakeSite

MAINTENANCES = "/api/v2/scheduled-maintenances.json"
INCIDENTS = "/api/v2/incidents.json"


def statuspage_maintenance(status: str, *updates: tuple[str, str]) -> dict[str, Any]:
    """A Statuspage maintenance as ``scheduled-maintenances.json`` lists it."""
    return {
        "id": "mnt0000000001",
        "name": "Database upgrade",
        "status": status,
        "impact": "maintenance",
        "created_at": "2026-11-30T08:00:00Z",
        "scheduled_for": "2026-11-30T10:00:00Z",
        "scheduled_until": "2026-11-30T12:00:00Z",
        "shortlink": "https://stspg.io/mnt1",
        "components": [{"id": "c1", "name": "API", "status": "under_maintenance"}],
        "incident_updates": [
            {"id": f"mu{n}", "status": s, "body": body, "created_at": f"2026-11-30T1{n}:00:00Z"}
            for n, (s, body) in enumerate(updates)
        ],
    }


class StatuspageWithMaintenance:
    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.site.put(INCIDENTS, json.dumps({"page": {"name": "Example"}, "incidents": []}))
        self.set([])

    def set(self, maintenances: list[dict[str, Any]]) -> None:
        self.site.put(MAINTENANCES, json.dumps({"scheduled_maintenances": maintenances}))


@pytest.fixture
async def statuspage() -> AsyncIterator[StatuspageWithMaintenance]:
    async with FakeSite() as site:
        yield StatuspageWithMaintenance(site)


def edits(out: str) -> list[str]:
    return out.split("[dry-run] ")[1:]


async def test_a_statuspage_maintenance_is_posted_when_it_starts_and_edited_when_done(
    statuspage: StatuspageWithMaintenance, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.site.url, source_kind="statuspage", maintenance=True
    )
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()  # the baseline: nothing
        statuspage.set([statuspage_maintenance("scheduled", ("scheduled", "Planned."))])
        await app.run_once()
        assert edits(out.getvalue()) == []  # planned is not news yet
        started = ("in_progress", "Work has begun.")
        statuspage.set([statuspage_maintenance("in_progress", ("scheduled", "Planned."), started)])
        await app.run_once()
        done = ("completed", "All done.")
        statuspage.set(
            [statuspage_maintenance("completed", ("scheduled", "Planned."), started, done)]
        )
        await app.run_once()
    posted, edited = edits(out.getvalue())
    assert posted.startswith("NEW")
    assert "Maintenance in progress" in posted
    assert "Planned window: Nov 30, 10:00 UTC to Nov 30, 12:00 UTC" in posted
    assert "Affected: API (under maintenance)" in posted
    assert edited.startswith("EDIT")
    assert "Maintenance completed" in edited
    assert "All done." in edited


async def test_without_the_setting_maintenances_are_not_fetched(
    statuspage: StatuspageWithMaintenance, make_settings: Callable[..., Settings]
) -> None:
    statuspage.set([statuspage_maintenance("in_progress", ("in_progress", "Begun."))])
    settings = make_settings(statuspage_url=statuspage.site.url, source_kind="statuspage")
    out = io.StringIO()
    async with App(settings, dry_run=True, out=out) as app:
        await app.run_once()
    assert edits(out.getvalue()) == []
    assert statuspage.site.requests[MAINTENANCES] == 0


async def test_a_page_without_maintenances_says_so_once_and_incidents_go_on(
    statuspage: StatuspageWithMaintenance,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    statuspage.site.misbehave(MAINTENANCES, "status", 404)
    settings = make_settings(
        statuspage_url=statuspage.site.url, source_kind="statuspage", maintenance=True
    )
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        for _ in range(3):
            assert (await app.run_once()).ok
    said = [r for r in caplog.records if "cannot read scheduled maintenances" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING


async def test_an_unchanged_pair_of_documents_is_not_parsed(
    statuspage: StatuspageWithMaintenance,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(
        statuspage_url=statuspage.site.url, source_kind="statuspage", maintenance=True
    )
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        await app.run_once()

        def refuse(*_: object) -> None:
            raise AssertionError("parsed an unchanged page")

        monkeypatch.setattr("modbot.sources.statuspage.parse_incidents", refuse)
        monkeypatch.setattr("modbot.sources.statuspage.parse_incidents_object", refuse)
        report = await app.run_once()
    assert report.ok
    assert not report.changed


async def test_an_incidentio_maintenance_completes_when_it_leaves_the_summary(
    make_settings: Callable[..., Settings],
) -> None:
    async with FakeSite() as site:
        page = FakeIncidentio(site)
        captured = copy.deepcopy(page.summary["scheduled_maintenances"][0])
        page.set([], [])
        settings = make_settings(
            statuspage_url=site.url, source_kind="incidentio", maintenance=True
        )
        out = io.StringIO()
        async with App(settings, dry_run=True, out=out) as app:
            await app.run_once()  # the baseline: the capture's maintenance is only scheduled
            assert edits(out.getvalue()) == []
            page.summary["scheduled_maintenances"] = [
                dict(captured, status="maintenance_in_progress")
            ]
            page.publish()
            await app.run_once()
            page.summary["scheduled_maintenances"] = []
            page.publish()
            await app.run_once()
            await app.run_once()  # gone for good: nothing more to say
    posted, edited = edits(out.getvalue())
    assert "Maintenance in progress" in posted
    assert "Planned window: Nov 03, 00:00 UTC to Nov 03, 03:00 UTC" in posted
    assert "No customer action required." in posted  # the update's markdown text
    assert "Maintenance completed" in edited


def test_a_maintenance_missing_from_a_complete_list_has_completed() -> None:
    item = {
        "id": "m1",
        "name": "Upgrade",
        "status": "in_progress",
        "maintenance": True,
        "incident_updates": [],
    }
    first = diff({}, parse_incidents_object({"incidents": [item]}), baseline_at=None)
    known: dict[str, Tracked] = dict(first.changed)
    assert known["m1"].announce
    partial = IncidentsFeed(incidents=[])  # a list that may leave things out: no change
    assert diff(known, partial, baseline_at=None).changed == {}
    complete = IncidentsFeed(incidents=[], lists_open_maintenances=True)
    done = diff(known, complete, baseline_at=None)
    assert done.changed["m1"].view.status == "completed"
    assert [e.kind.value for e in done.events] == ["resolved"]
