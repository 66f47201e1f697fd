"""Shared fixtures: the fake status page, settings for a temporary state file, CLI runs."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from modbot import default_templates_dir
from modbot.config.database import DatabaseURL
from modbot.config.settings import Settings, load_settings
from modbot.core.records import IncidentView
from modbot.core.render import Renderer, incident_job, link_hosts
from modbot.rendering.files import read_templates
from modbot.shell.poller import page_info
from tests.fakes.statuspage import FakeStatuspage
from tests.pg import fresh_database, postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.snudown import Snudown, missing

# "ci" (the default) is bounded and derandomised so CI is repeatable and fits its time;
# "fresh" draws a new seed each run (a few minutes); "long" explores far more:
# pytest tests/test_model.py --hypothesis-profile=long
settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "fresh",  # a few minutes, a new random seed each run
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "long",
    max_examples=3000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("ci")


ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "samples"
_SHIPPED = Renderer(read_templates(default_templates_dir()))


def expected_body(
    view: IncidentView,
    home: str,
    *,
    subreddit: str | None = None,
    max_length: int = 10_000,
) -> str:
    """The comment the bot watching ``home`` should show for ``view`` with the shipped
    templates."""
    page, hosts = page_info(home), link_hosts(home)
    job = incident_job(view, page, hosts=hosts, subreddit=subreddit, max_length=max_length)
    return _SHIPPED.body(job).body


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings on the developer's machine must not leak into tests."""
    for name in list(os.environ):
        if name.startswith(("MODBOT_", "PRAW")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def statuspage() -> AsyncIterator[FakeStatuspage]:
    """A running fake status page."""
    async with FakeStatuspage() as page:
        yield page


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build settings with a temporary state file and fast timings."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database": tmp_path / "state.sqlite3",
            "poll_interval": 0.05,
            "http_timeout": 1.0,
            "min_edit_interval": 0.0,
            "reconcile_grace": 0.5,
            "test_fast": True,
        }
        values.update(overrides)
        return load_settings(env_file=None, **values)

    return make


@dataclass
class CliResult:
    """What a ``python -m modbot`` subprocess did."""

    code: int
    out: str
    err: str


async def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 30.0) -> CliResult:
    """Run ``python -m modbot ARGS`` with only ``env`` as its MODBOT_ settings."""
    process = await spawn("modbot", *args, env=env, cwd=cwd)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


BOT = {
    "username": "modbot",
    "password": "hunter2-secret-pw",
    "client_id": "cid-123",
    "client_secret": "csecret-xyz-789",
}
MEGATHREAD_TITLE = "Performance and Bugs Megathread (week 47)"


@pytest.fixture(scope="session")
def snudown() -> Iterator[Snudown]:
    """Reddit's own markdown renderer (skipped where Node.js or snudown-js is missing,
    except on CI)."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the snudown test: {reason}")
        pytest.skip(reason)
    renderer = Snudown()
    yield renderer
    renderer.close()


@pytest.fixture
async def reddit() -> AsyncIterator[Any]:
    """A running fake Reddit with a pinned megathread (``reddit.megathread``)."""
    from tests.fakes.reddit import FakeReddit

    async with FakeReddit(subreddit="ClaudeAI", **BOT) as fake:
        fake.megathread = fake.add_submission(MEGATHREAD_TITLE, sticky=1)  # type: ignore[attr-defined]
        yield fake


def reddit_settings(fake: Any) -> dict[str, Any]:
    """Settings values that point modbot at the fake Reddit."""
    return {
        "subreddit": "ClaudeAI",
        "reddit_client_id": BOT["client_id"],
        "reddit_client_secret": BOT["client_secret"],
        "reddit_username": BOT["username"],
        "reddit_password": BOT["password"],
        "reddit_url": fake.url,
        "reddit_oauth_url": fake.url,
        "reddit_timeout": 2.0,
        "megathread_check_interval": 0.2,
    }


def reddit_env(fake: Any) -> dict[str, str]:
    """The same settings as ``MODBOT_*`` environment variables, for subprocesses."""
    return {f"MODBOT_{k.upper()}": str(v) for k, v in reddit_settings(fake).items()}


def page_env(page: FakeStatuspage, tmp_path: Path, **extra: str) -> dict[str, str]:
    """``MODBOT_*`` settings for a bot subprocess watching the fake ``page``."""
    values = {
        "MODBOT_STATUSPAGE_URL": page.url,
        "MODBOT_DATABASE": str(tmp_path / "state.sqlite3"),
        "MODBOT_POLL_INTERVAL": "0.1",
        "MODBOT_TEST_FAST": "true",
        "MODBOT_HTTP_TIMEOUT": "2",
        "MODBOT_MIN_EDIT_INTERVAL": "0",
        "MODBOT_RECONCILE_GRACE": "30",
    }
    values.update(extra)
    return values


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without MODBOT_ settings, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
    full.update(env, PYTHONPATH=str(ROOT))
    return full


async def spawn(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """``python -m ARGS`` with piped output and only ``env`` as its MODBOT_ settings."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, env=child_env(env), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def start_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """``modbot run`` as a child process."""
    return await spawn("modbot", "run", env=env, cwd=cwd)


def expire_waits(database: Path, *, intent: bool = True) -> None:
    """Pretend every backoff, rate-limit wait and listing-lag grace is over, for comments
    and messages: time travel for the state file, through a second connection as
    another process would."""
    import sqlite3

    raw = sqlite3.connect(database)
    shift = ", intent_at = intent_at - 3600" if intent else ""
    for table in ("deliveries", "messages"):
        raw.execute(f"UPDATE {table} SET not_before = 0{shift}")
    raw.commit()
    raw.close()


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``condition`` with a deadline (never a bare sleep on luck)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- the state on either store ------------------------------------------------------------

StateLocation = Path | str  # a SQLite file, or a PostgreSQL database's URL


@dataclass(frozen=True)
class NewState:
    """Makes fresh, empty state on one store: ``with new_state() as location``."""

    kind: str  # "sqlite" or "postgresql"
    make: Callable[[], AbstractContextManager[StateLocation]]

    def __call__(self) -> AbstractContextManager[StateLocation]:
        return self.make()


@contextmanager
def _sqlite_file() -> Iterator[StateLocation]:
    with tempfile.TemporaryDirectory(prefix="modbot-state-") as folder:
        yield Path(folder) / "state.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_state(request: pytest.FixtureRequest) -> NewState:
    """Makes fresh, empty state on demand, on each store in turn: a state file in a new
    temporary folder, or a new PostgreSQL database; each is gone on leaving its ``with``.
    For tests that need several, such as one per hypothesis example."""
    if request.param == "sqlite":
        return NewState("sqlite", _sqlite_file)
    server: str = request.getfixturevalue("postgres_server")
    return NewState("postgresql", lambda: fresh_database(server))


@pytest.fixture
def state_location(new_state: NewState) -> Iterator[StateLocation]:
    """This test's state on each store in turn: a SQLite file or a PostgreSQL URL (what
    ``MODBOT_DATABASE`` takes). Several store objects opened on it share one state."""
    with new_state() as location:
        yield location


def expire_waits_at(location: Path | DatabaseURL | str, *, intent: bool = True) -> None:
    """``expire_waits`` on either store: a SQLite file, or a PostgreSQL database through
    a connection of its own, as another process would."""
    if isinstance(location, Path):
        expire_waits(location, intent=intent)
        return
    url = location.url if isinstance(location, DatabaseURL) else location
    shift = ", intent_at = intent_at - 3600" if intent else ""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as raw:
        for table in ("deliveries", "messages"):
            raw.execute(f"UPDATE {table} SET not_before = 0{shift}")
