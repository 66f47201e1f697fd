"""The performance report: ``python -m bench`` prints one table, measured in one run.

It runs, against the local fakes: ``bench.core`` (the bot in-process, the fake page in
a child process: CPU and bytes per poll), ``bench.latency`` (the real ``modbot run``:
latency, Reddit calls per update and per unchanged poll, CPU per poll, peak RSS),
``bench.scale`` (50 open incidents, then 200 feed changes in 10 seconds),
``bench.history`` (cost against 1k and 100k settled incidents), ``bench.startup``
(how fast ``modbot --help``, ``status`` and ``check --live`` start, against bare
Python), ``bench.watches`` (1, 10, 50 and 200 watches of all four kinds, each size's
idle CPU paired with the bare loop of ``bench.bare``; fairness of the shared Reddit
budget, ten runs) and
``bench.reports`` (readers' outage reports replayed from the labelled corpus:
classification, early notices' lead and false notices) and ``bench.moves`` (real
timelines across a page's move to another platform: duplicates, wrong resolutions,
lost updates, and how many polls until the new platform's first delivery).

Paired figures are ratios measured side by side in one run; medians come with their
spread (p10-p90, or the lowest and highest of the runs).

    python -m bench [--polls 1000] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import statistics
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
        started = await asyncio.to_thread(startup.main, 15)
        many = await watches.main([1, 10, 50, 200], poll)
        corpus = reports.load()
        scores, outcome = await asyncio.to_thread(reports.measure)
    moved = await moves.measure(runs=3)
    one, _, fifty, *_ = many["sizes"]
    fair = many["fairness"]
    fair_runs = many["fairness_runs"]
    within = sum(1 for f in fair_runs if f.worst_quiet_wait <= poll + 5)
    big = sizes[-1]
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
        ("CPU ms per unchanged poll (in-process, median)", f"{polled['unchanged_median']:.2f} ({polled['unchanged_spread']})", "< 2"),
        ("unchanged poll / bare httpx+ETag loop (paired, CPU)", f"{polled['paired_ratio']:.2f}x ({polled['paired_spread']}; {polled['paired_bot_ms']:.2f}/{polled['paired_bare_ms']:.2f} ms)", "<= 1.3x"),
        ("new connections over the unchanged polls", f"{polled['reconnects']}", "0"),
        ("CPU ms per 50-incident feed, one changed (median)", f"{polled['one_changed_median']:.2f} ({polled['one_changed_spread']}; bare {polled['one_changed_bare']:.2f})", "< 2"),
        ("CPU ms per 50-incident feed, all changed (median)", f"{polled['all_changed_median']:.2f} ({polled['all_changed_spread']}; bare {polled['all_changed_bare']:.2f})", "< 10"),
        ("  changed poll / the bare loop's, paired: one / all", f"{polled['one_changed_ratio']} / {polled['all_changed_ratio']}", ""),
        ("peak RSS of the running bot", f"{max(timed.peak_rss_mb, scaled.peak_rss_mb):.1f} MB", "< 100 MB"),
        ("50 open incidents: Reddit calls / time to all posted", f"{scaled.first_calls} / {scaled.first_seconds:.1f} s", ""),
        ("burst of 200 changes in 10 s: Reddit calls", f"{scaled.burst_calls}", ""),
        ("burst: time until every comment is current", f"{scaled.burst_seconds:.1f} s", ""),
        ("most Reddit calls in any 60 s", f"{scaled.max_calls_per_minute} (under 100: {under})", "< 100"),
        *[
            (f"{name} at 1k / 100k settled incidents", f"{grown[1_000][name][0] * 1000:.2f} / {grown[100_000][name][0] * 1000:.2f} ms", "< 1.5x")
            for name in history.MEASURES
        ],
        ("peak RSS at 1k / 100k settled incidents", f"{max(grown[1_000][n][1] for n in history.MEASURES):.1f} / {max(grown[100_000][n][1] for n in history.MEASURES):.1f} MB", "< 1.3x"),
        ("start-up integrity check at 1k / 100k settled", f"{grown[1_000]['integrity at start'][0] * 1000:.2f} / {grown[100_000]['integrity at start'][0] * 1000:.2f} ms", "O(1)"),
        ("modbot check --deep integrity check at 100k", f"{grown[100_000]['check --deep'][0] * 1000:.1f} ms", ""),
        ("state file at 100k settled (over a year)", history.footprint_text(grown[big]["footprint"]), "older than 90 days pruned"),
        *[
            (f"{name} / python -c pass (CPU, median)", f"{started[name].ratio:.1f}x ({started[name].low:.1f}-{started[name].high:.1f}; {started[name].cpu_ms:.0f} ms)", f"<= {startup.TARGETS[name]:g}x")
            for name in startup.TARGETS
        ],
        *[
            (f"{row.watches} watches: peak RSS / CPU ms per poll round", f"{row.peak_rss_mb:.1f} MB / {row.cpu_ms_per_round:.0f}", "RSS <= 1.3x of one" if row.watches > 1 else "")
            for row in many["sizes"]
        ],
        *[
            (f"{row.watches} watches idle: CPU ms per watch-poll / bare", f"{row.per_watch_poll:.2f} / {row.bare_per_watch_poll:.2f} = {row.ratio:.2f}x", "<= 1.3x, flat")
            for row in many["sizes"]
        ],
        ("idle reconnects at 1 / 10 / 50 / 200 watches", " / ".join(str(row.reconnects) for row in many["sizes"]), "0"),
        ("idle reconnects to Reddit at 1 / 10 / 50 / 200 watches", " / ".join(str(row.reddit_reconnects) for row in many["sizes"]), "0"),
        ("50 watches: RSS / RSS of one", f"{fifty.peak_rss_mb / one.peak_rss_mb:.2f}x", "<= 1.3x"),
        ("50 watches changing at once: busiest minute", f"{fifty.busiest_minute} calls", "< budget (90)"),
        ("busy watch vs 9 quiet: worst quiet first comment", f"{fair.worst_quiet_wait:.1f} s ({within} of {len(fair_runs)} runs within)", f"<= {poll + 5:g} s in 10 of 10"),
        ("busy watch vs 9 quiet: the busy watch's 40 posted (median)", f"{statistics.median(f.busy_all_posted for f in fair_runs):.0f} s", "the rest of the budget"),
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
