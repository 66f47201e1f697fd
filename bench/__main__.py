"""The performance report: ``python -m bench`` prints one table, measured in one run.

It runs, against the local fakes: ``bench.core`` (the bot in-process, the fake page in
a child process: CPU and bytes per poll), ``bench.latency`` (the real ``modbot run``:
latency, Reddit calls per update and per unchanged poll, CPU per poll, peak RSS),
``bench.scale`` (50 open incidents, then 200 feed changes in 10 seconds),
``bench.history`` (cost against 1k and 100k settled incidents), ``bench.startup``
(how fast ``modbot --help`` and ``modbot status`` start), ``bench.watches`` (1, 10
and 50 watches of all four kinds; fairness of the shared Reddit budget) and
``bench.reports`` (readers' outage reports replayed from the labelled corpus:
classification, early notices' lead and false notices) and ``bench.moves`` (real
timelines across a page's move to another platform: duplicates, wrong resolutions,
lost updates, and how many polls until the new platform's first delivery).

    python -m bench [--polls 1000] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import sys
from contextlib import redirect_stdout
from datetime import UTC, datetime

from bench import core, history, latency, moves, reports, scale, startup, watches


def machine() -> str:
    """A short description of where the figures were measured."""
    cpus = os.cpu_count() or 0
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
    )


async def report(polls: int, poll: float) -> list[tuple[str, str, str]]:
    """Run every measurement; rows of (measure, value, target)."""
    with redirect_stdout(io.StringIO()):
        polled = await core.main(polls)
    timed = await latency.measure(changes=20, poll=poll, gap=1.0, quiet_polls=10)
    idle = await latency.idle_calls()
    scaled = await scale.measure(poll)
    under = "yes" if scaled.max_calls_per_minute < 100 else "NO"
    with redirect_stdout(io.StringIO()):
        sizes = [1_000, 100_000]
        grown = await history.main(sizes)
        started = await asyncio.to_thread(startup.main, 10)
        many = await watches.main([1, 10, 50], poll)
        corpus = reports.load()
        scores, outcome = await asyncio.to_thread(reports.measure)
    moved = await moves.measure(runs=3)
    bare = started["python -c pass"]
    one, *_, fifty = many["sizes"]
    fair = many["fairness"]
    return [
        ("latency feed change -> edited comment, median", f"{timed.median:.2f} s", f"poll interval {poll:g} s"),
        ("latency feed change -> edited comment, p95", f"{timed.p95:.2f} s", f"<= {poll + 0.5:.2f} s"),
        ("first comment of a new incident", f"{timed.first_comment:.2f} s", ""),
        ("Reddit calls per incident update (steady state)", f"{timed.calls_per_update:.2f}", "1"),
        ("Reddit calls per unchanged poll", f"{timed.quiet_calls / max(timed.quiet_polls, 1):.2f}", "0"),
        ("Reddit calls per idle minute (inbox every 15 s)", f"{idle:.1f}", "commands answered < 15 s"),
        ("status-page requests per unchanged poll", f"{timed.page_requests_per_quiet_poll:.2f} (HTTP {timed.page_statuses})", "1, a 304"),
        ("status-page bytes per unchanged poll", f"{timed.page_bytes_per_quiet_poll:.0f}", "< 1024"),
        ("bot CPU ms per unchanged poll (whole process)", f"{timed.cpu_ms_per_quiet_poll:.2f}", ""),
        ("bot CPU ms per changed poll (whole process, incl. edit)", f"{timed.cpu_ms_per_changed_poll:.2f}", ""),
        ("CPU ms per unchanged poll (in-process, median)", f"{polled['unchanged_median']:.2f}", "< 2"),
        ("CPU ms per 50-incident feed, all changed (median)", f"{polled['all_changed_median']:.2f}", "< 20"),
        ("peak RSS of the running bot", f"{max(timed.peak_rss_mb, scaled.peak_rss_mb):.1f} MB", "< 100 MB"),
        ("50 open incidents: Reddit calls / time to all posted", f"{scaled.first_calls} / {scaled.first_seconds:.1f} s", ""),
        ("burst of 200 changes in 10 s: Reddit calls", f"{scaled.burst_calls}", ""),
        ("burst: time until every comment is current", f"{scaled.burst_seconds:.1f} s", ""),
        ("most Reddit calls in any 60 s", f"{scaled.max_calls_per_minute} (under 100: {under})", "< 100"),
        *[
            (f"{name} at 1k / 100k settled incidents", f"{grown[1_000][name][0] * 1000:.2f} / {grown[100_000][name][0] * 1000:.2f} ms", "< 1.5x")
            for name in history.MEASURES
        ],
        ("peak RSS at 1k / 100k settled incidents", f"{max(m for _, m in grown[1_000].values()):.1f} / {max(m for _, m in grown[100_000].values()):.1f} MB", "< 1.3x"),
        ("modbot --help / python -c pass (median)", f"{started['modbot --help']:.3f} / {bare:.3f} s", "<= 15x"),
        ("modbot status / python -c pass (median)", f"{started['modbot status']:.3f} / {bare:.3f} s", "<= 20x"),
        *[
            (f"{row.watches} watches: peak RSS / CPU ms per poll round", f"{row.peak_rss_mb:.1f} MB / {row.cpu_ms_per_round:.0f}", "RSS <= 1.3x of one" if row.watches > 1 else "")
            for row in many["sizes"]
        ],
        ("50 watches: RSS / RSS of one", f"{fifty.peak_rss_mb / one.peak_rss_mb:.2f}x", "<= 1.3x"),
        ("50 watches changing at once: busiest minute", f"{fifty.busiest_minute} calls", "< budget (90)"),
        ("busy watch vs 9 quiet: worst quiet first comment", f"{fair.worst_quiet_wait:.1f} s", "<= 60 s window + 1 poll"),
        *[
            (f"unchanged {kind} poll, CPU (hash only)", f"{ms:.2f} ms", "< 2")
            for kind, ms in many["unchanged"].items()
        ],
        *reports.rows(scores, outcome, corpus.days),
        *moves.rows(moved),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=1000, help="unchanged polls for bench.core")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="the bot's poll interval")
    args = parser.parse_args()
    rows = asyncio.run(report(args.polls, args.poll_interval))
    print(f"modbot performance, {datetime.now(UTC):%Y-%m-%d}, {machine()}")
    print(f"{'measure':<56} {'value':<26} target")
    for name, value, target in rows:
        print(f"{name:<56} {value:<26} {target}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
