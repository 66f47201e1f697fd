"""What the process-level scripts share: both fakes, the real bot as a subprocess,
expected comment bodies, and the real incident timelines from the samples."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modbot import default_templates_dir
from modbot.core import timeline
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.markdown import marker_of
from modbot.core.render import Renderer, incident_job, link_hosts
from modbot.rendering.files import read_templates
from modbot.shell.poller import page_info
from tests.conftest import BOT, MEGATHREAD_TITLE, ROOT, SAMPLES, reddit_env, reddit_settings
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import FakeStatuspage

Document = dict[str, Any]
GRACE = 2.0  # MODBOT_RECONCILE_GRACE of the bots below
# The late-landing fault: Reddit stores a comment long after the bot gave up on its
# request. Real late writes land 1-60 s after a 20 s timeout, against a 30 s grace; the
# loops give up after 2 s with a 2 s grace, so landings come 0.1-12 s after that: from
# before the bot looks for the comment to six graces after it posted again.
LATE_AFTER = (0.1, 6 * GRACE)
ON_POSTS = {"thing_id": "^t3_"}  # comments in a thread, not replies to messages


@dataclass
class Fakes:
    """Both fake servers, running in this process."""

    page: FakeStatuspage
    reddit: FakeReddit


@asynccontextmanager
async def fakes() -> AsyncIterator[Fakes]:
    """Start the fake status page and the fake Reddit (megathread pinned, u/alice a mod)."""
    async with FakeStatuspage() as page, FakeReddit(subreddit="ClaudeAI", **BOT) as reddit:
        reddit.add_submission(MEGATHREAD_TITLE, sticky=1)
        reddit.add_moderator("alice", ["all"])
        page.set_incidents([])
        yield Fakes(page, reddit)


def bot_env(both: Fakes, database: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot process pointed at ``both``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
    env.update(reddit_env(both.reddit), PYTHONPATH=str(ROOT))
    env.update(
        MODBOT_STATUSPAGE_URL=both.page.url,
        MODBOT_DATABASE=str(database),
        MODBOT_POLL_INTERVAL="0.2",
        MODBOT_TEST_FAST="true",
        MODBOT_MIN_EDIT_INTERVAL="0",
        MODBOT_RECONCILE_GRACE=f"{GRACE:g}",
        MODBOT_INBOX_INTERVAL="0.2",
        MODBOT_MEGATHREAD_CHECK_INTERVAL="5",
        MODBOT_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


class BotProcess:
    """``python -m modbot run`` as a child process."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path | None = None) -> None:
        self.env, self.cwd, self.log = env, cwd, log
        self.process: asyncio.subprocess.Process | None = None
        self.database = Path(env.get("MODBOT_DATABASE", "modbot.sqlite3"))

    async def start(self) -> None:
        """Start the bot (logs appended to ``log``, if given)."""
        sink = self.log.open("ab") if self.log else None
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modbot", "run", env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink if sink else asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if sink:
            sink.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL, the way a power cut or the OOM killer ends a process."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill()
        return await self.wait()

    def rss_mb(self) -> float:
        return _proc_status(self.pid, "VmRSS")

    def peak_rss_mb(self) -> float:
        return _proc_status(self.pid, "VmHWM")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def _proc_status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


SHIPPED = Renderer(read_templates(default_templates_dir()))


def expected_body(document: Document, incident_id: str, home: str) -> str:
    """The comment the bot watching ``home`` should end up with for ``incident_id`` in
    ``document`` (it names and links ``home``, whatever page the document names)."""
    feed = parse_incidents_object(document)
    incident = next(i for i in feed.incidents if i.id == incident_id)
    job = incident_job(
        view_of(incident), page_info(home), hosts=link_hosts(home), subreddit="ClaudeAI"
    )
    return SHIPPED.body(job).body


# The line of readers' counts the shipped incident template adds once readers reported
# the incident (what ``expected_body`` renders without): loops that have readers report
# compare incident comments without it.
READERS_LINE = re.compile(r"^\*Readers' reports here: [^\n]*\*\n\n", re.MULTILINE)


def without_readers(body: str) -> str:
    """An incident comment's body without the line of readers' counts."""
    return READERS_LINE.sub("", body)


def live_comments(reddit: FakeReddit) -> list[Comment]:
    """The bot's comments that are not deleted."""
    return [c for c in reddit.comments_by(BOT["username"]) if not c.deleted]


def live_duplicates(reddit: FakeReddit) -> Counter[str]:
    """Live bot comments beyond the first per marker and thread, by marker."""
    found = Counter((marker_of(c.body), c.link_id) for c in live_comments(reddit))
    return Counter({str(m): n - 1 for (m, _), n in found.items() if m and n > 1})


def arm_late_landings(reddit: FakeReddit) -> None:
    """The next two comments posted in a thread (an incident's first, a notice) land
    late: the bot's request waits until it gives up, and Reddit stores the comment
    later, dated at the landing or at the request (the older copy). One lands well
    after the bot has posted again; the other anywhere in ``LATE_AFTER``."""
    timeout = float(reddit_settings(reddit)["reddit_timeout"])
    for low, high in ((3 * GRACE, LATE_AFTER[1]), LATE_AFTER):
        reddit.land_late_next(
            "POST",
            "/api/comment",
            timeout + random.uniform(low, high),
            stamp=random.choice(["landing", "request"]),
            form=ON_POSTS,
        )


def late_settle_time() -> float:
    """How long after the last late landing the bot may take to remove the copy: it
    looks again at least as soon as the time since its re-post has passed once more."""
    return 2 * (LATE_AFTER[1] + 2 * GRACE + 2.0) + 5.0


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; returns whether it became true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def real_timelines(min_updates: int = 2) -> list[tuple[str, list[Document]]]:
    """Every real incident in the samples with ``min_updates`` or more, replayed.

    Claude's feed (25 incidents, from its Atom history), Cloudflare's and Emma's JSON;
    each timeline ends with a published postmortem.
    """
    found = []
    for name in (
        "claude-incidents-derived.json",
        "cloudflare-incidents.json",
        "emma-incidents.json",
    ):
        data = json.loads((SAMPLES / name).read_text())
        page = data.get("page") or {"name": name, "url": "https://status.example.com"}
        for incident in data["incidents"]:
            if len(incident.get("incident_updates") or []) >= min_updates:
                found.append((incident["id"], timeline.replay(incident, page, postmortem=True)))
    return found


def retimed(documents: list[Document], suffix: str, start: datetime) -> tuple[str, list[Document]]:
    """A timeline under a fresh id (``suffix`` added), moved so it begins at ``start``.

    Replaying history as if it happened now matters: an incident first seen already
    resolved before the bot's baseline is, by design, never announced.
    """
    first = min(_times(documents[0]), default=start)
    shift = start - first
    out = [_shifted(copy.deepcopy(d), shift) for d in documents]
    for document in out:
        incident = document["incidents"][0]
        incident["id"] = f"{incident['id']}{suffix}"
        for update in incident["incident_updates"]:
            update["id"] = f"{update['id']}{suffix}"
    return out[0]["incidents"][0]["id"], out


def _times(value: Any) -> list[datetime]:
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found += _parse(item) if key.endswith("_at") else _times(item)
        return found
    if isinstance(value, list):
        return [t for item in value for t in _times(item)]
    return []


def _parse(value: Any) -> list[datetime]:
    if not isinstance(value, str) or not value:
        return []
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return []
    return [moment if moment.tzinfo else moment.replace(tzinfo=UTC)]


def _shifted(value: Any, shift: timedelta) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            parsed = _parse(item) if key.endswith("_at") else []
            value[key] = (parsed[0] + shift).isoformat() if parsed else _shifted(item, shift)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _shifted(item, shift)
    return value
