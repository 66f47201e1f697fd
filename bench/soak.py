"""Soak run: one real ``modbot run`` process for many minutes, every real timeline, faults.

Replays every real incident timeline in the samples (Claude's 25 from its Atom feed,
Cloudflare's and Emma's JSON), several at a time and round after round with fresh
ids (so the feed's window keeps pushing old incidents out), at accelerated speed.
Faults are sprinkled in: status-page HTML/503/malformed/hang, Reddit 5xx before and
after writes, 429, RATELIMIT, listing lag, megathread rotation, moderator commands.
Each incident's final comment is checked. Prints incidents handled, Reddit calls,
faults and bot warnings by kind, RSS and open file descriptors at start and end.

    python -m bench.soak [--minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    BotProcess,
    bot_env,
    expected_body,
    fakes,
    live_comments,
    real_timelines,
    retimed,
    wait_until,
)
from modbot.core.markdown import marker_id

SOAK_PAGE = {"id": "soakpage0001", "name": "Soak", "url": "https://status.example.com"}
FAULTS = (
    "page-html", "page-503", "page-malformed", "page-hang", "reddit-5xx-before",
    "reddit-5xx-after", "reddit-edit-5xx", "reddit-429", "reddit-ratelimit", "listing-lag",
    "rotate-megathread", "moderator-command",
)  # fmt: skip


class Soak:
    """The feed the soak serves and what it expects on Reddit."""

    def __init__(self, both: Any) -> None:
        self.both = both
        self.current: dict[str, dict[str, Any]] = {}  # incident id -> its latest document
        self.order: list[str] = []  # newest last
        self.faults: Counter[str] = Counter()
        self.finished: list[tuple[str, str]] = []  # (incident id, final body)
        self.notices: list[str] = []
        self.messages: dict[str, str] = {}  # notice text -> the command's message id

    def publish(self) -> None:
        recent = self.order[-50:]  # the API lists the 50 most recent incidents
        incidents = [self.current[i]["incidents"][0] for i in reversed(recent)]
        self.both.page.set_document({"page": SOAK_PAGE, "incidents": incidents})

    def step(self, incident_id: str, document: dict[str, Any]) -> None:
        if incident_id not in self.current:
            self.order.append(incident_id)
        # One page serves every incident, so expectations use that page too.
        self.current[incident_id] = {"page": SOAK_PAGE, "incidents": document["incidents"]}
        self.publish()

    def fault(self) -> None:
        kind = random.choice(FAULTS)
        self.faults[kind] += 1
        page, reddit = self.both.page, self.both.reddit
        match kind:
            case "page-html":
                page.misbehave("html200")
            case "page-503":
                page.misbehave("html503")
            case "page-malformed":
                page.misbehave("malformed")
            case "page-hang":
                page.misbehave("hang", seconds=3)
            case "reddit-5xx-before":
                reddit.fail_next("POST", "/api/comment/", 503, when="before")
            case "reddit-5xx-after":
                reddit.fail_next("POST", "/api/comment/", 503, when="after")
            case "reddit-edit-5xx":
                reddit.fail_next("POST", "/api/editusertext/", 502)
            case "reddit-429":
                reddit.fail_next("GET", "/", 429, headers={"Retry-After": "2"})
            case "reddit-ratelimit":
                reddit.ratelimit_next("/api/comment/", seconds=2)
            case "listing-lag":
                reddit.listing_lag = 1.0
            case "rotate-megathread":
                reddit.add_submission(
                    f"Performance and Bugs Megathread #{self.faults[kind]}", sticky=1
                )
            case "moderator-command":
                text = f"Soak notice {len(self.notices)}."
                self.notices.append(text)
                self.messages[text] = reddit.send_message("alice", f"!post {text}")


async def run(minutes: float, seed: int) -> int:
    random.seed(seed)
    timelines = real_timelines(min_updates=1)
    deadline = time.monotonic() + minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        async with fakes() as both:
            log = Path(tmp) / "bot.log"
            # Time runs about 20x faster than in production, so Reddit's budget does too.
            env = bot_env(both, Path(tmp) / "state.sqlite3", MODBOT_LOG_FORMAT="json",
                          MODBOT_MEGATHREAD_CHECK_INTERVAL="2", MODBOT_INBOX_INTERVAL="1",
                          MODBOT_REDDIT_CALLS_PER_MINUTE="600")  # fmt: skip
            bot = BotProcess(env, Path(tmp), log)
            await bot.start()
            soak = Soak(both)
            await asyncio.sleep(2)
            start = (bot.rss_mb(), bot.open_fds(), bot.cpu_seconds())
            calls_start = len(both.reddit.calls)
            rounds = 0
            rss_by_minute = [bot.rss_mb()]
            next_sample = time.monotonic() + 60
            active: list[tuple[str, list[dict[str, Any]]]] = []
            queue = [(i, d) for i, d in timelines]
            while time.monotonic() < deadline:
                while len(active) < 4:
                    if not queue:
                        rounds += 1
                        queue = [(i, d) for i, d in timelines]
                    _, documents = queue.pop(0)
                    active.append(retimed(documents, f"r{rounds}", datetime.now(UTC)))
                incident_id, documents = random.choice(active)
                soak.step(incident_id, documents.pop(0))
                if not documents:
                    active.remove(next(a for a in active if a[0] == incident_id))
                    final = expected_body(soak.current[incident_id], incident_id, both.page.url)
                    soak.finished.append((incident_id, final))
                if random.random() < 0.15:
                    soak.fault()
                await asyncio.sleep(random.uniform(0.1, 0.4))
                both.reddit.listing_lag = 0
                if time.monotonic() >= next_sample:
                    rss_by_minute.append(bot.rss_mb())
                    next_sample += 60
            # Let everything settle, then check every finished incident.
            await wait_until(
                lambda: not unfinished(soak, both) and not notices_pending(soak, both), 60, step=0.5
            )
            wrong = unfinished(soak, both)
            end = (bot.rss_mb(), bot.open_fds(), bot.cpu_seconds())
            exit_code = await bot.stop(10)
            report(
                soak, both, log, start=start, end=end, calls_start=calls_start, wrong=wrong,
                exit_code=exit_code, minutes=minutes, rounds=rounds, rss=rss_by_minute,
            )  # fmt: skip
            return 0 if not wrong and exit_code == 0 and not crashes(log) else 1


def unfinished(soak: Soak, both: Any) -> list[str]:
    """Finished incidents whose comment does not show their final state."""
    live = [c.body for c in live_comments(both.reddit)]
    wrong = []
    for incident_id, final in soak.finished:
        marker = marker_id("inc", incident_id)
        if final not in [body for body in live if marker in body]:
            wrong.append(incident_id)
    return wrong


def notices_pending(soak: Soak, both: Any) -> list[str]:
    """Notices sent as commands that are not (yet) posted."""
    live = [c.body for c in live_comments(both.reddit)]
    return [text for text in soak.notices if not any(text in body for body in live)]


def crashes(log: Path) -> list[str]:
    """Log records that show an unhandled exception."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [r["message"] for r in lines if "traceback" in r or r["level"] == "CRITICAL"]


def report(soak: Soak, both: Any, log: Path, *, start: tuple[float, int, float],
           end: tuple[float, int, float], calls_start: int, wrong: list[str], exit_code: int,
           minutes: float, rounds: int, rss: list[float]) -> None:  # fmt: skip
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = Counter(f"{r['level']} {r['logger']}" for r in records if r["level"] != "INFO")
    calls = [c for c in both.reddit.calls[calls_start:] if c.path != "/api/v1/access_token"]
    counts = [sum(n in c.body for c in live_comments(both.reddit)) for n in soak.notices]
    refused = [
        n for n, count in zip(soak.notices, counts, strict=True)
        if count == 0 and any("failed" in r for r in both.reddit.replies_to(soak.messages[n]))
    ]  # fmt: skip
    print(
        f"soak: {minutes:g} minutes, {rounds + 1} rounds over the real timelines, poll every 0.2 s"
    )
    rows = [
        ("incidents handled (timelines replayed to the end)", len(soak.finished)),
        ("final comments correct", f"{len(soak.finished) - len(wrong)} of {len(soak.finished)}"),
        (
            "moderator commands posted exactly once",
            f"{counts.count(1)} of {len(counts)} "
            f"(twice or more: {sum(c > 1 for c in counts)}, never: {counts.count(0)})",
        ),
        ("  never posted: Reddit refused, moderator told", len(refused)),
        ("Reddit API calls", len(calls)),
        ("status page requests", both.page.count()),
        ("RSS MB, start -> end", f"{start[0]:.1f} -> {end[0]:.1f}"),
        ("RSS MB at each minute", " ".join(f"{m:.0f}" for m in rss)),
        ("open file descriptors, start -> end", f"{start[1]} -> {end[1]}"),
        ("bot CPU seconds during the soak", f"{end[2] - start[2]:.1f}"),
        ("unhandled exceptions in the log", len(crashes(log))),
        ("exit code after SIGTERM", exit_code),
    ]
    for name, value in rows:
        print(f"{name:<52} {value}")
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.faults.items())))
    print(
        "bot warnings/errors by logger: "
        + ", ".join(f"{k} {v}" for k, v in sorted(warnings.items()))
    )
    for incident_id in wrong:
        print(f"WRONG: incident {incident_id} does not show its final state")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.minutes, args.seed)))
