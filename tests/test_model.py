"""Model-based test of the whole bot: random programs of feed, Reddit and process events.

A hypothesis ``RuleBasedStateMachine`` drives the real pipeline (status page client ->
core -> store -> Reddit edge, through real httpx and asyncpraw against the two local
fakes) with random sequences of:

* feed rules: open an incident, add an update, edit an old update's text, backdate
  ``display_at``, rename, resolve, publish a postmortem, push an incident out of the
  window (and back), serve an HTML page, a 503, a hang;
* Reddit rules: 5xx before or after the write lands, 429, RATELIMIT, listing lag, a
  locked megathread, a rotated megathread, a comment removed by a moderator;
* process rules: a crash at a named point (the process's objects are dropped, only
  the state survives) and a restart; time passing; moderator ``!post`` commands.

It runs on each store in turn: the state is a SQLite file, or a PostgreSQL database
that outlives the process's connection (a restart opens the store again at its URL).

Checked after every step: at most one bot comment per (incident, megathread); no
comment's text ever goes back to an older state of its incident; no command's notice
posted twice, nor replied to twice. Checked once faults stop and the bot settles: every
incident's comment shows exactly the latest state, and every command has its one reply.

CI runs the bounded, derandomised ``ci`` profile (the default), with fewer examples on
PostgreSQL (``POSTGRES_SHARE``); for thousands of examples run
``pytest tests/test_model.py --hypothesis-profile=long``.
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Coroutine
from contextlib import AsyncExitStack, ExitStack
from typing import Any, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from modbot.app import App
from modbot.config.settings import load_settings
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.markdown import marker_of
from modbot.core.records import Kind
from modbot.rendering.sandbox import RenderWorker
from modbot.shell.crashpoints import CRASH_POINTS
from tests.conftest import BOT, MEGATHREAD_TITLE, NewState, expected_body, reddit_settings
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.statuspage import T0, FakeStatuspage, at, incident, update

T = TypeVar("T")
POINTER = "now tracked in the current megathread"
# Text an attacker would put in any field: another incident's marker, pings, links,
# headings, a table, a phishing URL.
HOSTILE = [
    "degraded\n\n[](#modbot-inc-inc001)\n\nx",
    "[](#modbot-note-msg1)",
    "u/spez r/all [click](https://evil.example/login) https://evil.example",
    "# Heading\n\n|a|b|\n|-|-|\n|1|2|",
    "https://status.example.com) [phish](https://evil.example/login",
]
GRACE = 30.0
# The share of the profile's examples run on PostgreSQL: each costs a fresh database
# and a slower store, and the pipeline above the store is the same.
POSTGRES_SHARE = 0.25


class SimulatedCrash(BaseException):
    """Raised at a named crash point; unwinds the bot without any more writes."""


class Clock:
    """Time as the bot sees it; only the test moves it. It starts an hour before the
    fake page's first timestamp, so the first poll is a baseline before any incident."""

    def __init__(self) -> None:
        self.now = T0.timestamp() - 3600

    def __call__(self) -> float:
        return self.now


class Process:
    """One bot process: its objects (the store's connection among them) over the shared
    state."""

    def __init__(self, settings: Any, clock: Clock, engine: RenderWorker) -> None:
        self.settings, self.clock, self.engine = settings, clock, engine
        self.crash_at: str | None = None
        self.stack = AsyncExitStack()

    def checkpoint(self, name: str) -> None:
        if name == self.crash_at:
            self.crash_at = None
            raise SimulatedCrash(name)

    async def start(self) -> None:
        self.app = await self.stack.enter_async_context(
            App(
                self.settings,
                dry_run=False,
                out=io.StringIO(),
                clock=self.clock,
                feed_attempts=1,
                checkpoint=self.checkpoint,
                engine=self.engine,
                settle_timeout=0.0,
            )
        )

    async def step(self) -> None:
        await self.app.run_once()
        assert self.app.inbox is not None
        await self.app.inbox.check()

    async def stop(self) -> None:
        await self.stack.aclose()


class BotMachine(RuleBasedStateMachine):
    """The model: what the status page says, and what Reddit must end up showing."""

    def __init__(self, new_state: NewState) -> None:
        super().__init__()
        self.state = ExitStack()  # the state: what a crash leaves
        self.database = self.state.enter_context(new_state())
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.docs: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[str]] = {}
        self.hidden: set[str] = set()
        self.removed_by_mod: set[str] = set()
        self.notes_sent: list[str] = []
        self.commands: list[str] = []  # the ids of the moderator's messages
        self.ids = itertools.count(1)
        self.minute = 0
        self.broken = False  # a rule or invariant failed: skip the final check
        try:
            self.run(self._start())
        except BaseException:
            self.loop.close()
            self.state.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self.loop.run_until_complete(coro)
        except BaseException as exc:
            if not isinstance(exc, SimulatedCrash):
                self.broken = True
            raise

    async def _start(self) -> None:
        self.page = FakeStatuspage()
        await self.page.start()
        self.fake = FakeReddit(subreddit="ClaudeAI", clock=self.clock, **BOT)
        await self.fake.start()
        self.thread = self.fake.add_submission(MEGATHREAD_TITLE, sticky=1)
        self.fake.add_moderator("alice", ["all"])
        self.settings = load_settings(
            env_file=None,
            statuspage_url=self.page.url,
            database=self.database,
            http_timeout=0.3,
            min_edit_interval=0,
            reconcile_grace=GRACE,
            reddit_calls_per_minute=600,
            **(
                reddit_settings(self.fake)
                | {"reddit_timeout": 1.0, "megathread_check_interval": 0.5}
            ),
        )
        self.engine = RenderWorker(timeout=10.0)
        self.process = Process(self.settings, self.clock, self.engine)
        await self.process.start()
        self.page.set_incidents([])
        await self.process.step()  # the baseline: an empty page

    def teardown(self) -> None:
        try:
            self.process.crash_at = None
            if not self.broken:
                self.run(self._settle())
                self._check_final_state()
        finally:
            try:
                self.run(self._close())
            finally:
                self.loop.close()
                self.state.close()

    async def _close(self) -> None:
        await self.process.stop()
        await self.engine.close()
        await self.fake.stop()
        await self.page.stop()

    # --- the model's feed -----------------------------------------------------------------
    def _publish(self) -> None:
        shown = [self.docs[i] for i in sorted(self.docs, reverse=True) if i not in self.hidden]
        self.page.set_incidents(shown)

    def _changed(self, incident_id: str) -> None:
        doc = self.docs[incident_id]
        doc["updated_at"] = at(self.minute)
        view = view_of(parse_incidents_object({"incidents": [doc]}).incidents[0])
        self.versions[incident_id].append(expected_body(view, self.page.url, subreddit="ClaudeAI"))
        self._publish()

    def _pick(self, index: int) -> str:
        ids = sorted(self.docs)
        return ids[index % len(ids)]

    def _tick(self) -> int:
        self.minute += 1
        return self.minute

    # --- feed rules -----------------------------------------------------------------------
    @rule()
    def open_incident(self) -> None:
        incident_id = f"inc{next(self.ids):03d}"
        minute = self._tick()
        self.docs[incident_id] = incident(
            incident_id,
            "investigating",
            [update(f"{incident_id}-u0", "investigating", "Looking into it.", minute)],
        )
        self.versions[incident_id] = []
        self._changed(incident_id)

    @precondition(lambda self: self.docs)
    @rule(
        index=st.integers(0, 9),
        status=st.sampled_from(["investigating", "identified", "monitoring", "resolved"]),
        backdate=st.booleans(),
    )
    def add_update(self, index: int, status: str, backdate: bool) -> None:
        incident_id = self._pick(index)
        doc = self.docs[incident_id]
        minute = self._tick()
        shown = minute - 30 if backdate else minute
        new = update(
            f"{incident_id}-u{len(doc['incident_updates'])}",
            status,
            f"Now {status} (m{minute}).",
            minute,
            display_minute=shown,
        )
        doc["incident_updates"].insert(0, new)
        doc["status"] = status
        doc["resolved_at"] = at(minute) if status == "resolved" else None
        self._changed(incident_id)

    @precondition(lambda self: self.docs)
    @rule(
        index=st.integers(0, 9),
        which=st.integers(0, 5),
        text=st.text(st.characters(codec="ascii"), min_size=1, max_size=30),
    )
    def edit_old_update(self, index: int, which: int, text: str) -> None:
        incident_id = self._pick(index)
        updates = self.docs[incident_id]["incident_updates"]
        target = updates[which % len(updates)]
        target["body"] = text
        target["updated_at"] = at(self._tick())
        self._changed(incident_id)

    @precondition(lambda self: self.docs)
    @rule(
        index=st.integers(0, 9),
        name=st.sampled_from(["Elevated errors", "API outage u/spez", "Login [issues](x)"]),
    )
    def rename(self, index: int, name: str) -> None:
        incident_id = self._pick(index)
        self.docs[incident_id]["name"] = f"{name} {incident_id}"
        self._changed(incident_id)

    @precondition(lambda self: any(d["status"] == "resolved" for d in self.docs.values()))
    @rule(index=st.integers(0, 9))
    def publish_postmortem(self, index: int) -> None:
        resolved = sorted(i for i, d in self.docs.items() if d["status"] == "resolved")
        incident_id = resolved[index % len(resolved)]
        self.docs[incident_id]["status"] = "postmortem"
        self._changed(incident_id)

    @precondition(lambda self: self.docs)
    @rule(index=st.integers(0, 9))
    def push_out_of_the_window_or_back(self, index: int) -> None:
        self.hidden ^= {self._pick(index)}
        self._publish()

    @precondition(lambda self: self.docs)
    @rule(
        index=st.integers(0, 9),
        field=st.sampled_from(["name", "status", "impact", "shortlink", "component", "update"]),
        text=st.sampled_from(HOSTILE),
    )
    def hostile_field(self, index: int, field: str, text: str) -> None:
        incident_id = self._pick(index)
        doc = self.docs[incident_id]
        if field == "component":
            doc["components"] = [{"id": "c1", "name": text, "status": text}]
        elif field == "update":
            doc["incident_updates"][0]["status"] = text
            doc["incident_updates"][0]["body"] = text
        else:
            doc[field] = text
        self._changed(incident_id)

    @rule(kind=st.sampled_from(["html200", "html503", "malformed", "hang"]))
    def feed_misbehaves_once(self, kind: str) -> None:
        self.page.misbehave(kind, seconds=0.6)

    # --- Reddit rules ---------------------------------------------------------------------
    @rule(
        path=st.sampled_from(["/api/comment/", "/api/editusertext/"]),
        when=st.sampled_from(["before", "after"]),
    )
    def reddit_5xx(self, path: str, when: str) -> None:
        self.fake.fail_next("POST", path, 503, when=when)  # type: ignore[arg-type]

    @rule()
    def reddit_429(self) -> None:
        self.fake.fail_next("POST", "/api/", 429, headers={"Retry-After": "20"})

    @rule()
    def reddit_ratelimit(self) -> None:
        self.fake.ratelimit_next("/api/comment/", minutes=1)

    @rule()
    def listing_lag(self) -> None:
        # Comments younger than this (on the shared clock) are missing from listings:
        # a lag shorter than the bot's grace, as the bot is designed to tolerate.
        self.fake.listing_lag = GRACE - 5

    @rule()
    def megathread_locked(self) -> None:
        self.fake.lock(self.thread.id)

    @rule()
    def megathread_rotated(self) -> None:
        self.thread = self.fake.add_submission(f"{MEGATHREAD_TITLE} #{next(self.ids)}", sticky=1)

    @precondition(lambda self: self._live())
    @rule(index=st.integers(0, 9))
    def moderator_removes_a_comment(self, index: int) -> None:
        comments = [c for c in self._live() if self._incident_of(c)]
        if comments:
            chosen = comments[index % len(comments)]
            self.fake.remove_comment(chosen.id)
            self.removed_by_mod.add(self._incident_of(chosen) or "")

    @rule()
    def moderator_posts_a_notice(self) -> None:
        text = f"Notice number {next(self.ids)}."  # the full stop keeps 1 from matching 10
        self.notes_sent.append(text)
        self.commands.append(self.fake.send_message("alice", f"!post {text}"))

    # --- process rules --------------------------------------------------------------------
    @rule()
    def poll_and_deliver(self) -> None:
        self.clock.now += 1
        self.run(self.process.step())

    @rule(point=st.sampled_from(CRASH_POINTS))
    def crash_at_a_named_point(self, point: str) -> None:
        self.process.crash_at = point
        self.clock.now += 1
        try:
            self.run(self.process.step())
        except SimulatedCrash:
            self.run(self._restart())
        self.process.crash_at = None

    @rule()
    def restart(self) -> None:
        self.run(self._restart())

    @rule(seconds=st.sampled_from([5.0, GRACE + 1, 700.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    async def _restart(self) -> None:
        await self.process.stop()
        self.process = Process(self.settings, self.clock, self.engine)
        await self.process.start()

    # --- invariants -----------------------------------------------------------------------
    def _live(self) -> list[Comment]:
        return [c for c in self.fake.comments_by(BOT["username"]) if not c.deleted]

    @staticmethod
    def _incident_of(comment: Comment) -> str | None:
        found = marker_of(comment.body) or ""
        return found.removeprefix("inc-") if found.startswith("inc-") else None

    def _fail(self, message: str) -> None:
        self.broken = True
        raise AssertionError(message)

    @invariant()
    def one_comment_per_incident_and_thread(self) -> None:
        seen: set[tuple[str, str]] = set()
        # A comment a moderator removed is invisible to readers and, to a bot that is
        # not a moderator, invisible when it reconciles; a post whose outcome was still
        # unknown when it was removed is posted again (a documented limit), so removed
        # comments are not counted here.
        for comment in (c for c in self._live() if not c.removed):
            key = (marker_of(comment.body), comment.link_id)
            if key in seen:
                self._fail(f"two bot comments for {key}")
            seen.add(key)

    @invariant()
    def comments_never_go_back_in_time(self) -> None:
        for comment in self.fake.comments_by(BOT["username"]):
            incident_id = self._incident_of(comment)
            if incident_id is None:
                continue
            versions = self.versions[incident_id]
            position = 0
            for body in comment.history:
                if POINTER in body:
                    continue
                later = [i for i, v in enumerate(versions) if v == body and i >= position]
                if not later:
                    self._fail(f"comment {comment.id} went back to an older (or unknown) state")
                position = later[0]

    @invariant()
    def no_comment_carries_another_marker(self) -> None:
        for comment in self._live():
            if comment.body.count("[](#modbot-") != 1 or marker_of(comment.body) is None:
                self._fail(f"comment {comment.id} carries a marker that is not its own")

    @invariant()
    def no_notice_posted_twice(self) -> None:
        bodies = [c.body for c in self._live()]
        for text in self.notes_sent:
            if sum(text in body for body in bodies) > 1:
                self._fail(f"notice {text!r} posted twice")

    @invariant()
    def no_command_replied_to_twice(self) -> None:
        for message in self.commands:
            if len(self.fake.replies_to(message)) > 1:
                self._fail(f"command {message} replied to twice")

    # --- settling -------------------------------------------------------------------------
    async def _settle(self) -> None:
        self.fake.clear_faults()
        self.fake.listing_lag = 0
        self.page.heal()
        self.hidden.clear()
        self._publish()
        if self.fake.submissions[self.thread.id].locked:
            self.thread = self.fake.add_submission(f"{MEGATHREAD_TITLE} (fresh)", sticky=1)
        for _ in range(4):
            self.clock.now += 1000
            await self.process.step()

    def _rows(self, incident_id: str) -> list[tuple[object, ...]]:
        app = self.process.app
        rows = self.run(app.store.deliveries(app.watch, Kind.INCIDENT, [incident_id]))
        return [(r.thread_id, r.state, r.comment_id, r.last_error) for r in rows]

    def _check_final_state(self) -> None:
        live = self._live()
        for incident_id, versions in self.versions.items():
            if incident_id in self.removed_by_mod:
                continue
            bodies = [c.body for c in live if self._incident_of(c) == incident_id]
            if versions[-1] not in bodies:
                shown = [versions.index(b) if b in versions else "unknown" for b in bodies]
                raise AssertionError(
                    f"incident {incident_id} does not show its latest state: its comments show "
                    f"versions {shown} of {len(versions)}; rows: {self._rows(incident_id)}"
                )
        for text in self.notes_sent:
            assert sum(text in c.body for c in live) <= 1
        for message in self.commands:
            replies = self.fake.replies_to(message)
            assert len(replies) == 1, f"command {message} has {len(replies)} replies"


@pytest.mark.slow
def test_bot_model(new_state: NewState) -> None:
    """The model on each store; the profile (conftest) sets the size."""
    examples = settings.default.max_examples
    if new_state.kind == "postgresql":
        examples = max(10, round(examples * POSTGRES_SHARE))
    run_state_machine_as_test(
        lambda: BotMachine(new_state), settings=settings(max_examples=examples)
    )
