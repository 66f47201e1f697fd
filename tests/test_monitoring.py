"""Metrics, /healthz and the heartbeat, scraped and pinged over real HTTP."""

from __future__ import annotations

import asyncio
import io
import logging
import platform
import socket
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modbot import __version__
from modbot.app import App
from modbot.config.settings import Settings
from modbot.shell.heartbeat import Heartbeat
from modbot.shell.statusview import liveness_window
from tests.conftest import reddit_settings, until
from tests.fakes.reddit import FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import FakeStatuspage, incident, update


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def opened(incident_id: str, status: str = "investigating") -> dict[str, object]:
    return incident(incident_id, status, [update(f"{incident_id}u", status, "text", 1)])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed by prometheus_client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_show_polls_deliveries_latency_budget_and_commands(
    statuspage: FakeStatuspage, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    settings = make_settings(
        statuspage_url=statuspage.url, metrics_port=port, **reddit_settings(reddit)
    )
    statuspage.set_incidents([])
    async with App(settings, dry_run=False, out=io.StringIO()) as app:
        await app.run_once()  # the baseline
        statuspage.set_incidents([opened("inc1")])
        await app.run_once()
        await app.run_once()  # unchanged
        async with httpx.AsyncClient() as http:
            scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
            missing = await http.get(f"http://127.0.0.1:{port}/other")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    got = samples(scraped.text)
    watch = (("watch", "default"),)
    assert got[("modbot_polls_total", (("result", "changed"), *watch))] == 1
    assert got[("modbot_polls_total", (("result", "unchanged"), *watch))] == 2
    assert got[("modbot_polls_total", (("result", "failed"), *watch))] == 0
    assert got[("modbot_incidents_open", watch)] == 1
    assert got[("modbot_deliveries_total", (("result", "posted"), *watch))] == 1
    assert got[("modbot_change_to_comment_seconds_count", watch)] == 1
    assert 0 <= time.time() - got[("modbot_last_good_poll_timestamp_seconds", watch)] < 5
    assert not any(name == "modbot_last_good_poll_age_seconds" for name, _ in got)
    assert (
        got[
            ("modbot_build_info", (("python", platform.python_version()), ("version", __version__)))
        ]
        == 1
    )
    assert got[("modbot_leader", ())] == 0  # one pass by hand: not the leading loop
    assert got[("process_cpu_seconds_total", ())] > 0  # prometheus_client's own
    assert got[("process_start_time_seconds", ())] > 0
    assert (
        "python_info",
        (
            ("implementation", platform.python_implementation()),
            ("major", "3"),
            ("minor", str(sys.version_info.minor)),
            ("patchlevel", str(sys.version_info.micro)),
            ("version", platform.python_version()),
        ),
    ) in got
    assert got[("modbot_reddit_calls_total", ())] >= 2
    limit = settings.reddit_calls_per_minute
    assert 0 < got[("modbot_reddit_budget_remaining", ())] < limit
    assert got[("modbot_inbox_commands_total", (("result", "done"),))] == 0
    assert health.status_code == 200
    assert health.text == "ok\n"
    assert missing.status_code == 404


async def test_the_leader_says_so_and_the_last_good_poll_is_a_timestamp(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    now = [1_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url, metrics_port=port)
    stop = asyncio.Event()
    async with (
        App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app,
        httpx.AsyncClient() as http,
    ):
        url = f"http://127.0.0.1:{port}/metrics"
        before = samples((await http.get(url)).text)
        polled: list[bool] = []
        runner = asyncio.create_task(app.run(stop, on_poll=lambda r: polled.append(r.ok)))
        await until(lambda: bool(polled))
        leading = samples((await http.get(url)).text)
        stop.set()
        await runner
        after = samples((await http.get(url)).text)
    watch = (("watch", "default"),)
    assert before[("modbot_leader", ())] == 0
    assert before[("modbot_last_good_poll_timestamp_seconds", watch)] == 0  # none yet
    assert leading[("modbot_leader", ())] == 1
    assert 0 <= time.time() - leading[("modbot_last_good_poll_timestamp_seconds", watch)] < 5
    assert after[("modbot_leader", ())] == 0


async def test_healthz_says_the_real_cause_at_start_up_and_while_the_page_fails(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    now = [1_800_000_060.0]  # 2027-01-15 08:01 UTC
    settings = make_settings(statuspage_url=statuspage.url, metrics_port=port)
    stop = asyncio.Event()
    settings = settings.model_copy(update={"http_timeout": 5.0})
    statuspage.misbehave("hang", seconds=3)  # the first poll takes its time
    async with (
        App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app,
        httpx.AsyncClient() as http,
    ):
        url = f"http://127.0.0.1:{port}/healthz"
        runner = asyncio.create_task(app.run(stop))
        await until(lambda: app.leading)  # polling: the first answer is still on its way
        now[0] += 20
        starting = await http.get(url)
        stop.set()
        await runner
        statuspage.heal()
        statuspage.misbehave("status", count=None)  # then the page answers 503
        await app.run_once()
        now[0] += 120
        await app.run_once()  # still failing, two minutes later
        failing = await http.get(url)
        statuspage.heal()
        now[0] += 30
        await app.run_once()
        fresh = await http.get(url)
    assert starting.status_code == 503
    assert starting.text == "default: no good poll yet: started 20 s ago\n"
    assert failing.status_code == 503
    assert failing.text.startswith("default: the page fails since 08:01 UTC: ")
    assert "503" in failing.text
    assert "(last good poll " in failing.text
    assert fresh.status_code == 200


async def test_healthz_fails_by_the_same_rule_as_check_live(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    now = [1_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url, metrics_port=port)
    async with (
        App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app,
        httpx.AsyncClient() as http,
    ):
        url = f"http://127.0.0.1:{port}/healthz"
        before = await http.get(url)  # never polled
        await app.run_once()
        fresh = await http.get(url)
        now[0] += liveness_window(settings.poll_interval) + 1  # past the window
        late = await http.get(url)
    assert before.status_code == 503
    assert fresh.status_code == 200
    assert late.status_code == 503
    assert "default: last good poll" in late.text


async def test_a_metrics_port_in_use_is_one_clear_error(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    from modbot.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(statuspage_url=statuspage.url, metrics_port=port)
        said = f"MODBOT_METRICS_PORT: cannot listen on 127.0.0.1:{port}"
        with pytest.raises(ConfigError, match=said):
            async with App(settings, dry_run=True, out=io.StringIO()):
                pass


async def test_the_heartbeat_pings_after_good_polls_at_most_once_a_minute(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    async with FakeSite() as monitor:
        monitor.put("/ping/abc123", "OK", "text/plain")
        now = [1_000_000.0]
        settings = make_settings(
            statuspage_url=statuspage.url, heartbeat_url=f"{monitor.url}/ping/abc123"
        )
        async with App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app:
            await app.run_once()
            await app.run_once()  # within the minute: no second ping
            now[0] += 61
            await app.run_once()
            statuspage.misbehave("status", count=None)
            now[0] += 61
            await app.run_once()  # a failed poll: no ping
        assert monitor.requests["/ping/abc123"] == 2


async def test_a_failing_heartbeat_is_said_once_without_its_url_and_never_stops_the_bot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeSite() as monitor, httpx.AsyncClient() as http:
        monitor.put("/ping/secret-token", "OK", "text/plain")
        monitor.misbehave("/ping/secret-token", "status", 500)
        now = [0.0]
        beat = Heartbeat(f"{monitor.url}/ping/secret-token", http, lambda: now[0])
        for _ in range(3):
            await beat.beat()
            now[0] += 61
        monitor.heal()
        await beat.beat()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "heartbeat URL (MODBOT_HEARTBEAT_URL) failed: server error 500 (after 1 tries); "
        "the bot goes on"
    ]
    assert "secret-token" not in caplog.text
    assert beat.sent == 1


def test_the_heartbeat_url_is_a_secret(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(heartbeat_url="https://hc.example/ping/secret-token")
    assert "https://hc.example/ping/secret-token" in settings.secret_values()
    assert "secret-token" not in repr(settings)
    assert asyncio.iscoroutinefunction(Heartbeat.beat)
