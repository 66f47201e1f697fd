"""The delivery state machine: its table, and that no two actors ever take one step.

The table tests need no I/O. The interleaving test runs the real ``Deliverer`` (two of
them: two processes, or a process and its restart, each with a store object of its own)
over one real state, on each store in turn (a SQLite file, a PostgreSQL database), with
a moderator's ``!post`` recorded again and again (an inbox re-run after a crash), crashes
between any two steps (the process's objects are dropped, only the state remains),
posts whose answer is lost before or after Reddit stored the comment, and time passing.
Reddit is an in-memory stand-in whose ``post`` can be held in flight while the other
actor runs. Afterwards: never two comments for one subject in one thread, and every
subject shows its latest body.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.core import machine, markdown, outbox
from modbot.core.machine import (
    FINAL,
    MESSAGE_FINAL,
    MESSAGE_TRANSITIONS,
    TRANSITIONS,
    Actor,
    IllegalStep,
    MessageState,
    State,
    Step,
)
from modbot.core.markdown import marker, marker_of
from modbot.core.records import (
    Channel,
    DeliveryRow,
    InboxItem,
    Kind,
    MessageRow,
    NoteRow,
    PostedComment,
    Removal,
    Thread,
)
from modbot.core.render import digest
from modbot.errors import RedditUnavailable
from modbot.shell.deliverer import Deliverer
from modbot.store import StateStore, open_store
from tests.conftest import NewState, StateLocation

ROW = DeliveryRow(id=1, watch="w", kind=Kind.NOTE, key="n1", state=State.PENDING, wanted_hash="h")
COMMENT = PostedComment("c1", "https://r/c1", 10.0, "body")


def rows_in_every_state() -> dict[State, DeliveryRow]:
    pending = ROW
    posting = machine.claim(pending, "t1", 1.0)
    posted = machine.answered(posting, COMMENT, "h", 2.0)
    return {
        State.PENDING: pending,
        State.POSTING: posting,
        State.POSTED: posted,
        State.MOVED: machine.pointed(posted, 3.0),
        State.REMOVED: machine.gone(posted, "removed"),
        State.CLOSED: machine.thread_closed(posted, "locked"),
        State.FAILED: machine.rejected(posting, "no"),
    }


STEPS = {
    Step.CLAIM: lambda r: machine.claim(r, "t1", 5.0),
    Step.ADOPTED: lambda r: machine.adopted(r, COMMENT, "t1", "h", 5.0),
    Step.ANSWERED: lambda r: machine.answered(r, COMMENT, "h", 5.0),
    Step.UNKNOWN: lambda r: machine.unknown(r, "503", 5.0),
    Step.REFUSED: lambda r: machine.refused(r, "429", 60.0, 5.0),
    Step.REJECTED: lambda r: machine.rejected(r, "403"),
    Step.FOUND: lambda r: machine.found(r, COMMENT, "h", 5.0),
    Step.NOT_YET: lambda r: machine.not_yet(r, 30.0),
    Step.ABSENT: lambda r: machine.absent(r, 5.0, 30.0),
    Step.EDITED: lambda r: machine.edited(r, "h2", 5.0),
    Step.EDIT_FAILED: lambda r: machine.edit_failed(r, "503", 10.0, 5.0),
    Step.POINTED: lambda r: machine.pointed(r, 5.0),
    Step.GONE: lambda r: machine.gone(r, "removed"),
    Step.THREAD_CLOSED: lambda r: machine.thread_closed(r, "locked"),
    Step.DROPPED: lambda r: machine.dropped(r, "not needed"),
    Step.REPLACED: lambda r: machine.replaced(r, COMMENT, "h", 5.0),
    Step.FORCED: machine.forced,
    Step.DRIFTED: lambda r: machine.drifted(r, "h-live"),
    Step.LOOKED: lambda r: machine.looked(r, 60.0),
}


def test_every_step_has_a_function_and_every_state_is_reachable() -> None:
    assert set(STEPS) == set(Step)
    assert set(rows_in_every_state()) == set(State)
    assert {t.to for t in TRANSITIONS.values()} | {State.PENDING} == set(State)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("step", list(Step))
def test_each_step_is_allowed_exactly_where_the_table_says(state: State, step: Step) -> None:
    row = rows_in_every_state()[state]
    entry = TRANSITIONS.get((state, step))
    if entry is None:
        with pytest.raises(IllegalStep):
            STEPS[step](row)
        return
    after = STEPS[step](row)
    assert after.state == entry.to
    assert after.version == row.version + 1
    assert (after.id, after.kind, after.key) == (row.id, row.kind, row.key)


def test_final_states_have_no_way_out() -> None:
    assert not [key for key in TRANSITIONS if key[0] in FINAL]


def test_only_the_deliverer_talks_to_reddit_and_requesters_only_force() -> None:
    by_requester = {step for (_, step), t in TRANSITIONS.items() if t.by is Actor.REQUESTER}
    assert by_requester == {Step.FORCED}
    assert not machine.allowed(State.PENDING, Step.CLAIM, Actor.REQUESTER)
    assert machine.allowed(State.PENDING, Step.CLAIM, Actor.DELIVERER)


def test_a_claim_is_held_while_the_call_is_in_flight() -> None:
    claimed = machine.claim(ROW, "t1", 100.0, hold=30.0)
    assert (claimed.intent_at, claimed.not_before, claimed.attempts) == (100.0, 130.0, 1)


def test_active_rows_are_exactly_those_the_deliverer_must_look_at() -> None:
    every = rows_in_every_state()
    active = {state for state, row in every.items() if machine.is_active(row)}
    assert active == {State.PENDING, State.POSTING}
    stale = machine.answered(every[State.POSTING], COMMENT, "old", 1.0)
    assert machine.is_active(stale.__class__(**{**stale.__dict__, "wanted_hash": "new"}))
    in_doubt = machine.looked(every[State.POSTED], 100.0)
    assert machine.is_active(in_doubt)
    assert not machine.is_waiting(in_doubt)  # nothing to deliver: check --live is not worried
    assert not machine.is_active(machine.looked(in_doubt, None))


def test_a_repost_after_a_lost_answer_leaves_a_doubt_that_lasts_through_the_posting() -> None:
    posting = machine.unknown(machine.claim(ROW, "t1", 100.0), "timeout", 101.0)
    again = machine.absent(posting, 140.0, 30.0)
    assert again.heal_at == 170.0  # a grace after the re-post
    reposted = machine.claim(again, "t1", 141.0)
    posted = machine.answered(reposted, COMMENT, "h", 142.0)
    assert posted.heal_at == 170.0
    assert machine.replaced(posted, COMMENT, "h", 150.0).heal_at == 170.0


def test_looks_for_late_copies_come_at_doubling_gaps_up_to_an_hour_then_end() -> None:
    posted = machine.answered(machine.claim(ROW, "t1", 1000.0), COMMENT, "h", 1001.0)
    looks, heal_at = [], 1000.0 + 30.0
    while heal_at is not None and len(looks) < 50:
        looks.append(heal_at - 1000.0)
        heal_at = machine.next_look(posted, heal_at, 30.0)
    assert looks[:7] == [30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0]
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert max(gaps) == machine.HEAL_CAP
    assert looks[-1] >= machine.DOUBT_SPAN - machine.HEAL_CAP
    assert len(looks) <= 15  # about a dozen listing calls for six hours of doubt


def test_with_no_grace_looks_still_wait_a_second() -> None:
    posted = machine.answered(machine.claim(ROW, "t1", 1000.0), COMMENT, "h", 1001.0)
    assert machine.absent(machine.claim(ROW, "t1", 1000.0), 1000.0, 0.0).heal_at == 1001.0
    assert machine.next_look(posted, 1000.0, 0.0) == 1001.0


# --- the message table: the same form, the same _take -------------------------------------

ITEM = InboxItem("t4_m1", "alice", "!status", is_mention=False)
MESSAGE = outbox.reply(ITEM, "all fine", 1.0)
COPY = PostedComment("m9", "", 10.0, MESSAGE.body)


def messages_in_every_state() -> dict[MessageState, MessageRow]:
    pending = MESSAGE
    sending = machine.claim_message(pending, 1.0)
    return {
        MessageState.PENDING: pending,
        MessageState.SENDING: sending,
        MessageState.SENT: machine.message_answered(sending, "m9", 2.0),
        MessageState.FAILED: machine.rejected(sending, "USER_DOESNT_EXIST"),
    }


MESSAGE_STEPS = {
    Step.CLAIM: lambda r: machine.claim_message(r, 5.0),
    Step.ADOPTED: lambda r: machine.message_adopted(r, COPY, 5.0),
    Step.ANSWERED: lambda r: machine.message_answered(r, "m9", 5.0),
    Step.UNKNOWN: lambda r: machine.unknown(r, "503", 5.0),
    Step.REFUSED: lambda r: machine.refused(r, "429", 60.0, 5.0),
    Step.REJECTED: lambda r: machine.rejected(r, "403"),
    Step.FOUND: lambda r: machine.message_found(r, COPY, 5.0),
    Step.NOT_YET: lambda r: machine.not_yet(r, 30.0),
    Step.ABSENT: lambda r: machine.absent(r, 5.0, 30.0),
    Step.REPLACED: lambda r: machine.message_replaced(r, COPY),
    Step.LOOKED: lambda r: machine.looked(r, 60.0),
}


def test_every_message_step_has_a_function_and_every_state_is_reachable() -> None:
    assert {step for _, step in MESSAGE_TRANSITIONS} == set(MESSAGE_STEPS)
    assert set(messages_in_every_state()) == set(MessageState)
    assert {t.to for t in MESSAGE_TRANSITIONS.values()} | {MessageState.PENDING} == set(
        MessageState
    )


@pytest.mark.parametrize("state", list(MessageState))
@pytest.mark.parametrize("step", list(Step))
def test_each_message_step_is_allowed_exactly_where_its_table_says(
    state: MessageState, step: Step
) -> None:
    row = messages_in_every_state()[state]
    entry = MESSAGE_TRANSITIONS.get((state, step))
    take = MESSAGE_STEPS.get(step, lambda r: machine._take(r, step, Actor.DELIVERER))
    if entry is None:
        with pytest.raises(IllegalStep, match=f"message {MESSAGE.key}"):
            take(row)
        return
    after = take(row)
    assert after.state == entry.to
    assert after.version == row.version + 1
    assert (after.id, after.key, after.body) == (row.id, row.key, row.body)


def test_only_failed_messages_are_final_and_nobody_but_the_sender_steps_them() -> None:
    assert not [key for key in MESSAGE_TRANSITIONS if key[0] in MESSAGE_FINAL]
    assert {t.by for t in MESSAGE_TRANSITIONS.values()} == {Actor.DELIVERER}


def test_an_unsettled_message_is_active_and_a_sent_one_only_while_in_doubt() -> None:
    every = messages_in_every_state()
    active = {state for state, row in every.items() if machine.is_active(row)}
    assert active == {MessageState.PENDING, MessageState.SENDING}
    assert machine.is_active(machine.looked(every[MessageState.SENT], 100.0))


def test_a_message_sent_again_leaves_a_doubt_only_where_a_copy_can_be_deleted() -> None:
    lost = machine.unknown(machine.claim_message(MESSAGE, 100.0), "timeout", 101.0)
    assert machine.absent(lost, 140.0, 30.0).heal_at is None  # a message cannot be unsent
    mention = outbox.reply(replace(ITEM, fullname="t1_c1", is_mention=True), "ok", 1.0)
    assert mention.channel is Channel.COMMENT_REPLY
    lost_reply = machine.unknown(machine.claim_message(mention, 100.0), "timeout", 101.0)
    again = machine.absent(lost_reply, 140.0, 30.0)
    assert again.heal_at == 170.0
    sent = machine.message_answered(machine.claim_message(again, 141.0), "c2", 142.0)
    assert sent.heal_at == 170.0
    assert machine.is_active(sent)


def test_the_outbox_steps_each_message_when_it_is_due() -> None:
    sending = machine.claim_message(replace(MESSAGE, id=2, key="b"), 10.0, hold=30.0)
    in_doubt = replace(messages_in_every_state()[MessageState.SENT], id=3, heal_at=50.0)
    failed = replace(messages_in_every_state()[MessageState.FAILED], id=4)
    waiting = replace(MESSAGE, id=5, not_before=100.0)
    rows = [waiting, failed, in_doubt, sending, replace(MESSAGE, id=1)]
    actions, wake_at = outbox.due(rows, 20.0)
    assert actions == [outbox.Send(replace(MESSAGE, id=1))]
    assert wake_at == 40.0  # the claim's hold
    actions, wake_at = outbox.due(rows, 60.0)
    assert actions == [
        outbox.Send(replace(MESSAGE, id=1)),
        outbox.Settle(sending),
        outbox.Look(in_doubt),
    ]
    assert wake_at == 100.0


def test_every_message_body_ends_with_its_own_marker_within_the_limit() -> None:
    assert marker_of(MESSAGE.body) == "msg-reply-t4_m1"
    long = outbox.reply(ITEM, "x" * 20_000, 1.0)
    assert len(long.body) <= outbox.MESSAGE_LIMIT
    assert marker_of(long.body) == "msg-reply-t4_m1"
    key = outbox.wiki_key("a-very-long-watch-name" * 4, "maintenance", "9" * 36)
    assert len(key) <= outbox.MAX_KEY
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key)
    told = outbox.private_message(key, "alice", "s" * 300, "hello", 1.0)
    assert marker_of(told.body) == f"msg-{key}"
    assert len(told.subject) == outbox.SUBJECT_LIMIT
    assert markdown.parse_marker(f"msg-{key}") is None  # never taken for a comment's


# --- interleavings: two deliverers, inbox re-runs and crashes over one state ---------------


HELD = contextvars.ContextVar("HELD", default=False)  # True inside the one held round


class Crash(BaseException):
    """An actor dies here; its objects are dropped, only the state remains."""


@dataclass
class Posted:
    id: str
    thread: str
    body: str
    created: float
    deleted: bool = False


@dataclass
class MemoryReddit:
    """Just enough of Reddit for the deliverer: threads, comments, held posts, lost answers."""

    clock: list[float]
    thread: Thread = field(default_factory=lambda: Thread("t1", "Megathread", "/t1"))
    comments: list[Posted] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)  # "ok", "lost-before", "lost-after"
    lag: float = 0.0
    hold: asyncio.Event | None = None
    ids: Any = field(default_factory=lambda: itertools.count(1))

    async def current_thread(self, max_age: float | None = None) -> Thread | None:
        return self.thread

    def thread_suspect(self) -> None:
        return None

    async def post(self, thread: Thread, body: str) -> PostedComment:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if self.hold is not None and HELD.get():
            await self.hold.wait()
        if outcome == "lost-before":
            raise RedditUnavailable("posting: Reddit error 503")
        comment = Posted(f"c{next(self.ids)}", thread.id, body, self.clock[0])
        self.comments.append(comment)
        if outcome == "lost-after":
            raise RedditUnavailable("posting: Reddit error 503")
        return PostedComment(comment.id, f"/{thread.id}/{comment.id}", comment.created, body)

    async def edit(self, comment_id: str, body: str) -> None:
        next(c for c in self.comments if c.id == comment_id).body = body

    async def find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        return [
            PostedComment(c.id, f"/{c.thread}/{c.id}", c.created, c.body, marker_of(c.body) or "")
            for c in self.comments
            if c.thread == thread_id
            and not c.deleted
            and c.created <= self.clock[0] - self.lag
            and (marker_id is None or marker_of(c.body) == marker_id)
        ]

    async def delete(self, comment_id: str) -> None:
        next(c for c in self.comments if c.id == comment_id).deleted = True

    async def removed(self, comment_ids: list[str]) -> dict[str, Removal]:
        return {}

    def live(self) -> list[Posted]:
        return [c for c in self.comments if not c.deleted]


@dataclass
class Holds:
    """The held claim, shared by every actor's store: set while one round waits to claim."""

    claim: asyncio.Event | None = None


class HeldStore:
    """An actor's real store, with the held round's claim held until released: lets the
    other actor read the same pending row in between, as another process could."""

    def __init__(self, store: StateStore, holds: Holds) -> None:
        self.store = store
        self.holds = holds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def step(self, before: DeliveryRow, after: DeliveryRow) -> bool:
        claim = (before.state, after.state) == (State.PENDING, State.POSTING)
        hold = self.holds.claim
        if hold is not None and claim and HELD.get():
            await hold.wait()
        return await self.store.step(before, after)


GRACE = 30.0
NOTE = NoteRow("w", "msg1", "Hello", "Hello\n\n" + marker("note", "msg1", "w"), "", "u/alice", 0.0)
NOTE = NoteRow(NOTE.watch, NOTE.note_id, NOTE.text, NOTE.body, digest(NOTE.body), NOTE.source, 0.0)

action = st.one_of(
    st.tuples(st.just("round"), st.sampled_from("AB")),
    st.tuples(st.just("held round"), st.sampled_from("AB")),
    st.tuples(st.just("held claim"), st.sampled_from("AB")),
    st.tuples(st.just("release"), st.just("")),
    st.tuples(st.just("crash"), st.sampled_from("AB")),
    st.tuples(st.just("inbox re-run"), st.just("")),
    st.tuples(st.just("answer"), st.sampled_from(["ok", "lost-before", "lost-after"])),
    st.tuples(st.just("time"), st.sampled_from(["1", "31", "600"])),
    st.tuples(st.just("lag"), st.sampled_from(["0", "10"])),
    st.tuples(st.just("rotate"), st.just("")),
)


async def scenario(  # noqa: PLR0912 - one branch per kind of action, read as a table
    location: StateLocation, actions: list[tuple[str, str]]
) -> None:
    clock = [1000.0]
    reddit = MemoryReddit(clock)
    holds = Holds()
    inbox = await open_store(location)  # the process that records moderators' commands
    opened: list[StateStore] = [inbox]

    async def process(crash_at: str | None = None) -> tuple[Deliverer, StateStore]:
        """A process's deliverer, over a store object (a connection) of its own."""
        real = await open_store(location)
        opened.append(real)

        def checkpoint(name: str) -> None:
            if name == crash_at:
                raise Crash(name)

        deliverer = Deliverer(
            HeldStore(real, holds),  # type: ignore[arg-type]  # the real store, behind a proxy
            reddit,
            watch="w",
            min_edit_interval=0,
            reconcile_grace=GRACE,
            clock=lambda: clock[0],
            checkpoint=checkpoint,
        )
        return deliverer, real

    async def crash(real: StateStore) -> None:
        """The process is gone: its objects are dropped (its connection closed)."""
        opened.remove(real)
        await real.close()

    held: dict[str, asyncio.Task[Any]] = {}
    try:
        await inbox.add_note(NOTE)
        actors = {"A": await process(), "B": await process()}
        for kind, arg in actions:
            if kind == "round" and arg not in held:
                await actors[arg][0].round()
            elif kind == "held round" and not held:
                reddit.hold = asyncio.Event()
                held[arg] = held_round(actors[arg][0])
                await asyncio.sleep(0.01)  # let it reach Reddit (or finish without posting)
            elif kind == "held claim" and not held:
                holds.claim = asyncio.Event()
                held[arg] = held_round(actors[arg][0])
                await asyncio.sleep(0.01)  # it has read the pending row, and waits to claim it
            elif kind == "release" and held:
                await release(held, holds, reddit)
            elif kind == "crash":
                task = held.pop(arg, None)
                if task is not None:
                    task.cancel()  # the process died mid-call, before Reddit stored anything
                    await asyncio.gather(task, return_exceptions=True)
                    holds.claim = reddit.hold = None
                await crash(actors[arg][1])
                actors[arg] = await process()
            elif kind == "inbox re-run":
                assert (await inbox.add_note(NOTE))[1] is False  # the intent is recorded once
            elif kind == "answer":
                reddit.outcomes.append(arg)
            elif kind == "time":
                clock[0] += float(arg)
            elif kind == "lag":
                reddit.lag = float(arg)
            elif kind == "rotate":
                reddit.thread = Thread(f"t{next(reddit.ids)}", "Megathread", "/new")
            # Listings lag less than the grace, so no interleaving may ever show a
            # second comment, not even for the moment before the heal removes it.
            threads = [c.thread for c in reddit.live()]
            assert len(threads) == len(set(threads)), f"two comments after {kind} {arg}"
        await release(held, holds, reddit)
        reddit.outcomes.clear()
        reddit.lag = 0.0
        settle, _ = await process()
        for _ in range(4):
            clock[0] += GRACE + 1
            await settle.round()
        live = reddit.live()
        assert len(live) == 1, [(c.id, c.thread) for c in reddit.comments]
        assert live[0].body == NOTE.body
        rows = await inbox.deliveries("w", Kind.NOTE, [NOTE.note_id])
        assert [r.comment_id for r in rows if r.state == State.POSTED] == [live[0].id]
    finally:
        for task in held.values():
            task.cancel()
        await asyncio.gather(*held.values(), return_exceptions=True)
        for real in opened:
            await real.close()


def held_round(actor: Deliverer) -> asyncio.Task[Any]:
    """A round in its own task, marked so that only its calls wait for a release."""
    context = contextvars.copy_context()
    context.run(HELD.set, True)
    return asyncio.get_running_loop().create_task(actor.round(), context=context)


async def release(held: dict[str, asyncio.Task[Any]], holds: Holds, reddit: MemoryReddit) -> None:
    """Let every held call go on, and wait for the rounds to finish."""
    for event in (holds.claim, reddit.hold):
        if event is not None:
            event.set()
    holds.claim = reddit.hold = None
    for task in held.values():
        await asyncio.gather(task, return_exceptions=True)
    held.clear()


# A fresh PostgreSQL database costs a fifth of a second: fewer examples there.
EXAMPLES = {"sqlite": 200, "postgresql": 40}


def test_a_notice_is_posted_exactly_once_whatever_the_interleaving(new_state: NewState) -> None:
    @settings(max_examples=EXAMPLES[new_state.kind], deadline=None)
    @given(actions=st.lists(action, max_size=30))
    def interleaving(actions: list[tuple[str, str]]) -> None:
        with new_state() as location:
            asyncio.run(scenario(location, actions))

    interleaving()


@pytest.mark.parametrize(
    "actions",
    [
        # The answer is lost after Reddit stored the comment: adopt it, never re-post.
        [("answer", "lost-after"), ("round", "A"), ("time", "31"), ("round", "A")],
        # Two deliverers read the same pending row; only one claim may win.
        [("held claim", "A"), ("round", "B"), ("release", "")],
        # A post in flight while the other deliverer looks: it must wait, not re-post.
        [("held round", "A"), ("time", "1"), ("round", "B"), ("release", ""), ("round", "B")],
    ],
    ids=["lost-answer", "two-claims", "in-flight"],
)
def test_the_dangerous_interleavings_post_once(
    state_location: StateLocation, actions: list[tuple[str, str]]
) -> None:
    asyncio.run(scenario(state_location, actions))


def test_the_notice_race_after_an_after_intent_crash_posts_once(
    state_location: StateLocation,
) -> None:
    """The race the crash loop found: a restart's inbox re-run and the deliverer's
    reconcile, both after a crash right after the intent was committed."""
    actions = [
        ("held round", "A"), ("crash", "A"), ("inbox re-run", ""), ("round", "B"),
        ("time", "31"), ("round", "A"), ("round", "B"), ("inbox re-run", ""),
    ]  # fmt: skip
    asyncio.run(scenario(state_location, actions))
