"""Parsing real Statuspage documents leniently into typed models."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbot.core.codec import view_to_json
from modbot.core.feed import parse_incidents, parse_incidents_object
from modbot.core.incidents import view_of
from modbot.errors import FeedMalformed
from tests.conftest import SAMPLES


@pytest.mark.parametrize(
    ("sample", "count"),
    [
        ("claude-incidents-derived.json", 25),
        ("cloudflare-incidents.json", 2),
        ("emma-incidents.json", 22),
        ("github-summary.json", 1),
    ],
)
def test_real_samples_parse(sample: str, count: int) -> None:
    feed = parse_incidents((SAMPLES / sample).read_bytes())
    assert len(feed.incidents) == count
    assert all(i.incident_updates for i in feed.incidents)


def test_offsets_are_normalised_to_utc() -> None:
    feed = parse_incidents((SAMPLES / "emma-incidents.json").read_bytes())
    update = feed.incidents[0].incident_updates[0]
    assert update.created_at is not None
    assert update.created_at.tzinfo == UTC


def test_null_affected_components_and_tweets_are_accepted() -> None:
    feed = parse_incidents((SAMPLES / "github-summary.json").read_bytes())
    updates = feed.incidents[0].incident_updates
    assert any(u.affected_components == [] for u in updates)


def test_webhook_incident_with_postmortem_fields_parses() -> None:
    data = json.loads((SAMPLES / "webhook-incident-update.json").read_text())
    feed = parse_incidents_object({"incidents": [data["incident"]]})
    assert feed.incidents[0].status == "resolved"


def test_missing_optional_keys_and_unknown_values_are_tolerated() -> None:
    raw = {
        "incidents": [
            {
                "id": "01HZX",
                "status": "degraded_everything",
                "impact": None,
                "incident_updates": [
                    {"id": "u1", "body": None, "display_at": "2026-01-01T00:00:00"}
                ],
                "extra_key": {"nested": True},
            }
        ]
    }
    incident = parse_incidents(json.dumps(raw)).incidents[0]
    assert incident.status == "degraded_everything"
    assert incident.impact == ""
    assert incident.incident_updates[0].body == ""
    assert incident.incident_updates[0].shown_at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"incidents": [{"id": 1, ',
        b"[]",
        b'{"page": {}}',
        b'{"incidents": {"id": "x"}}',
        b"<html>",
        b'{"incidents": ' + b"[" * 100_000,  # nested too deep for the JSON decoder
    ],
)
def test_malformed_documents_raise_one_line(raw: bytes) -> None:
    with pytest.raises(FeedMalformed) as caught:
        parse_incidents(raw)
    assert "\n" not in str(caught.value)
    assert "not a Statuspage incidents document" in str(caught.value)


@given(st.text(st.characters(exclude_categories=()), min_size=1, max_size=40))
def test_every_text_a_feed_gives_can_be_stored_and_sent(text: str) -> None:
    """JSON may write lone surrogates ("\ud800"); no text read from a feed keeps one."""
    item = {
        "id": text,
        "name": text,
        "status": text,
        "impact": text,
        "shortlink": text,
        "postmortem_body": text,
        "components": [{"id": text, "name": text, "status": text}],
        "incident_updates": [{"id": text, "status": text, "body": text}],
    }
    feed = parse_incidents(json.dumps({"page": {"name": text}, "incidents": [item]}))
    (incident,) = feed.incidents
    view_to_json(view_of(incident)).encode("utf-8")
    assert feed.page is not None
    feed.page.name.encode("utf-8")


def test_bytes_that_are_not_utf8_cost_their_characters_not_the_document() -> None:
    raw = json.dumps({"incidents": [{"id": "abc", "name": "NAME"}]}).encode()
    feed = parse_incidents(raw.replace(b"NAME", b"caf\xe9 \xff"))
    assert [i.name for i in feed.incidents] == ["caf\ufffd \ufffd"]


def test_an_integer_too_long_to_read_costs_its_field_not_the_document() -> None:
    huge = "9" * 5000
    raw = '{"incidents": [{"id": "abc", "name": "n", "created_at": %s, "impact": -%s}]}'
    feed = parse_incidents(raw % (huge, huge))
    (incident,) = feed.incidents
    assert (incident.name, incident.created_at, incident.impact) == ("n", None, "")
