"""Latency from a status-page change to the comment on Reddit, and what each poll costs.

Runs the real ``modbot run`` as a subprocess against the fake status page and the fake
Reddit (both served from this process, which timestamps what arrives). It opens an
incident, then changes it ``--changes`` times, spaced wider than the minimum edit gap,
and measures each change's time until the fake Reddit holds the new body. It also
counts Reddit calls per update and during a quiet stretch, status-page requests and
bytes per unchanged poll, the bot's CPU per poll (from /proc) and its peak RSS.

    python -m bench.latency [--changes 20] [--poll-interval 2] [--quiet-polls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BotProcess, bot_env, expected_body, fakes, live_comments
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import PAGE, incident, update

LOGIN_PATH = "/api/v1/access_token"


@dataclass
class Latency:
    """What one latency run measured."""

    poll: float
    gap: float
    changes: int
    first_comment: float
    latencies: list[float]
    calls_per_update: float
    quiet_polls: int
    quiet_calls: int
    page_requests_per_quiet_poll: float
    page_bytes_per_quiet_poll: float
    page_statuses: list[int]
    cpu_ms_per_quiet_poll: float
    cpu_ms_per_changed_poll: float
    peak_rss_mb: float

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)


def version(count: int) -> dict[str, Any]:
    """The feed after ``count`` extra updates of the incident."""
    updates = [update("u0", "investigating", "We are investigating elevated errors.", 0)]
    updates += [
        update(f"u{k}", "identified", f"Update number {k}.", k) for k in range(1, count + 1)
    ]
    status = "identified" if count else "investigating"
    return {"page": dict(PAGE), "incidents": [incident("lat1", status, list(reversed(updates)))]}


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(round(share * (len(ordered) - 1)), len(ordered) - 1)]


async def wait_for_body(fake: FakeReddit, body: str, timeout: float) -> float:
    """Seconds until a bot comment shows ``body``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(c.body == body for c in live_comments(fake)):
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise TimeoutError("the comment never showed the change")


def api_calls(fake: FakeReddit) -> int:
    return sum(1 for call in fake.calls if call.path != LOGIN_PATH)


async def measure(changes: int, poll: float, gap: float, quiet_polls: int) -> Latency:
    """Run the real bot and measure; see the module docstring."""
    async with fakes() as both:
        with tempfile.TemporaryDirectory() as tmp:
            env = bot_env(
                both, Path(tmp) / "bench.sqlite3",
                MODBOT_POLL_INTERVAL=str(poll), MODBOT_MIN_EDIT_INTERVAL=str(gap),
                MODBOT_MEGATHREAD_CHECK_INTERVAL="3600", MODBOT_INBOX_INTERVAL="3600",
            )  # fmt: skip
            bot = BotProcess(env, Path(tmp))
            await bot.start()
            try:
                await asyncio.sleep(poll * 2)  # start-up and the (empty) baseline poll
                both.page.set_document(version(0))
                first = await wait_for_body(
                    both.reddit, expected_body(version(0), "lat1", both.page.url), poll * 4
                )
                latencies = []
                calls_before, cpu_before = api_calls(both.reddit), bot.cpu_seconds()
                for count in range(1, changes + 1):
                    await asyncio.sleep(gap + 0.1 + (count * 0.37) % poll)  # varied poll phase
                    both.page.set_document(version(count))
                    body = expected_body(version(count), "lat1", both.page.url)
                    latencies.append(await wait_for_body(both.reddit, body, poll * 4 + gap))
                cpu_changed = (bot.cpu_seconds() - cpu_before) * 1000 / changes
                calls_per_update = (api_calls(both.reddit) - calls_before) / changes
                quiet_calls_start = api_calls(both.reddit)
                requests_start, cpu_start = len(both.page.requests), bot.cpu_seconds()
                await asyncio.sleep(poll * quiet_polls + poll / 2)
                quiet = both.page.requests[requests_start:]
                cpu_quiet = (bot.cpu_seconds() - cpu_start) * 1000 / max(len(quiet), 1)
                quiet_calls = api_calls(both.reddit) - quiet_calls_start
                peak = bot.peak_rss_mb()
            finally:
                await bot.stop()
    return Latency(
        poll=poll, gap=gap, changes=changes, first_comment=first, latencies=latencies,
        calls_per_update=calls_per_update, quiet_polls=len(quiet), quiet_calls=quiet_calls,
        page_requests_per_quiet_poll=len(quiet) / max(len(quiet), 1),
        page_bytes_per_quiet_poll=statistics.fmean(r.bytes_in + r.bytes_out for r in quiet),
        page_statuses=sorted({r.status for r in quiet}),
        cpu_ms_per_quiet_poll=cpu_quiet, cpu_ms_per_changed_poll=cpu_changed, peak_rss_mb=peak,
    )  # fmt: skip


def show(result: Latency) -> None:
    """Print a latency run."""
    poll = result.poll
    print(f"poll interval {poll:g} s, minimum edit gap {result.gap:g} s, {result.changes} changes")
    rows = [
        ("first comment of a new incident", f"{result.first_comment:.2f} s"),
        ("feed change -> edited comment, median", f"{result.median:.2f} s"),
        (
            "feed change -> edited comment, p95",
            f"{result.p95:.2f} s (target <= {poll + 0.5:.2f} s)",
        ),
        ("feed change -> edited comment, max", f"{max(result.latencies):.2f} s"),
        ("Reddit API calls per incident update", f"{result.calls_per_update:.2f}"),
        (f"Reddit API calls in {result.quiet_polls} unchanged polls", result.quiet_calls),
    ]
    print(f"{'measure':<48} value")
    for name, value in rows:
        print(f"{name:<48} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--min-edit-interval", type=float, default=1.0)
    parser.add_argument("--quiet-polls", type=int, default=10)
    args = parser.parse_args()
    show(
        asyncio.run(
            measure(args.changes, args.poll_interval, args.min_edit_interval, args.quiet_polls)
        )
    )


async def idle_calls(minutes: float = 1.0) -> float:
    """Reddit calls per minute of the real bot with nothing to deliver, at the default
    intervals (inbox every 15 s, megathread every 300 s): the price of answering
    moderators' commands within 15 s."""
    async with fakes() as both:
        with tempfile.TemporaryDirectory() as tmp:
            env = bot_env(both, Path(tmp) / "idle.sqlite3")
            for name in ("MODBOT_INBOX_INTERVAL", "MODBOT_MEGATHREAD_CHECK_INTERVAL"):
                env.pop(name, None)  # the defaults
            bot = BotProcess(env, Path(tmp))
            await bot.start()
            try:
                await asyncio.sleep(5)  # start-up: login, the first lookups
                before = api_calls(both.reddit)
                await asyncio.sleep(60 * minutes)
                calls = api_calls(both.reddit) - before
            finally:
                await bot.stop()
    return calls / minutes
