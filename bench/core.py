"""Cost of one poll: CPU, requests and bytes, and memory over many polls.

Runs the real bot in-process (dry-run, nothing delivered during the measurement)
against the fake status page running in a child process, so only the bot's own CPU
is counted. Prints: CPU ms per unchanged poll (the 304 path), paired with the bare
loop (``bench.bare``: an httpx + ETag loop that only fetches and parses) in the same
process, block by block, as a ratio; new connections per unchanged poll; CPU per poll
of a 50-incident feed where one incident changed and where all 50 changed (fetch,
parse, diff, render, save; the render worker process's CPU is counted too), each
followed by the bare loop's fetch and parse of the same page; requests and
bytes per unchanged poll, and RSS along 1,000 polls. Medians come with their spread
(p10-p90 of the samples, or the lowest and highest block's ratio).

    python -m bench.core [--polls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bare import BarePoll, bare_client
from bench.fakes import fake_in_subprocess
from modbot.app import App, settle_memory
from modbot.config.settings import load_settings
from modbot.rendering.sandbox import RenderWorker
from tests.fakes.statuspage import PAGE, incident, update

INCIDENTS = 50
BLOCKS = 10  # the unchanged polls are measured in this many pairs of blocks


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc, else peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return pages * resource.getpagesize() / 1024 / 1024


def peak_rss_mb() -> float:
    """Peak resident set size in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def feed(version: int, changed: int) -> dict[str, Any]:
    """50 open incidents; the first ``changed`` carry ``version`` extra updates."""
    incidents = []
    for number in range(INCIDENTS):
        extra = 1 + version % 7 if number < changed else 0
        updates = [
            update(
                f"i{number}u{k}",
                "investigating",
                f"Update {k} on incident {number}: " + "text " * 40,
                k,
            )
            for k in range(3 + extra)
        ]
        incidents.append(incident(f"inc{number:04d}", "investigating", list(reversed(updates))))
    return {"page": dict(PAGE), "incidents": incidents}


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)]
    median, mean = statistics.median(ordered), statistics.fmean(ordered)
    return f"median {median:6.2f}  p95 {p95:6.2f}  mean {mean:6.2f}  ({spread(ordered)})"


def paired(bot: list[float], bare: list[float]) -> str:
    """The median of each changed poll's CPU over the bare loop's poll of the same page
    right after it, with its spread: how far above the floor a changed poll is, on a
    machine of any speed (a busy host moves both alike)."""
    ratios = [b / f for b, f in zip(bot, bare, strict=True) if f > 0]
    return f"{statistics.median(ratios):.2f}x ({spread(ratios)})"


def percentile(samples: list[float], share: float) -> float:
    """The sample below which ``share`` of them lie (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(max(round(share * (len(ordered) - 1)), 0), len(ordered) - 1)]


def spread(samples: list[float], digits: int = 2) -> str:
    """``p10-p90`` of the samples, the spread a median is quoted with."""
    return f"{percentile(samples, 0.1):.{digits}f}-{percentile(samples, 0.9):.{digits}f}"


def worker_cpu(worker: RenderWorker) -> float:
    """CPU seconds the render worker process has used (templates run there), to the
    nanosecond (``schedstat``; the 10 ms ticks of ``stat`` where it is missing)."""
    process = worker._process
    if process is None or process.returncode is not None:
        return 0.0
    return process_cpu(process.pid)


def process_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used (every thread of it)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def paired_unchanged(
    app: App, bare: BarePoll, polls: int
) -> tuple[list[float], list[float], list[float]]:
    """Unchanged polls of the bot and of the bare loop, in alternating blocks: CPU ms
    per poll of each block of each, and the ratio of each pair of blocks."""
    per_block = max(polls // BLOCKS, 1)
    bot, floor, ratios = [], [], []
    for _ in range(BLOCKS):
        started = time.process_time()
        for _ in range(per_block):
            report = await app.poller.poll()
            if not report.ok or report.changed:
                raise RuntimeError(report.message)
        middle = time.process_time()
        for _ in range(per_block):
            if await bare.poll():
                raise RuntimeError("the bare loop saw a change")
        ended = time.process_time()
        bot.append((middle - started) * 1000 / per_block)
        floor.append((ended - middle) * 1000 / per_block)
        ratios.append(bot[-1] / floor[-1])
    return bot, floor, ratios


async def cpu_per_poll(
    app: App, worker: RenderWorker, count: int, before: Any = None
) -> list[float]:
    """CPU milliseconds of ``count`` polls, the render worker's included (``before`` runs
    first, unmeasured)."""
    samples = []
    for number in range(count):
        if before is not None:
            before(number)
        started = time.process_time() + worker_cpu(worker)
        report = await app.poller.poll()
        samples.append((time.process_time() + worker_cpu(worker) - started) * 1000)
        if not report.ok:
            raise RuntimeError(report.message)
    return samples


async def changed_polls(
    app: App, worker: RenderWorker, bare: BarePoll, count: int, change: Any
) -> tuple[list[float], list[float]]:
    """CPU ms of ``count`` changed polls of the bot (its render worker's included), each
    followed by the bare loop's poll of the same changed page: its fetch and parse, the
    part of a changed poll no program can do without."""
    bot, floor = [], []
    for number in range(count):
        change(number)
        started = time.process_time() + worker_cpu(worker)
        report = await app.poller.poll()
        middle = time.process_time() + worker_cpu(worker)
        if not report.ok:
            raise RuntimeError(report.message)
        if not await bare.poll():
            raise RuntimeError("the bare loop did not see the change")
        floor.append((time.process_time() + worker_cpu(worker) - middle) * 1000)
        bot.append((middle - started) * 1000)
    return bot, floor


async def main(polls: int) -> dict[str, Any]:
    with fake_in_subprocess("tests.fakes.statuspage") as url, tempfile.TemporaryDirectory() as tmp:
        control = httpx.Client(base_url=url)
        control.put("/_fake/document", json=feed(0, 0)).raise_for_status()
        settings = load_settings(
            env_file=None,
            statuspage_url=url,
            database=Path(tmp) / "bench.sqlite3",
            poll_interval=15,
        )
        worker = RenderWorker(timeout=settings.render_timeout)
        async with App(settings, dry_run=True, out=io.StringIO(), engine=worker) as app:
            settle_memory()  # as ``modbot run`` does once it has started
            first = await cpu_per_poll(app, worker, 1)
            print(f"status page: fake in a child process at {url}; {INCIDENTS} open incidents")
            print(f"first poll (baseline, {INCIDENTS} incidents rendered): {first[0]:.2f} ms CPU")

            async with bare_client() as http:
                bare = BarePoll(http, url + "/api/v2/incidents.json")
                await bare.poll()
                await cpu_per_poll(app, worker, 10)  # both have their connection now
                requests_before = len(control.get("/_fake/stats").json())
                rss = [(0, rss_mb())]
                unchanged: list[float] = []
                for chunk in range(4):
                    unchanged += await cpu_per_poll(app, worker, polls // 4)
                    rss.append(((chunk + 1) * (polls // 4), rss_mb()))
                stats = control.get("/_fake/stats").json()[requests_before:]
                bot_ms, bare_ms, ratios = await paired_unchanged(app, bare, polls)
            stats = [s for s in stats if s["agent"].startswith("modbot")]
            statuses = {s["status"] for s in stats}
            wire = statistics.fmean(s["bytes_in"] + s["bytes_out"] for s in stats)
            before = {s["peer"] for s in control.get("/_fake/stats").json()[:requests_before]}
            reconnects = len({s["peer"] for s in stats} - before)

            def change_one(number: int) -> None:
                control.put("/_fake/document", json=feed(number + 1, 1)).raise_for_status()

            def change_all(number: int) -> None:
                control.put(
                    "/_fake/document", json=feed(number + 200, INCIDENTS)
                ).raise_for_status()

            async with bare_client() as http:
                bare = BarePoll(http, url + "/api/v2/incidents.json")
                await bare.poll()  # its connection is open before the first measured poll
                one_changed, one_bare = await changed_polls(app, worker, bare, 100, change_one)
                all_changed, all_bare = await changed_polls(app, worker, bare, 30, change_all)
        await worker.close()

        ratio = statistics.median(ratios)
        rows = [
            (f"CPU ms per unchanged poll (304), {polls} polls", summary(unchanged)),
            (
                f"  paired with the bare loop, {BLOCKS} blocks: bot / bare",
                f"{statistics.median(bot_ms):.3f} / {statistics.median(bare_ms):.3f} ms = "
                f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}; target <= 1.3x)",
            ),
            (
                "requests per unchanged poll",
                f"{len(stats) / len(unchanged):.2f} (HTTP {sorted(statuses)})",
            ),
            (f"new connections in {len(unchanged)} unchanged polls", f"{reconnects} (target 0)"),
            ("bytes on the wire per unchanged poll", f"{wire:.0f} (request + response)"),
            ("CPU ms per poll, 50-incident feed, 1 changed", summary(one_changed)),
            ("  the bare loop's fetch and parse of it", summary(one_bare)),
            ("  each poll / the bare loop's right after it", paired(one_changed, one_bare)),
            ("CPU ms per poll, 50-incident feed, all 50 changed", summary(all_changed)),
            ("  the bare loop's fetch and parse of it", summary(all_bare)),
            ("  each poll / the bare loop's right after it", paired(all_changed, all_bare)),
            ("RSS MB at poll 0, 1/4, 1/2, 3/4, end", ", ".join(f"{m:.1f}" for _, m in rss)),
            ("peak RSS MB", f"{peak_rss_mb():.1f}"),
        ]
        print()
        for name, value in [("measure", "value"), *rows]:
            print(f"{name:<52} {value}")
    return {
        "unchanged_median": statistics.median(unchanged),
        "unchanged_spread": spread(unchanged),
        "paired_bot_ms": statistics.median(bot_ms),
        "paired_bare_ms": statistics.median(bare_ms),
        "paired_ratio": ratio,
        "paired_spread": f"{min(ratios):.2f}-{max(ratios):.2f}",
        "reconnects": reconnects,
        "one_changed_median": statistics.median(one_changed),
        "one_changed_spread": spread(one_changed),
        "one_changed_bare": statistics.median(one_bare),
        "one_changed_ratio": paired(one_changed, one_bare),
        "all_changed_ratio": paired(all_changed, all_bare),
        "all_changed_median": statistics.median(all_changed),
        "all_changed_spread": spread(all_changed),
        "all_changed_bare": statistics.median(all_bare),
        "bytes_per_unchanged_poll": wire,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--polls", type=int, default=1000, help="unchanged polls to run (default 1000)"
    )
    asyncio.run(main(parser.parse_args().polls))
