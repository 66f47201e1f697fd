"""Figures for whoever runs the server: Prometheus ``/metrics``, ``/healthz``, a heartbeat.

The bot records what happens in plain counters (``Figures``), which cost a dictionary
update and need no library. Only when ``MODBOT_METRICS_PORT`` is set does
``MetricsServer`` import ``prometheus_client`` and expose them, in its text format, from
a small HTTP listener on the bot's own event loop, so a scrape reads the same state
the bot works with, with no thread and no lock.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modbot import __version__

if TYPE_CHECKING:
    from modbot.core.records import PollReport, Report

log = logging.getLogger(__name__)

# Seconds from a change on the status page to the comment showing it.
LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
MAX_REQUEST_BYTES = 8192


@dataclass
class WatchFigures:
    """One watch's counters since the process started."""

    polls: Counter[str] = field(default_factory=Counter)  # ok-changed, ok-unchanged, failed
    deliveries: Counter[str] = field(default_factory=Counter)  # posted, edited, failed
    last_good_poll: float | None = None  # wall clock
    open_incidents: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    changed_at: dict[str, float] = field(default_factory=dict)  # subject key -> seen at
    reports: int = 0  # readers' reports counted
    early_notices: int = 0  # early notices posted
    routed: Counter[str] = field(default_factory=Counter)  # stray report posts: reply, remove

    def observe_latency(self, seconds: float) -> None:
        """One change reached its comment after ``seconds``."""
        index = next((i for i, le in enumerate(LATENCY_BUCKETS) if seconds <= le), -1)
        self.latency_counts[index] += 1
        self.latency_sum += seconds


class Figures:
    """Every watch's counters, plus the account's (Reddit calls, inbox commands)."""

    def __init__(self, watches: Iterable[str], clock: Callable[[], float] = time.time) -> None:
        self.watches = {name: WatchFigures() for name in watches}
        self.commands: Counter[str] = Counter()
        self.clock = clock

    def polled(self, watch: str, report: PollReport, open_incidents: int) -> None:
        """One poll's outcome; remembers when each change was seen, for the latency."""
        figures = self.watches[watch]
        if not report.ok:
            figures.polls["failed"] += 1
            return
        now = self.clock()
        figures.polls["changed" if report.changed else "unchanged"] += 1
        figures.last_good_poll = now
        figures.open_incidents = open_incidents
        for event in report.events:
            figures.changed_at.setdefault(event.incident_id, now)

    def delivered(self, watch: str, report: Report) -> None:
        """One delivery round's outcome."""
        figures = self.watches[watch]
        now = self.clock()
        figures.early_notices += sum(row.kind == "early" for row in report.posted)
        figures.routed["reply"] += sum(row.kind == "route" for row in report.posted)
        figures.routed["remove"] += report.removed
        for result, rows in (("posted", report.posted), ("edited", report.edited)):
            figures.deliveries[result] += len(rows)
            for row in rows:
                seen = figures.changed_at.pop(row.key, None)
                if seen is not None:
                    figures.observe_latency(max(now - seen, 0.0))
        figures.deliveries["failed"] += len(report.failed)

    def reports(self, watch: str, count: int) -> None:
        """Readers' reports counted for a watch."""
        self.watches[watch].reports += count

    def command(self, result: str) -> None:
        """A moderator command from the inbox: done, refused or failed."""
        self.commands[result] += 1


# --- exposition ------------------------------------------------------------------------------


class _Collector:
    """Builds the metric families from the figures at scrape time."""

    def __init__(
        self,
        figures: Figures,
        reddit: Callable[[], tuple[int, int] | None],
        leader: Callable[[], bool],
    ) -> None:
        self.figures = figures
        self.reddit = reddit  # (calls so far, budget left this minute), or None (dry-run)
        self.leader = leader  # whether this process polls and posts now

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        watches = self.figures.watches
        polls = CounterMetricFamily(
            "modbot_polls", "Status-page polls by result.", labels=["watch", "result"]
        )
        # A timestamp, not an age: it stays right between scrapes and across a clock's
        # steps, and ``time() - it`` is the age (0 before the first good poll).
        last_good = GaugeMetricFamily(
            "modbot_last_good_poll_timestamp_seconds",
            "When this process last polled the page successfully, in Unix seconds (0: not yet).",
            labels=["watch"],
        )
        open_now = GaugeMetricFamily(
            "modbot_incidents_open", "Announced incidents still open.", labels=["watch"]
        )
        delivered = CounterMetricFamily(
            "modbot_deliveries", "Comments posted, edited or failed.", labels=["watch", "result"]
        )
        latency = HistogramMetricFamily(
            "modbot_change_to_comment_seconds",
            "Seconds from a change seen on the status page to the comment showing it.",
            labels=["watch"],
        )
        reports = CounterMetricFamily(
            "modbot_reports", "Readers' outage reports counted.", labels=["watch"]
        )
        notices = CounterMetricFamily(
            "modbot_early_notices", "Early notices posted.", labels=["watch"]
        )
        routed = CounterMetricFamily(
            "modbot_routed_posts",
            "Stray report posts answered or removed.",
            labels=["watch", "action"],
        )
        for name, figures in watches.items():
            reports.add_metric([name], figures.reports)
            notices.add_metric([name], figures.early_notices)
            for action in ("reply", "remove"):
                routed.add_metric([name, action], figures.routed[action])
            for result in ("changed", "unchanged", "failed"):
                polls.add_metric([name, result], figures.polls[result])
            last_good.add_metric([name], figures.last_good_poll or 0.0)
            open_now.add_metric([name], figures.open_incidents)
            for result in ("posted", "edited", "failed"):
                delivered.add_metric([name, result], figures.deliveries[result])
            latency.add_metric([name], _buckets(figures), figures.latency_sum)
        yield from (polls, last_good, open_now, delivered, latency, reports, notices, routed)
        yield GaugeMetricFamily(
            "modbot_leader",
            "1 while this process leads (polls and posts), 0 while it waits as a follower.",
            1.0 if self.leader() else 0.0,
        )
        build = GaugeMetricFamily(
            "modbot_build_info",
            "The running modbot: its version and Python's.",
            labels=["version", "python"],
        )
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        commands = CounterMetricFamily(
            "modbot_inbox_commands", "Moderator commands by result.", labels=["result"]
        )
        for result in ("done", "refused", "failed"):
            commands.add_metric([result], self.figures.commands[result])
        yield commands
        account = self.reddit()
        if account is not None:
            calls, left = account
            yield CounterMetricFamily("modbot_reddit_calls", "Reddit API calls made.", calls)
            yield GaugeMetricFamily(
                "modbot_reddit_budget_remaining",
                "Reddit calls left in the current minute (MODBOT_REDDIT_CALLS_PER_MINUTE).",
                left,
            )


def _buckets(figures: WatchFigures) -> list[tuple[str, float]]:
    cumulative, rows = 0, []
    for le, count in zip((*LATENCY_BUCKETS, float("inf")), figures.latency_counts, strict=True):
        cumulative += count
        rows.append(("+Inf" if le == float("inf") else repr(le), float(cumulative)))
    return rows


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port``, served on the bot's event loop."""

    def __init__(
        self,
        figures: Figures,
        *,
        reddit: Callable[[], tuple[int, int] | None],
        health: Callable[[], Awaitable[list[str]]],
        leader: Callable[[], bool] = lambda: True,
    ) -> None:
        from prometheus_client import (  # noqa: PLC0415
            GC_COLLECTOR,
            PLATFORM_COLLECTOR,
            PROCESS_COLLECTOR,
            CollectorRegistry,
        )

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(figures, reddit, leader))
        # The standard process_*, python_gc_* and python_info metrics, as a default
        # prometheus_client registry has them.
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.health = health
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen; a port that cannot be bound is a clear error, not a traceback."""
        from modbot.errors import ConfigError  # noqa: PLC0415

        try:
            self._server = await asyncio.start_server(self._handle, host=host, port=port)
        except OSError as exc:
            raise ConfigError(
                f"MODBOT_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror})"
            ) from exc
        log.info("metrics on http://%s:%d/metrics (and /healthz)", host, port)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status, content_type, body = await self._answer(head[:MAX_REQUEST_BYTES])
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a scraper that went away
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[str, str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        parts = head.split(b"\r\n", 1)[0].split()
        path = parts[1].split(b"?", 1)[0] if len(parts) >= 2 else b""
        if parts[:1] != [b"GET"]:
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == b"/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == b"/healthz":
            problems = await self.health()
            if problems:
                return "503 Service Unavailable", "text/plain", _lines(problems)
            return "200 OK", "text/plain", b"ok\n"
        return "404 Not Found", "text/plain", b"/metrics or /healthz\n"


def _lines(items: Iterable[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


def reddit_figures(client: Any, clock: Callable[[], float]) -> Callable[[], tuple[int, int]]:
    """What the collector reads of the Reddit client: calls made, budget left."""

    def read() -> tuple[int, int]:
        budget = client.budget
        return int(client.calls), max(budget.limit - budget.used(clock()), 0)

    return read
