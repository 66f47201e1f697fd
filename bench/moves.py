"""Moves between platforms: real incident timelines replayed across a page's move.

The real ``modbot run`` process watches a fake page (``tests/fakes/moving.py``) that
moves in the middle of an open incident, and posts into the fake Reddit:

* ``silent, to incident.io``: OpenAI's move, silent: the same address answers with
  incident.io's compatible JSON, the incident and its updates under new ids (ULIDs),
  no Statuspage header;
* ``loud, to Datadog``: a loud move: a script shell where the JSON and the feed
  were, the incident in Datadog's ``config.json`` under a new id with only the updates
  posted since (the bot finds the platform after ``move_threshold`` failed polls);
* ``JSON blocked, to Atom``: the JSON is blocked (a challenge page) from the move on, and
  the page's ``history.atom`` goes on with the timeline;
* ``HTML for an hour``: an incident.io page answers a challenge page for an hour of
  polls (at the default 15 s interval) while the incident goes on, then answers again;
* ``killed during the move``: the silent move, with the bot SIGKILLed within two polls
  of it (before the adoption is saved, between the save and the edit, or after) and
  started again.

Each run checks the fake Reddit: duplicate comments (two live bot comments for one
incident), incidents wrongly resolved (a version of the comment closed, as resolved or
as moved, before the source said resolved), updates missing (an update of the timeline
whose words the final comment lacks), and the time from the move (or, for the hour of
HTML, from the page answering again) to the first delivery of what only the new
platform serves, in polls. Targets: 0, 0, 0, and ``move_threshold`` polls plus one
(not for the run killed on purpose, whose restart takes a second or so).

    python -m bench.moves [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    SHIPPED,
    BotProcess,
    Fakes,
    bot_env,
    live_comments,
    real_timelines,
    retimed,
    wait_until,
)
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.render import incident_job, link_hosts
from modbot.shell.poller import page_info
from tests.conftest import BOT, MEGATHREAD_TITLE
from tests.fakes.moving import MovingPage, compat, renamed, ulid
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.site import FakeSite

POLL = 0.2  # the bot's poll interval here (seconds)
THRESHOLD = 5  # MODBOT_MOVE_THRESHOLD, the default
HOUR_OF_POLLS = 240  # an hour at the default poll interval of 15 s
STEP_TIMEOUT = 30.0
CLOSED_HEADLINES = ("🟢 Resolved", "No longer followed")
# Each scenario: what it is called in the report, and the platform before and after.
SCENARIOS = {
    "silent, to incident.io": ("statuspage", "incidentio"),
    "loud, to Datadog": ("statuspage", "datadog"),
    "JSON blocked, to Atom": ("statuspage", "atom"),
    "HTML for an hour": ("incidentio", "incidentio"),
    "killed during the move": ("statuspage", "incidentio"),
}
KILLED = "killed during the move"
HOUR = "HTML for an hour"
Document = dict[str, Any]


@dataclass
class Outcome:
    """What the runs of one scenario saw."""

    runs: int = 0
    duplicates: int = 0
    wrongly_resolved: int = 0
    missing_updates: int = 0
    delays: list[float] = field(default_factory=list)  # seconds, move -> first delivery
    failures: list[str] = field(default_factory=list)


def words(text: str) -> str:
    """Text as comparable words: escapes, Markdown and spacing left out."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _incident(document: Document) -> dict[str, Any]:
    incident: dict[str, Any] = document["incidents"][0]
    return incident


def fits(documents: list[Document]) -> bool:
    """A timeline whose final comment shows every update (Reddit's 10,000 characters)."""
    view = view_of(parse_incidents_object({"incidents": [_incident(documents[-1])]}).incidents[0])
    home = "http://127.0.0.1"
    job = incident_job(view, page_info(home), hosts=link_hosts(home), subreddit="ClaudeAI")
    return SHIPPED.body(job).omitted_updates == 0


def timelines() -> list[list[Document]]:
    """The real timelines with at least four updates that fit one comment, without the
    postmortem step (a Statuspage page's alone)."""
    found = []
    for _, documents in real_timelines(min_updates=4):
        kept = [d for d in documents if _incident(d)["status"] != "postmortem"]
        if fits(kept):
            found.append(kept)
    return found


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[MovingPage, FakeReddit]]:
    """A page that can move, and the fake Reddit with its megathread pinned."""
    async with FakeSite() as site, FakeReddit(subreddit="ClaudeAI", **BOT) as reddit:
        reddit.add_submission(MEGATHREAD_TITLE, sticky=1)
        yield MovingPage(site), reddit


class Run:
    """One timeline, one scenario: the bot, the page, what Reddit shows."""

    def __init__(self, scenario: str, documents: list[Document], number: int) -> None:
        self.scenario = scenario
        self.number = number
        start = datetime.now(UTC)
        self.old_id, self.documents = retimed(documents, f"m{number}", start)
        self.new_id = ulid(f"{self.old_id}-{number}")
        self.move_at = max(1, len(self.documents) // 2)

    # --- what each platform serves ----------------------------------------------------------
    def serve_before(self, page: MovingPage, document: Document) -> None:
        self._serve(page, SCENARIOS[self.scenario][0], _incident(document))

    def serve_after(self, page: MovingPage, index: int) -> None:
        self._serve(page, SCENARIOS[self.scenario][1], _incident(self.documents[index]))

    def _serve(self, page: MovingPage, platform: str, incident: dict[str, Any]) -> None:
        if platform == "statuspage":
            page.statuspage([incident])
        elif platform == "incidentio":
            page.incidentio([compat(renamed(incident, self.new_id))])
        elif platform == "datadog":
            since = {
                u["id"] for u in _incident(self.documents[self.move_at - 1])["incident_updates"]
            }
            moved = renamed(incident, f"dd-{self.new_id.lower()}")
            moved["incident_updates"] = [
                u for u in moved["incident_updates"] if u["id"] not in since
            ]  # Datadog lists only what was posted on it
            page.datadog([moved])
        else:  # the Atlassian page, its JSON blocked, its feed going on
            page.statuspage([incident])
            page.challenge()

    def env(self, page: MovingPage, reddit: FakeReddit, database: Path) -> dict[str, str]:
        env = bot_env(Fakes(page, reddit), database)  # type: ignore[arg-type]
        env.update(
            MODBOT_POLL_INTERVAL=f"{POLL:g}",
            MODBOT_MOVE_THRESHOLD=str(THRESHOLD),
            MODBOT_REDDIT_CALLS_PER_MINUTE="600",
        )
        if self.scenario == HOUR:
            env["MODBOT_SOURCE_KIND"] = "incidentio"
        return env

    # --- what Reddit shows ------------------------------------------------------------------
    def comments(self, reddit: FakeReddit) -> list[Comment]:
        return [c for c in live_comments(reddit) if "inc-" in c.body]

    def shows(self, reddit: FakeReddit, document: Document) -> bool:
        """A live comment shows the newest update of ``document``."""
        updates = _incident(document)["incident_updates"]
        newest = words(updates[0]["body"])
        return any(newest in words(c.body) for c in self.comments(reddit))

    async def play(self, outcome: Outcome, logs: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with fakes() as (page, reddit):
                self.serve_before(page, self.documents[0])
                slug = re.sub(r"\W+", "-", self.scenario)
                log = logs / f"{slug}-{self.number}.log"
                bot = BotProcess(
                    self.env(page, reddit, Path(tmp) / "state.sqlite3"), Path(tmp), log
                )
                await bot.start()
                try:
                    await self._timeline(bot, page, reddit, outcome)
                finally:
                    await bot.stop()
                self._check(reddit, outcome)
        outcome.runs += 1

    async def _timeline(
        self, bot: BotProcess, page: MovingPage, reddit: FakeReddit, outcome: Outcome
    ) -> None:
        for document in self.documents[: self.move_at]:
            self.serve_before(page, document)
            await self._until(lambda d=document: self.shows(reddit, d), "before the move")
        if self.scenario == HOUR:
            page.challenge()
            await asyncio.sleep(HOUR_OF_POLLS * POLL)
        moved = time.monotonic()
        self.serve_after(page, self.move_at)
        if self.scenario == KILLED:
            # SIGKILL within two polls of the move: before the adoption is saved, between
            # the save and the edit, or just after; then a new process.
            await asyncio.sleep(random.uniform(0.0, 2 * POLL))
            bot.kill()
            await bot.wait()
            await bot.start()
        await self._until(
            lambda: self.shows(reddit, self.documents[self.move_at]), "after the move"
        )
        outcome.delays.append(time.monotonic() - moved)
        for index in range(self.move_at + 1, len(self.documents)):
            self.serve_after(page, index)
            await self._until(lambda d=self.documents[index]: self.shows(reddit, d), "to the end")
        await asyncio.sleep(5 * POLL)  # anything still to come (a second comment) comes

    async def _until(self, condition: Callable[[], bool], where: str) -> None:
        if not await wait_until(condition, STEP_TIMEOUT):
            raise TimeoutError(f"{self.scenario} #{self.number}: stuck {where}")

    def _check(self, reddit: FakeReddit, outcome: Outcome) -> None:
        outcome.duplicates += max(len(self.comments(reddit)) - 1, 0)
        resolved_update = next(
            (
                u
                for u in _incident(self.documents[-1])["incident_updates"]
                if u["status"] == "resolved"
            ),
            None,
        )
        resolved_words = words(resolved_update["body"]) if resolved_update else None
        for comment in self.comments(reddit):
            for version in comment.history:
                closed = any(h in version for h in CLOSED_HEADLINES)
                if closed and (resolved_words is None or resolved_words not in words(version)):
                    outcome.wrongly_resolved += 1
                    outcome.failures.append(f"{self.scenario} #{self.number}: closed too early")
                    break
        final = " ".join(words(c.body) for c in self.comments(reddit))
        for update in _incident(self.documents[-1])["incident_updates"]:
            if words(update["body"]) not in final:
                outcome.missing_updates += 1
                outcome.failures.append(
                    f"{self.scenario} #{self.number}: update {update['id']} missing"
                )


async def measure(runs: int) -> dict[str, Outcome]:
    """Every scenario over ``runs`` timelines each (the hour of HTML over one)."""
    found = timelines()
    logs = Path(tempfile.mkdtemp(prefix="modbot-moves-"))
    outcomes = {scenario: Outcome() for scenario in SCENARIOS}
    number = 0
    for scenario in SCENARIOS:
        count = 1 if scenario == HOUR else runs
        for _ in range(count):
            documents = found[number % len(found)]
            number += 1
            try:
                await Run(scenario, documents, number).play(outcomes[scenario], logs)
            except TimeoutError as exc:
                outcomes[scenario].failures.append(f"{exc}; logs in {logs}")
    return outcomes


def rows(outcomes: dict[str, Outcome]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the report."""
    out = []
    for scenario, seen in outcomes.items():
        delays = sorted(d / POLL for d in seen.delays)
        spread = f"{statistics.median(delays):.1f} / {delays[-1]:.1f}" if delays else "-"
        since = "answers again" if scenario == HOUR else "move"
        target = "" if scenario == KILLED else f"<= {THRESHOLD + 1}"
        counts = f"{seen.duplicates} / {seen.wrongly_resolved} / {seen.missing_updates}"
        out += [
            (f"moves, {scenario}: runs", f"{seen.runs}", ""),
            ("  duplicates / wrongly resolved / updates missing", counts, "0 / 0 / 0"),
            (f"  {since} -> delivery, polls (median / worst)", spread, target),
        ]
    return out


def succeeded(outcomes: dict[str, Outcome]) -> bool:
    """True when every run finished with every count zero and every delay in target."""
    return all(
        not o.failures
        and not (o.duplicates or o.wrongly_resolved or o.missing_updates)
        and (scenario == KILLED or all(d / POLL <= THRESHOLD + 1 for d in o.delays))
        for scenario, o in outcomes.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timelines per scenario")
    args = parser.parse_args()
    started = time.monotonic()
    outcomes = asyncio.run(measure(args.runs))
    print(f"bench.moves: {sum(o.runs for o in outcomes.values())} runs in "
          f"{time.monotonic() - started:.0f} s, poll interval {POLL:g} s, "
          f"move_threshold {THRESHOLD}")  # fmt: skip
    print(f"{'measure':<56} {'value':<14} target")
    for name, value, target in rows(outcomes):
        print(f"{name:<56} {value:<14} {target}")
    for outcome in outcomes.values():
        for failure in outcome.failures:
            print(f"FAILED: {failure}")
    raise SystemExit(0 if succeeded(outcomes) else 1)


if __name__ == "__main__":
    main()
