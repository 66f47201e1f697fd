"""Latency from a status-page change to the comment on Reddit, and Reddit calls per update.

Runs the real ``modbot run`` as a subprocess against the fake status page and the fake
Reddit (both served from this process, which timestamps what arrives). It opens an
incident, then changes it ``--changes`` times, spaced wider than the minimum edit gap,
and measures each change's time until the fake Reddit holds the new body. It also
counts Reddit API calls per update, and during a quiet stretch where nothing changes.

    python -m bench.latency [--changes 20] [--poll-interval 2] [--quiet-polls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modbot.feed import parse_incidents_object
from modbot.incidents import view_of
from modbot.render import PageInfo, Renderer
from modbot.settings import default_templates_dir
from tests.conftest import BOT, MEGATHREAD_TITLE, ROOT, reddit_env
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update

RENDERER = Renderer(
    default_templates_dir(),
    page=PageInfo("status.example.com", "https://status.example.com"),
    subreddit="ClaudeAI",
)
LOGIN_PATH = "/api/v1/access_token"


def version(count: int) -> dict[str, Any]:
    """The incident after ``count`` extra updates."""
    updates = [update("u0", "investigating", "We are investigating elevated errors.", 0)]
    updates += [
        update(f"u{k}", "identified", f"Update number {k}.", k) for k in range(1, count + 1)
    ]
    return incident("lat1", "identified" if count else "investigating", list(reversed(updates)))


def expected(document: dict[str, Any]) -> str:
    view = view_of(parse_incidents_object({"incidents": [document]}).incidents[0])
    return RENDERER.render_incident(view).body


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(round(share * (len(ordered) - 1)), len(ordered) - 1)]


async def wait_for_body(fake: FakeReddit, body: str, timeout: float) -> float:
    """Seconds until a bot comment shows ``body``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(c.body == body for c in fake.comments_by(BOT["username"])):
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise TimeoutError("the comment never showed the change")


def api_calls(fake: FakeReddit) -> int:
    return sum(1 for call in fake.calls if call.path != LOGIN_PATH)


async def measure(changes: int, poll: float, gap: float, quiet_polls: int) -> None:
    async with FakeStatuspage() as page, FakeReddit(subreddit="ClaudeAI", **BOT) as fake:
        fake.add_submission(MEGATHREAD_TITLE, sticky=1)
        page.set_incidents([])
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
            env.update(reddit_env(fake), PYTHONPATH=str(ROOT))
            env.update(
                MODBOT_STATUSPAGE_URL=page.url,
                MODBOT_DATABASE=str(Path(tmp) / "bench.sqlite3"),
                MODBOT_POLL_INTERVAL=str(poll),
                MODBOT_MIN_EDIT_INTERVAL=str(gap),
                MODBOT_MEGATHREAD_CHECK_INTERVAL="3600",
                MODBOT_LOG_LEVEL="WARNING",
            )
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modbot",
                "run",
                env=env,
                cwd=tmp,
                stdout=asyncio.subprocess.DEVNULL,
            )
            try:
                await asyncio.sleep(poll * 2)  # start-up and the (empty) baseline poll
                page.set_incidents([version(0)])
                first = await wait_for_body(fake, expected(version(0)), poll * 4)
                latencies = []
                calls_before = api_calls(fake)
                for count in range(1, changes + 1):
                    await asyncio.sleep(gap + 0.1 + (count * 0.37) % poll)  # varied poll phase
                    document = version(count)
                    page.set_incidents([document])
                    latencies.append(await wait_for_body(fake, expected(document), poll * 4 + gap))
                calls_per_update = (api_calls(fake) - calls_before) / changes
                quiet_start = api_calls(fake)
                await asyncio.sleep(poll * quiet_polls)
                quiet_calls = api_calls(fake) - quiet_start
            finally:
                bot.terminate()
                await bot.wait()
    print(f"poll interval {poll:g} s, minimum edit gap {gap:g} s, {changes} changes")
    print(f"{'measure':<48} value")
    print(f"{'first comment of a new incident':<48} {first:.2f} s")
    print(f"{'feed change -> edited comment, median':<48} {statistics.median(latencies):.2f} s")
    print(f"{'feed change -> edited comment, p95':<48} {percentile(latencies, 0.95):.2f} s "
          f"(target <= {poll + 0.5:.2f} s)")  # fmt: skip
    print(f"{'feed change -> edited comment, max':<48} {max(latencies):.2f} s")
    print(f"{'Reddit API calls per incident update':<48} {calls_per_update:.2f}")
    print(f"{f'Reddit API calls in {quiet_polls} unchanged polls':<48} {quiet_calls}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--min-edit-interval", type=float, default=1.0)
    parser.add_argument("--quiet-polls", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.changes, args.poll_interval, args.min_edit_interval, args.quiet_polls))
