"""Scale: one bot with 50 incidents open at once, then 200 feed changes in 10 seconds.

Runs the real ``modbot run`` with its default minimum edit gap and Reddit call budget
against both fakes. Reports how many Reddit calls the 50 first comments and the burst
take, the most calls in any 60 seconds (Reddit allows 100), and how long until every
comment shows the latest state.

    python -m bench.scale [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BotProcess, bot_env, expected_body, fakes, live_comments, wait_until
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import PAGE, incident, update

INCIDENTS = 50
BURST = 200
BURST_SECONDS = 10.0


@dataclass
class Scale:
    """What the scale run measured."""

    poll: float
    first_calls: int
    first_seconds: float
    burst_calls: int
    burst_seconds: float
    max_calls_per_minute: int
    peak_rss_mb: float


def feed(versions: list[int]) -> dict[str, Any]:
    """50 open incidents; incident ``n`` has ``versions[n]`` extra updates."""
    incidents = []
    for number, extra in enumerate(versions):
        updates = [update(f"s{number}u0", "investigating", f"Incident {number} began.", 0)]
        updates += [
            update(f"s{number}u{k}", "identified", f"Update {k}.", k) for k in range(1, extra + 1)
        ]
        incidents.append(incident(f"scale{number:03d}", "investigating", list(reversed(updates))))
    return {"page": dict(PAGE), "incidents": incidents}


def all_current(reddit: FakeReddit, document: dict[str, Any], home: str) -> bool:
    bodies = {c.body for c in live_comments(reddit)}
    return all(expected_body(document, i["id"], home) in bodies for i in document["incidents"])


def busiest_minute(stamps: list[float]) -> int:
    """The most calls within any 60 s window."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 60:
            start += 1
        best = max(best, end - start + 1)
    return best


async def measure(poll: float) -> Scale:
    """Run the real bot through the scale scenario."""
    async with fakes() as both:
        with tempfile.TemporaryDirectory() as tmp:
            env = bot_env(
                both, Path(tmp) / "scale.sqlite3", MODBOT_POLL_INTERVAL=str(poll),
                MODBOT_MIN_EDIT_INTERVAL="5", MODBOT_RECONCILE_GRACE="30",
                MODBOT_INBOX_INTERVAL="30", MODBOT_MEGATHREAD_CHECK_INTERVAL="300",
            )  # fmt: skip
            bot = BotProcess(env, Path(tmp))
            await bot.start()
            try:
                await asyncio.sleep(poll * 2)
                versions = [0] * INCIDENTS
                calls_start, started = len(both.reddit.calls), time.monotonic()
                document = feed(versions)
                both.page.set_document(document)
                await wait_until(
                    lambda: all_current(both.reddit, document, both.page.url), 300, step=0.1
                )
                first_seconds = time.monotonic() - started
                first_calls = len(both.reddit.calls) - calls_start
                calls_start, started = len(both.reddit.calls), time.monotonic()
                for change in range(BURST):
                    versions[change % INCIDENTS] += 1
                    both.page.set_document(feed(versions))
                    await asyncio.sleep(BURST_SECONDS / BURST)
                document = feed(versions)
                await wait_until(
                    lambda: all_current(both.reddit, document, both.page.url), 600, step=0.2
                )
                burst_seconds = time.monotonic() - started
                burst_calls = len(both.reddit.calls) - calls_start
                peak = bot.peak_rss_mb()
            finally:
                await bot.stop()
    stamps = [c.time for c in both.reddit.calls if c.path != "/api/v1/access_token"]
    return Scale(
        poll=poll, first_calls=first_calls, first_seconds=first_seconds, burst_calls=burst_calls,
        burst_seconds=burst_seconds, max_calls_per_minute=busiest_minute(stamps), peak_rss_mb=peak,
    )  # fmt: skip


def show(result: Scale) -> None:
    """Print a scale run."""
    print(f"poll interval {result.poll:g} s, default edit gap (5 s) and call budget (90/min)")
    rows = [
        (f"{INCIDENTS} incidents opened at once: Reddit calls", result.first_calls),
        (
            f"{INCIDENTS} incidents opened at once: all posted after",
            f"{result.first_seconds:.1f} s",
        ),
        (f"{BURST} changes in {BURST_SECONDS:g} s: Reddit calls", result.burst_calls),
        (
            f"{BURST} changes in {BURST_SECONDS:g} s: all current after",
            f"{result.burst_seconds:.1f} s",
        ),
        ("most Reddit calls in any 60 s (Reddit allows 100)", result.max_calls_per_minute),
        ("peak RSS of the bot", f"{result.peak_rss_mb:.1f} MB"),
    ]
    for name, value in rows:
        print(f"{name:<52} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll-interval", type=float, default=2.0)
    show(asyncio.run(measure(parser.parse_args().poll_interval)))
