"""Readers' reports through the real pipeline: the corpus replayed against the fakes.

``bench.reports`` replays the labelled corpus through the rules and the surge detector
alone; this replays it through everything the bot runs: asyncpraw reading the fake
Reddit's listings (``/r/ClaudeAI/new``, ``/r/ClaudeAI/comments``) every reports
interval (later after a read that needed more calls, as the reader says), the reader
classifying and storing, the store, the surge and the early notice
posted by the deliverer through the delivery machine, the poller reading the fake status
page as the corpus's incidents open, and the notice confirmed by the incident it links.
Time is simulated (one clock for the bot and the fake Reddit): every item appears on the
fake Reddit at its own time, visible ``LAG`` seconds later.

It replays the stretches of the corpus around every incident and every burst (three
hours before to two hours after, merged), a restart of the bot at the start of each, and
measures:

- Reddit calls per minute added by reading (listings, pages, authors' ages), per
  subreddit, against the target of 4;
- the early notice's lead over the official incident: the incident opened (the page's
  time) minus when the notice's comment was posted, for each incident whose comment the
  notice links (the pipeline's own link, not the corpus's label);
- notices posted, and notices the status page never confirmed;
- stray report posts answered and removed (the bot moderates, ``reports_action =
  "remove"``), and any answered or removed twice across the restarts.

    python -m bench.reports_pipeline [--hours-before 3] [--hours-after 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.reports import Corpus, load
from modbot.app import App
from modbot.config.settings import load_settings
from modbot.core.markdown import marker_of
from modbot.core.records import Kind
from tests.conftest import BOT, MEGATHREAD_TITLE, reddit_settings
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import T0, FakeStatuspage, incident, update

INTERVAL = 30.0  # reports_interval
LAG = 30.0  # listings show an item this long after it was posted
RESOLVED_AFTER = 3600.0  # the corpus gives when incidents opened; each is resolved an hour on
TARGET_CALLS = 4.0
READING_ROUTES = ("new", "subreddit_comments", "user_data", "user_about")


class SimClock:
    """The simulated time the bot and the fake Reddit share."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Replay:
    """What the pipeline did over the replayed stretches."""

    minutes: float = 0.0
    reading_calls: int = 0
    calls_by_route: dict[str, int] = field(default_factory=dict)
    notices: int = 0
    confirmed: int = 0
    leads: dict[str, float] = field(default_factory=dict)  # incident -> lead, seconds
    answered: int = 0  # stray report posts replied to
    removed: int = 0  # stray report posts removed
    answered_twice: int = 0
    removed_twice: int = 0
    stretches: int = 0
    items: int = 0
    seconds: float = 0.0

    @property
    def calls_per_minute(self) -> float:
        return self.reading_calls / max(self.minutes, 1.0)

    @property
    def ahead(self) -> list[float]:
        return sorted(v for v in self.leads.values() if v > 0)


def stretches(corpus: Corpus, before: float, after: float) -> list[tuple[float, float]]:
    """The spans to replay: around every incident and burst, overlapping ones merged."""
    spans = [(i["opened"] - before, i["opened"] + after) for i in corpus.header["incidents"]]
    spans += [(b["start"] - before, b["end"] + after) for b in corpus.header["bursts"]]
    merged: list[tuple[float, float]] = []
    for low, high in sorted(spans):
        start, end = max(low, corpus.header["start"]), min(high, corpus.header["end"])
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def page_document(corpus: Corpus, now: float) -> list[dict[str, Any]]:
    """The incidents the status page lists at ``now``."""
    # Each touches the watch's first component: the watch filters on its components,
    # and an incident of none of them is never announced (nor confirms a notice).
    touched = ((corpus.header["components"][0], "major_outage"),)
    shown = []
    for found in corpus.header["incidents"]:
        opened = float(found["opened"])
        if opened > now:
            continue
        status = "resolved" if now >= opened + RESOLVED_AFTER else "investigating"
        minute = (opened - T0.timestamp()) / 60
        text = "We are investigating."
        updates = [update(f"{found['id']}u1", "investigating", text, minute, components=touched)]
        if status == "resolved":
            done = update(f"{found['id']}u2", "resolved", "Resolved.", minute + 60, components=())
            updates.insert(0, done)
        shown.append(incident(found["id"], status, updates, name=found["name"], components=touched))
    return shown


async def replay(hours_before: float = 3.0, hours_after: float = 2.0) -> Replay:
    """Replay the corpus's stretches through the whole bot; what it did."""
    corpus = load()
    spans = stretches(corpus, hours_before * 3600, hours_after * 3600)
    clock = SimClock(spans[0][0] - INTERVAL)
    outcome = Replay(stretches=len(spans))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        async with (
            FakeStatuspage() as page,
            FakeReddit(subreddit="ClaudeAI", clock=clock, **BOT) as reddit,
        ):
            reddit.listing_lag = LAG
            reddit.ratelimit_headers = None  # real seconds: asyncprawcore would pace the replay
            megathread = reddit.add_submission(MEGATHREAD_TITLE, sticky=1, created_utc=clock())
            reddit.add_moderator(BOT["username"], ["all"])  # it answers and removes stray posts
            page.set_incidents([])
            settings = load_settings(
                env_file=None,
                database=Path(folder) / "state.sqlite3",
                statuspage_url=page.url,
                test_fast=True,
                poll_interval=INTERVAL,
                reports_interval=INTERVAL,
                reports_action="remove",
                reports_removal_reason="Outage reports go in the megathread",
                min_edit_interval=0.0,
                components=tuple(corpus.header["components"]),
                **(reddit_settings(reddit) | {"megathread_check_interval": 3600.0}),
            )
            async with App(settings, dry_run=False, out=io.StringIO(), clock=clock) as app:
                await _replay(app, reddit, page, megathread.id, corpus, spans, clock, outcome)
                await _judge(app, reddit, corpus, outcome)
                _count_routes(reddit, megathread.id, outcome)
    outcome.seconds = time.perf_counter() - began
    return outcome


async def _replay(  # noqa: PLR0917 - one replay's whole setting
    app: App,
    reddit: FakeReddit,
    page: FakeStatuspage,
    megathread: str,
    corpus: Corpus,
    spans: list[tuple[float, float]],
    clock: SimClock,
    outcome: Replay,
) -> None:
    (reader,) = app.readers
    items = sorted(corpus.items, key=lambda i: i["at"])
    position = 0
    for start, end in spans:
        while position < len(items) and items[position]["at"] < start:
            position += 1  # the stretch between two spans is not replayed
        clock.now = start
        reader.restart()  # the bot (re)starts at each stretch
        calls_before = _reading_calls(reddit)
        shown: list[dict[str, Any]] | None = None
        poll_at = read_at = start
        while clock.now < end:  # [start, end): a span of n intervals has n reads
            while position < len(items) and items[position]["at"] <= clock.now:
                _publish(reddit, megathread, items[position])
                position += 1
                outcome.items += 1
            if clock.now >= poll_at:
                document = page_document(corpus, clock.now)
                if document != shown:
                    page.set_incidents(document)
                    shown = document
                await app.run_once()
                poll_at += INTERVAL
            if clock.now >= read_at:
                # When the reader says: a read that needed more calls comes later.
                read_at = clock.now + await reader.step()
                await app.deliverer.round()  # what the read decided is delivered at once
            clock.now = min(poll_at, read_at)
        outcome.minutes += (end - start) / 60
        outcome.reading_calls += _reading_calls(reddit) - calls_before
    for route in READING_ROUTES:
        outcome.calls_by_route[route] = sum(1 for c in reddit.calls if c.route == route)


def _reading_calls(reddit: FakeReddit) -> int:
    return sum(1 for call in reddit.calls if call.route in READING_ROUTES)


def _publish(reddit: FakeReddit, megathread: str, item: dict[str, Any]) -> None:
    """A corpus item on the fake Reddit, by its author, at its own time."""
    author = item["author"]
    if author not in reddit.accounts:
        since = item["author_since"]
        reddit.add_account(author, created_utc=since if since is not None else 0.0)
        if since is None:
            reddit.suspend_account(author)  # Reddit says nothing of its age
    if item["kind"] == "post":
        reddit.add_submission(item["text"], author=author, created_utc=item["at"])
    else:
        reddit.add_comment(megathread, item["text"], author=author, created_utc=item["at"])


async def _judge(app: App, reddit: FakeReddit, corpus: Corpus, outcome: Replay) -> None:
    """Leads from the notices' comments and the incidents they link."""
    notices = {
        (marker_of(c.body) or "").removeprefix("early-"): c
        for c in reddit.comments_by(BOT["username"])
        if (marker_of(c.body) or "").startswith("early-")
    }
    outcome.notices = len(notices)
    rows = await app.store.early_notices(app.watch, list(notices))
    opened = {i["id"]: float(i["opened"]) for i in corpus.header["incidents"]}
    for row in rows:
        posted = await app.store.deliveries(app.watch, Kind.EARLY, [row.notice_id])
        if row.incident_id is None or not posted or row.incident_id not in opened:
            continue
        outcome.confirmed += 1
        posted_at = notices[row.notice_id].created_utc
        outcome.leads[row.incident_id] = opened[row.incident_id] - posted_at


def _count_routes(reddit: FakeReddit, megathread: str, outcome: Replay) -> None:
    """Stray posts answered and removed, and how many of them more than once."""
    answers = Counter(
        c.submission_id
        for c in reddit.comments_by(BOT["username"])
        if c.submission_id != megathread and (marker_of(c.body) or "").startswith("route-")
    )
    outcome.answered = len(answers)
    outcome.answered_twice = sum(1 for n in answers.values() if n > 1)
    outcome.removed = sum(1 for n in reddit.removals.values() if n)
    outcome.removed_twice = sum(1 for n in reddit.removals.values() if n > 1)


def rows(outcome: Replay) -> list[tuple[str, str, str]]:
    """The report's rows: (measure, value, target)."""
    ahead = outcome.ahead
    median = f"{statistics.median(ahead) / 60:.1f} min" if ahead else "-"
    worst = f"{min(ahead) / 60:.1f} min" if ahead else "-"
    routes = ", ".join(f"{r} {n}" for r, n in outcome.calls_by_route.items())
    return [
        ("pipeline: Reddit calls per minute added by reading", f"{outcome.calls_per_minute:.2f} per subreddit ({routes})", f"<= {TARGET_CALLS:g} per subreddit"),
        ("pipeline: early notices posted / confirmed by an incident", f"{outcome.notices} / {outcome.confirmed}", ""),
        ("pipeline: early notice lead over the incident, median", f"{median} ({len(ahead)} incidents ahead)", ">= 5 min"),
        ("pipeline: early notice lead over the incident, worst", worst, ""),
        ("pipeline: stray report posts answered / removed", f"{outcome.answered} / {outcome.removed}", ""),
        ("pipeline: posts answered / removed twice (restarts)", f"{outcome.answered_twice} / {outcome.removed_twice}", "0"),
        ("pipeline: replayed", f"{outcome.minutes / 60:.0f} h in {outcome.stretches} stretches, {outcome.items} items, {outcome.seconds:.0f} s", ""),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours-before", type=float, default=3.0)
    parser.add_argument("--hours-after", type=float, default=2.0)
    args = parser.parse_args()
    outcome = asyncio.run(replay(args.hours_before, args.hours_after))
    print(f"{'measure':<58} {'value':<46} target")
    for name, value, target in rows(outcome):
        print(f"{name:<58} {value:<46} {target}")


if __name__ == "__main__":
    main()
