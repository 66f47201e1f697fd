"""Readers' reports for real: fake Reddit's listings -> the reader -> the store -> early
notices through the delivery machine -> fake Reddit, with the fake status page.

What issue 21 promises, end to end: a burst of readers' reports before the status page
changes makes one early notice within one reports interval of the threshold, the
official incident links it and says how far ahead readers were, and nothing readers
wrote appears in any comment (checked with Reddit's own renderer).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core.markdown import marker_of
from modbot.shell.reports import SubredditReader
from tests.conftest import BOT, reddit_settings
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import T0, FakeStatuspage, incident, update
from tests.snudown import Snudown

OLD = 400 * 86_400.0  # an account's age that always counts


def minutes_since_t0(moment: float) -> float:
    """The fake page's ``minute`` for a moment (the fake dates everything from ``T0``)."""
    return (moment - T0.timestamp()) / 60


def outage(incident_id: str, opened: float, status: str = "investigating") -> dict[str, Any]:
    """An incident the page opened at ``opened`` (epoch seconds)."""
    minute = minutes_since_t0(opened)
    return incident(
        incident_id,
        status,
        [update(f"{incident_id}u1", status, "We are investigating errors.", minute)],
        name="Elevated errors on the API",
    )


class Readers:
    """One bot wired to both fakes; readers post into the fake Reddit."""

    def __init__(self, page: FakeStatuspage, fake: FakeReddit, app: App) -> None:
        self.page, self.fake, self.app = page, fake, app
        self.megathread = fake.megathread  # type: ignore[attr-defined]
        self.count = 0

    @property
    def reader(self) -> SubredditReader:
        (reader,) = self.app.readers
        return reader

    def post(self, title: str, *, author: str | None = None, ago: float = 0.0) -> str:
        """A reader's post; returns its id."""
        self.count += 1
        name = author or f"reader{self.count}"
        self.fake.add_account(name, created_utc=time.time() - OLD)
        return self.fake.add_submission(title, author=name, created_utc=time.time() - ago).id

    def comment(self, body: str, *, author: str | None = None, ago: float = 0.0) -> Comment:
        """A reader's comment in the megathread."""
        self.count += 1
        name = author or f"reader{self.count}"
        self.fake.add_account(name, created_utc=time.time() - OLD)
        return self.fake.add_comment(
            self.megathread.id, body, author=name, created_utc=time.time() - ago
        )

    async def read(self) -> None:
        await self.reader.read()

    async def run(self) -> None:
        """A poll and a delivery round, then a read (and deliver what it decided)."""
        await self.app.run_once()
        await self.read()
        await self.app.run_once()

    def bot_comments(self) -> list[Comment]:
        return [
            c
            for c in self.fake.comments_by(BOT["username"])
            if c.submission_id == self.megathread.id
        ]

    def early(self) -> list[Comment]:
        return [c for c in self.bot_comments() if (marker_of(c.body) or "").startswith("early-")]

    def incident_comment(self, incident_id: str) -> Comment:
        (found,) = [c for c in self.bot_comments() if marker_of(c.body) == f"inc-{incident_id}"]
        return found


@pytest.fixture
async def readers(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> AsyncIterator[Readers]:
    settings = make_settings(
        statuspage_url=statuspage.url,
        reports_interval=0.05,
        **reddit_settings(reddit),
    )
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()  # the page's baseline
        both = Readers(statuspage, reddit, app)
        await both.read()  # reading begins: older posts are not counted
        yield both


# Readers' texts: each a report, each with markup, mentions or links, and a canary word
# that must never reach a comment.
HOSTILE = [
    "Is Claude down?? **529** [canaryone](https://evil.example/x) u/spez r/all",
    "API down for everyone, 500 Internal Server Error \u200b# canarytwo heading",
    "Claude is down for me too: 529 overloaded_error\n> canarythree quote",
    "claude.ai not working, 503\n\n| canaryfour | cell |\n|---|---|\n| a | b |",
    "Everything is down, 529 Overloaded ^(canaryfive) ~~strike~~ @mention",
]
HREF = re.compile(r'href="([^"]*)"')


async def test_a_burst_before_the_page_makes_one_early_notice_the_incident_links(
    readers: Readers, snudown: Snudown
) -> None:
    for text in HOSTILE[:4]:
        readers.post(text)
    await readers.run()
    assert readers.early() == []  # four readers: no surge yet
    readers.comment(HOSTILE[4])
    await readers.run()  # the fifth: the threshold, and the notice within this read
    (notice,) = readers.early()
    assert "5 readers" in notice.body
    assert "shows nothing yet" in notice.body
    for _ in range(3):  # more reads of the same listings: still one notice
        await readers.run()
    assert len(readers.early()) == 1
    assert len(notice.history) == 1  # and nothing to edit
    # The vendor opens the incident (its page says five minutes after the first reports):
    # the notice is confirmed and links its comment.
    readers.page.set_incidents([outage("inc9", time.time() + 300)])
    await readers.run()
    await readers.run()
    comment = readers.incident_comment("inc9")
    (notice,) = readers.early()
    assert "confirms an incident" in notice.body
    assert comment.id in notice.body  # the link to the incident's own comment
    assert "first reports 5 min before the status page" in comment.body, comment.body
    assert "5 readers" in comment.body
    # Nothing readers wrote reaches a comment: only labels and counts.
    allowed = ("https://www.reddit.com/", "https://stspg.io", readers.page.url, "#modbot-")
    for body in (body for c in readers.bot_comments() for body in c.history):
        html = snudown.html(body)
        assert "canary" not in html.lower(), body
        for needle in ("spez", "<blockquote", "<table", "<del", "mention", "r/all"):
            assert needle not in html, (needle, body)
        for link in HREF.findall(html):
            assert link.startswith(allowed), link
    assert not readers.fake.unexpected_calls


def test_outage_dates_are_relative_to_the_fake_page() -> None:
    now = time.time()
    opened = outage("x", now)["created_at"]
    parsed = datetime.fromisoformat(opened.replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - now) < 1
    assert parsed.tzinfo == UTC
