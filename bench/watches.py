"""Watches: 1, 10, 50 and 200 watches of all four kinds in one ``modbot run``.

Every watch reads its own local fake page (Statuspage, incident.io, Google Cloud, an
Atom feed, in turn) and posts into one fake subreddit's megathread. For each size the
real bot runs as a child process and the script reports its peak RSS, its CPU per poll
round (every watch polled once, nothing changed) and per watch-poll, paired with the
bare loop (``bench.bare``, in a child process polling the same pages at the same
interval at the same time: the floor), the connections each opened while idle (0
reconnects is the target: one kept-alive connection per host), and, with every watch
opening an incident at the same moment, the Reddit calls in the busiest minute and how
long the last watch's first comment took.

Fairness runs follow: one watch opens 40 incidents while nine others open one each,
under a budget of 20 calls a minute; no quiet watch's first comment may wait more than
one poll interval and 5 s. Ten runs (five at a time: each is a bot of its own), the
worst printed.

Last, the cost of an unchanged poll of an incident.io and a Google Cloud page (they send
no usable validators, so the body's hash decides): CPU per fetch, in-process.

    python -m bench.watches [--sizes 1 10 50 200] [--poll-interval 2] [--fairness-runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.bare import AGENT as BARE_AGENT
from bench.core import process_cpu
from bench.harness import BotProcess, live_comments, wait_until
from bench.scale import busiest_minute
from modbot.core import markdown
from modbot.core.records import Validators
from modbot.sources.fetch import make_http_client
from modbot.sources.gcloud import GcloudClient
from modbot.sources.incidentio import IncidentioClient
from tests.conftest import BOT, MEGATHREAD_TITLE, ROOT, reddit_env
from tests.fakes.gcloud import GEMINI, FakeGcloud
from tests.fakes.incidentio import COMPAT, FakeIncidentio
from tests.fakes.reddit import FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update

KINDS = ("statuspage", "incidentio", "gcloud", "atom")
POLLED = {
    "statuspage": "/api/v2/incidents.json",
    "incidentio": "/api/v2/incidents.json",
    "gcloud": "/incidents.json",
    "atom": "/history.atom",
}
SUBREDDIT = "ClaudeAI"
GEMINI_PRODUCT = "Vertex Gemini API"


# --- one fake page per watch, each able to open an incident on cue ---------------------


class Page:
    """A watch's fake page: ``url`` for the watches file, ``open`` to start an incident."""

    kind: str
    url: str
    components: tuple[str, ...] = ()
    site: FakeSite

    def open(self, number: int) -> None:
        raise NotImplementedError

    @property
    def polled(self) -> str:
        """The URL a watch of this page fetches on every poll."""
        return self.site.url + POLLED[self.kind]

    def connections(self, agent: str) -> int:
        """Connections opened to this page so far by clients whose User-Agent starts
        with ``agent``."""
        return self.site.connections(agent)


class StatuspagePage(Page):
    kind = "statuspage"

    def __init__(self, fake: FakeStatuspage) -> None:
        self.fake, self.url, self.incidents = fake, fake.url, []
        fake.set_incidents([])

    @property
    def polled(self) -> str:
        return self.url + POLLED[self.kind]

    def connections(self, agent: str) -> int:
        return self.fake.connections(agent)

    def open(self, number: int) -> None:
        first = update(f"sp{number}u", "investigating", f"Incident {number} began.", 0)
        self.incidents.append(incident(f"sp{number:08d}", "investigating", [first]))
        self.fake.set_incidents(list(self.incidents))


class IncidentioPage(Page):
    kind = "incidentio"

    def __init__(self, site: FakeSite) -> None:
        self.fake, self.url, self.incidents = FakeIncidentio(site), site.url, []
        self.site = site
        self.fake.set([], [])

    def open(self, number: int) -> None:
        item = copy.deepcopy(COMPAT["incidents"][0])
        item["id"] = f"01J{number:023d}"
        item["status"], item["resolved_at"] = "investigating", None
        for entry in item["incident_updates"]:
            entry["status"] = "investigating"
        self.incidents.append(item)
        self.fake.set(list(self.incidents), [])


class GcloudPage(Page):
    kind = "gcloud"
    components = (GEMINI_PRODUCT,)

    def __init__(self, site: FakeSite) -> None:
        self.fake, self.url, self.incidents = FakeGcloud(site), site.url, []
        self.site = site

    def open(self, number: int) -> None:
        self.incidents.append(dict(copy.deepcopy(GEMINI), id=f"gc{number}", end=None))
        self.fake.set(list(self.incidents))


class AtomPage(Page):
    kind = "atom"

    def __init__(self, site: FakeSite) -> None:
        self.site, self.url, self.entries = site, site.url + "/history.atom", []
        self._publish()

    def open(self, number: int) -> None:
        self.entries.append(number)
        self._publish()

    def _publish(self) -> None:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        when = now.strftime("%b <var data-var='date'>%d</var>, <var data-var='time'>%H:%M</var>")
        entries = "".join(
            f"<entry><id>tag:{self.site.host},2005:Incident/{n}</id>"
            f"<published>{stamp}</published><updated>{stamp}</updated>"
            f'<link rel="alternate" type="text/html" href="{self.site.url}/incidents/at{n:08d}"/>'
            f'<title>Feed incident {n}</title><content type="html">'
            + escape(f"<p><small>{when} UTC</small><br><strong>Investigating</strong> - Began.</p>")
            + "</content></entry>"
            for n in self.entries
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>tag:{self.site.host},2005:/history</id><title>Feed</title>"
            f"<updated>{stamp}</updated>{entries}</feed>"
        )
        self.site.put("/history.atom", body, "application/atom+xml")


@asynccontextmanager
async def pages(count: int) -> AsyncIterator[list[Page]]:
    """``count`` fake pages, the four kinds in turn, each on its own local server."""
    async with AsyncExitStack() as stack:
        made: list[Page] = []
        for index in range(count):
            kind = KINDS[index % len(KINDS)]
            if kind == "statuspage":
                made.append(StatuspagePage(await stack.enter_async_context(FakeStatuspage())))
                continue
            site = await stack.enter_async_context(FakeSite())
            made.append(
                {"incidentio": IncidentioPage, "gcloud": GcloudPage}.get(kind, AtomPage)(site)
            )
        yield made


def watches_file(made: list[Page], poll: float) -> str:
    """The ``modbot.toml`` of these pages, all posting into one megathread."""
    blocks = []
    for index, page in enumerate(made):
        components = ", ".join(f'"{c}"' for c in page.components)
        blocks.append(
            f'[[watch]]\nname = "w{index:02d}-{page.kind}"\nurl = "{page.url}"\n'
            f'kind = "{page.kind}"\nsubreddit = "{SUBREDDIT}"\npoll_interval = {poll}\n'
            + (f"components = [{components}]\n" if components else "")
        )
    return "\n".join(blocks)


# --- one run ---------------------------------------------------------------------------


@dataclass
class Sized:
    """What one size measured."""

    watches: int
    peak_rss_mb: float
    cpu_ms_per_round: float
    busiest_minute: int
    last_first_comment: float
    bare_ms_per_round: float = float("nan")  # the bare loop's, over the same pages and time
    reconnects: int = 0  # connections the bot opened while idle, its first ones excepted
    bare_reconnects: int = 0
    reddit_reconnects: int = 0  # connections to Reddit the bot opened while idle

    @property
    def per_watch_poll(self) -> float:
        """The bot's idle CPU ms per watch-poll."""
        return self.cpu_ms_per_round / self.watches

    @property
    def bare_per_watch_poll(self) -> float:
        """The bare loop's CPU ms per page-poll."""
        return self.bare_ms_per_round / self.watches

    @property
    def ratio(self) -> float:
        """Idle CPU against the bare loop's."""
        return self.cpu_ms_per_round / self.bare_ms_per_round


def _env(reddit: FakeReddit, config: Path, database: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
    env.update(reddit_env(reddit), PYTHONPATH=str(ROOT))
    env.update(
        MODBOT_CONFIG=str(config),
        MODBOT_DATABASE=str(database),
        MODBOT_TEST_FAST="true",
        MODBOT_MIN_EDIT_INTERVAL="0",
        MODBOT_RECONCILE_GRACE="30",
        MODBOT_INBOX_INTERVAL="30",
        MODBOT_MEGATHREAD_CHECK_INTERVAL="300",
        MODBOT_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _first_comment_times(reddit: FakeReddit, started: float) -> dict[str, float]:
    """Seconds from ``started`` to each watch's first comment (the watch its marker names)."""
    times: dict[str, float] = {}
    for call in reddit.calls:
        if call.path.rstrip("/") != "/api/comment" or call.status != 200 or call.time < started:
            continue
        found = markdown.marker_of(call.form.get("text", ""))
        parsed = markdown.parse_marker(found) if found else None
        if parsed is not None:
            times.setdefault(parsed[0], call.time - started)
    return times


@asynccontextmanager
async def running(
    made: list[Page], poll: float, **extra: str
) -> AsyncIterator[tuple[FakeReddit, BotProcess]]:
    """The fake Reddit and the real bot watching ``made``."""
    async with FakeReddit(subreddit=SUBREDDIT, **BOT) as reddit:
        reddit.add_submission(MEGATHREAD_TITLE, sticky=1)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "modbot.toml"
            config.write_text(watches_file(made, poll))
            bot = BotProcess(_env(reddit, config, Path(tmp) / "w.sqlite3", **extra), Path(tmp))
            await bot.start()
            try:
                yield reddit, bot
            finally:
                await bot.stop(timeout=20)


def threads_cpu(pid: int) -> float:
    """CPU seconds of every thread of process ``pid`` (the store's thread included), to
    the nanosecond where ``schedstat`` is there."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return process_cpu(pid)
    return total


@asynccontextmanager
async def bare_loop(made: list[Page], poll: float) -> AsyncIterator[int]:
    """``bench.bare`` polling the same pages as the bot, in a child process; its pid."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bare", str(poll), *[p.polled for p in made], cwd=ROOT
    )
    try:
        yield child.pid
    finally:
        child.kill()
        await child.wait()


async def measure(count: int, poll: float, quiet_rounds: int = 15) -> Sized:
    """One size: idle CPU per round, paired with the bare loop, then every watch opening
    an incident at once."""
    async with pages(count) as made, running(made, poll) as (reddit, bot):
        await asyncio.sleep(poll * 3)  # every watch has taken its baseline
        async with bare_loop(made, poll) as bare:
            await asyncio.sleep(poll * 2)  # the bare loop's first polls are behind it
            opened = sum(p.connections("modbot") for p in made)
            bare_opened = sum(p.connections(BARE_AGENT) for p in made)
            reddit_peers, reddit_calls = {c.peer for c in reddit.calls}, len(reddit.calls)
            cpu, bare_cpu = threads_cpu(bot.pid), threads_cpu(bare)
            await asyncio.sleep(poll * quiet_rounds)
            per_round = (threads_cpu(bot.pid) - cpu) * 1000 / quiet_rounds
            bare_round = (threads_cpu(bare) - bare_cpu) * 1000 / quiet_rounds
            reconnects = sum(p.connections("modbot") for p in made) - opened
            bare_reconnects = sum(p.connections(BARE_AGENT) for p in made) - bare_opened
            reddit_reconnects = len({c.peer for c in reddit.calls[reddit_calls:]} - reddit_peers)
        calls_before = len(reddit.calls)
        started = time.monotonic()
        for number, page in enumerate(made):
            page.open(number)
        await wait_until(lambda: len(live_comments(reddit)) >= count, 300, step=0.1)
        last = max(_first_comment_times(reddit, started).values(), default=float("nan"))
        stamps = [c.time for c in reddit.calls[calls_before:] if c.path != "/api/v1/access_token"]
        return Sized(
            count,
            bot.peak_rss_mb(),
            per_round,
            busiest_minute(stamps),
            last,
            bare_round,
            reconnects,
            bare_reconnects,
            reddit_reconnects,
        )


@dataclass
class Fairness:
    """The busy-watch run."""

    budget: int
    busiest_minute: int
    worst_quiet_wait: float
    busy_all_posted: float


async def fairness(
    poll: float, busy_incidents: int = 40, quiet: int = 9, budget: int = 20
) -> Fairness:
    """One watch opens ``busy_incidents`` at once, ``quiet`` others one each."""
    async with AsyncExitStack() as stack:
        made: list[Page] = []
        for _ in range(quiet + 1):
            made.append(StatuspagePage(await stack.enter_async_context(FakeStatuspage())))
        async with running(made, poll, MODBOT_REDDIT_CALLS_PER_MINUTE=str(budget)) as (reddit, _):
            # Start-up (finding the thread, each watch's look for its own comments) spends
            # part of the budget; let it leave the window so the burst starts level.
            await asyncio.sleep(61)
            calls_before = len(reddit.calls)
            started = time.monotonic()
            busy = made[0]
            for number in range(busy_incidents):
                busy.incidents.append(
                    incident(
                        f"busy{number:08d}",
                        "investigating",
                        [update(f"b{number}", "investigating", "Began.", 0)],
                    )
                )
            assert isinstance(busy, StatuspagePage)
            busy.fake.set_incidents(list(busy.incidents))
            await asyncio.sleep(0.5)  # the busy watch gets its head start
            for number, page in enumerate(made[1:], start=1):
                page.open(number)
            total = busy_incidents + quiet
            # The quiet watches keep a slot each: the busy one gets the rest (about 4 a
            # minute here, next to the inbox's and the readers' calls).
            posted = await wait_until(lambda: len(live_comments(reddit)) >= total, 900, step=0.2)
            busy_done = time.monotonic() - started if posted else float("inf")
            firsts = _first_comment_times(reddit, started)
            quiet_waits = [t for w, t in firsts.items() if not w.startswith("w00")]
            stamps = [
                c.time for c in reddit.calls[calls_before:] if c.path != "/api/v1/access_token"
            ]
    return Fairness(
        budget, busiest_minute(stamps), max(quiet_waits, default=float("nan")), busy_done
    )


async def fairness_runs(poll: float, runs: int, at_once: int = 5) -> list[Fairness]:
    """``runs`` fairness runs, ``at_once`` at a time (each its own bot and fakes)."""
    done: list[Fairness] = []
    while len(done) < runs:
        batch = min(at_once, runs - len(done))
        done += await asyncio.gather(*(fairness(poll) for _ in range(batch)))
    return done


# --- unchanged polls without validators ------------------------------------------------


async def _serve_pages() -> None:
    """Child process: an incident.io and a Google Cloud page, their URLs on stdout."""
    async with FakeSite() as io_site, FakeSite() as gc_site:
        IncidentioPage(io_site).open(1)
        GcloudPage(gc_site).open(1)
        print(io_site.url, gc_site.url, flush=True)
        await asyncio.Event().wait()


async def unchanged_poll_cpu(fetches: int = 200) -> dict[str, float]:
    """Median CPU ms of an unchanged fetch of an incident.io and a Google Cloud page.

    The pages are served by a child process, so only the bot's side is counted.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import asyncio, bench.watches as w; asyncio.run(w._serve_pages())",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    io_url, gc_url = (await child.stdout.readline()).decode().split()
    results: dict[str, float] = {}
    try:
        async with make_http_client(5.0) as http:
            clients: dict[str, Any] = {
                "incidentio (list + summary)": IncidentioClient(io_url, http, summary=True),
                "gcloud": GcloudClient(gc_url, http, products=[GEMINI_PRODUCT]),
            }
            for kind, client in clients.items():
                validators = (await client.fetch(Validators())).validators
                samples = []
                for _ in range(fetches):
                    cpu = time.process_time()
                    fetched = await client.fetch(validators)
                    samples.append((time.process_time() - cpu) * 1000)
                    assert fetched.feed is None
                results[kind] = statistics.median(samples)
    finally:
        child.kill()
        await child.wait()
    return results


# --- report ----------------------------------------------------------------------------


async def main(sizes: list[int], poll: float, fairness_count: int = 10) -> dict[str, Any]:
    """Run and print every part; return the figures."""
    measured = [await measure(n, poll) for n in sizes]
    base = measured[0].peak_rss_mb
    print(f"poll interval {poll:g} s; pages of kinds {', '.join(KINDS)} in turn; one megathread")
    print(
        f"{'watches':>8} {'peak RSS MB':>12} {'x one':>6} {'CPU ms/round':>13} "
        f"{'ms/watch-poll':>14} {'bare ms':>8} {'x bare':>7} {'reconnects':>11} "
        f"{'busiest min':>12} {'last 1st comment s':>19}"
    )
    for row in measured:
        print(
            f"{row.watches:>8} {row.peak_rss_mb:>12.1f} {row.peak_rss_mb / base:>6.2f} "
            f"{row.cpu_ms_per_round:>13.1f} {row.per_watch_poll:>14.2f} "
            f"{row.bare_per_watch_poll:>8.2f} {row.ratio:>7.2f} "
            f"{row.reconnects:>6} ({row.bare_reconnects}) {row.reddit_reconnects} "
            f"{row.busiest_minute:>12} {row.last_first_comment:>19.1f}"
        )
    print(
        "(reconnects: the bot's to its pages while idle, the bare loop's in brackets, then the"
        " bot's to Reddit; target 0, and x bare <= 1.3)"
    )
    figures: dict[str, Any] = {"sizes": measured}
    if fairness_count:
        runs = await fairness_runs(poll, fairness_count)
        worst = max(runs, key=lambda f: f.worst_quiet_wait)
        figures["fairness"] = worst
        figures["fairness_runs"] = runs
        within = sum(1 for f in runs if f.worst_quiet_wait <= poll + 5)
        print(
            f"fairness: 1 watch opens 40 incidents, 9 open 1 each, budget {worst.budget}/min, "
            f"{len(runs)} runs: worst quiet watch's first comment after "
            f"{worst.worst_quiet_wait:.1f} s (target <= {poll + 5:g} s, one poll + 5 s), "
            f"within it in {within} of {len(runs)} runs; each run's worst: "
            + ", ".join(f"{f.worst_quiet_wait:.1f}" for f in runs)
            + f"; busiest minute {max(f.busiest_minute for f in runs)} calls; the busy "
            f"watch's 40 all posted after {statistics.median(f.busy_all_posted for f in runs):.0f} s"
            " (median; inf: not within 900 s)"
        )
    cpu = await unchanged_poll_cpu()
    figures["unchanged"] = cpu
    for kind, ms in cpu.items():
        print(f"unchanged {kind} poll, no validators (hash only): {ms:.2f} ms CPU (target < 2)")
    return figures


def cli() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.watches", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--fairness-runs", type=int, default=10, help="busy-watch runs (0: none)")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.poll_interval, args.fairness_runs))


if __name__ == "__main__":
    cli()
